"""Train a restoration model: `python train.py [experiment=<group>/<name>] [key=value ...]`.

seed → datamodule → model → callbacks → loggers → trainer → fit → (test), as in the
lightning-hydra-template. The run folder (outputs/<task_name>/<timestamp>/, `_1`, `_2`… appended
when runs start in the same second) gets the resolved config, the command line, CSV/TensorBoard
logs (logger=mlflow|wandb|many_loggers: configs/logger/), checkpoints/{best,last}.ckpt and metrics.json/md.
`python train.py hparams_search=denoise_optuna` sweeps with Optuna; the run returns `optimized_metric`.
A failure ends with one line naming the culprit; its traceback goes to the run folder's <task_name>.log
(HYDRA_FULL_ERROR=1 prints it).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))
# logger=mlflow writes a local store; MLflow's usage telemetry would send events to its servers
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import hydra  # noqa: E402
import lightning as L  # noqa: E402
import torch  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

# importing restore.utils.config registers the ${unique_dir:} resolver the run folder uses
from restore.checkpoint import describe_state_mismatch, load_pretrained, training_record  # noqa: E402
from restore.utils.config import (  # noqa: E402
    ConfigError,
    config_choice,
    config_source,
    instantiate_group,
    instantiate_node,
    instantiate_trainer,
    record_run,
    report_failures,
    task_config,
)
from restore.utils.reporting import describe_run, metric_value, print_metrics, write_metrics  # noqa: E402
from restore.weights_io import open_weights  # noqa: E402

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and optionally test) the configured model; returns the final logged metrics."""
    if cfg.get("cpu_threads"):
        # fewer intra-op threads than cores: on a CPU other jobs load, OpenMP threads wait on each other
        torch.set_num_threads(int(cfg.cpu_threads))
    if cfg.get("pruning"):  # iterative pruning rounds (configs/pruning/): restore.pruning.run
        if cfg.get("compile"):
            raise ValueError("compile is not applied to pruning runs (restore.pruning builds each round's model "
                             "itself): set compile=false with pruning=...")
        from restore.pruning import run_pruning

        return run_pruning(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = cfg.paths.output_dir
    record_run(output_dir, cfg)

    log.info("Datamodule <%s>", cfg.data._target_)
    datamodule = instantiate_node(cfg, "data")
    log.info("Model <%s>", cfg.model._target_)
    model = instantiate_node(cfg, "model")
    if "net" in cfg.model and hasattr(model, "net_config"):
        # stored in checkpoints so restore.load_model can rebuild the network without this config
        model.net_config = OmegaConf.to_container(cfg.model.net, resolve=True)
    if config_choice("data") and hasattr(model, "data_config"):
        model.data_config = {"name": config_choice("data")}  # eval.py tests on it when given no data=
    if cfg.get("pretrained") and not cfg.get("ckpt_path"):  # resuming restores the run's own weights
        log.info("Pretrained weights <%s>", cfg.pretrained)
        load_pretrained(model.net, cfg.pretrained)
    if cfg.get("ckpt_path") and cfg.get("train", True):
        check_resume_fits(model, cfg.ckpt_path)
    if cfg.get("compile"):
        compile_net(model.net, cfg.compile)
    callbacks = instantiate_group(cfg, "callbacks")
    loggers = instantiate_group(cfg, "logger")
    trainer: L.Trainer = instantiate_trainer(cfg, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(task_config(cfg), resolve=True))

    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None

    if cfg.get("test"):
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    close_loggers()

    results = getattr(model, "results", {}).get("val")
    if trainer.is_global_zero and results:
        report_results(results, model, datamodule, "val", output_dir, trainer.global_step, None,
                       f"validation at step {trainer.global_step} (EMA weights if enabled)")
        if best:
            log.info("Best checkpoint: %s", best)
    tested = getattr(model, "results", {}).get("test") if cfg.get("test") else None
    if trainer.is_global_zero and tested:
        step = checkpoint_step(best) if best else trainer.global_step
        report_results(tested, model, datamodule, "test", Path(output_dir) / "test", step, best,
                       f"test set ({'best checkpoint, step ' + str(step) if best else 'final weights'})")
    return metrics


def report_results(results: dict, model: L.LightningModule, datamodule: Any, split: str, out_dir: str | Path,
                   step: int | None, checkpoint: str | None, title: str) -> None:
    """Print the table; write metrics.json/md naming the checkpoint, its step, the data and each set with its
    degradation."""
    protocols = getattr(model, "protocols", [])
    data = config_choice("data")
    sets = datamodule.describe_sets(split) if hasattr(datamodule, "describe_sets") else []
    print_metrics(results, f"{title}\ndata: {data}" if data else title, protocols)
    write_metrics(results, out_dir, protocols,
                  {"checkpoint": checkpoint, "global_step": step, "data": data, f"{split}_sets": sets},
                  header=describe_run(checkpoint, step, data, sets, "Test sets" if split == "test" else "Val sets"))


def checkpoint_step(path: str) -> int | None:
    """The global step a checkpoint was saved at (None if it cannot be read)."""
    try:
        return training_record(path).step
    except Exception:  # noqa: BLE001 - only a label of the report
        return None


def check_resume_fits(model: L.LightningModule, ckpt_path: str) -> None:
    """Refuse to resume from a checkpoint of another network before Lightning loads it (whose error would list
    every key): name the file, the differing keys and shapes, and the two ways on.

    Only a readable checkpoint file is compared (``ckpt_path="last"`` and unreadable files are left to
    Lightning's loader, which names them), and only its network's keys and shapes, as the file declares them
    (:func:`restore.weights_io.open_weights`: no tensor is read).
    """
    path = Path(ckpt_path)
    if not path.is_file() or not getattr(model, "strict_loading", True):
        return
    try:
        with open_weights(path) as f:
            declared, stored = f.layout, f.net_config
    except Exception:  # noqa: BLE001 - any unreadable file: Lightning's checkpoint IO reports it
        return
    # the module's keys, as the message names them (the file's are given without the "net." prefix)
    own = {f"net.{k}": v for k, v in model.net.state_dict().items()}
    mismatch = describe_state_mismatch(own, {f"net.{k}": shape for k, shape in declared.items()})
    if mismatch is None:
        return
    trained = f"its network: {describe_net_config(stored)}; " if isinstance(stored, dict) else ""
    raise ConfigError(f"ckpt_path={path} holds another network than model.net ({config_source('model.net')}): "
                      f"{mismatch}. To resume, use the model.net it was trained with ({trained}e.g. drop the model/net "
                      f"override); to start a new run from its weights, use pretrained={path} instead of ckpt_path "
                      "(the weights must fit model.net: same keys and shapes)")


def describe_net_config(config: dict) -> str:
    """``RestorationUNet(block=NAFBlock, width=16, …)``: a stored network config in one line."""

    def short(value: Any) -> str:
        if isinstance(value, dict) and "_target_" in value:
            return str(value["_target_"]).rsplit(".", 1)[-1]
        return str(value)

    settings = ", ".join(f"{k}={short(v)}" for k, v in config.items() if not k.startswith("_"))
    return f"{short(config)}({settings})"


def compile_net(net: torch.nn.Module, options: Any) -> None:
    """``torch.compile`` the network in place (``nn.Module.compile``): its ``state_dict`` keeps the plain keys
    (no ``_orig_mod.``), so checkpoints load into uncompiled networks (``restore.load_model``, ``eval.py``).

    ``options``: true, or a mapping of ``torch.compile`` arguments (``{mode: max-autotune, dynamic: false}``).
    """
    kwargs = {} if options is True else OmegaConf.to_container(options, resolve=True) \
        if isinstance(options, DictConfig) else options
    if not isinstance(kwargs, dict):
        raise ValueError(f"compile must be true, false or a mapping of torch.compile arguments, got {options!r}")
    log.info("torch.compile of the network%s", f" with {kwargs}" if kwargs else "")
    net.compile(**kwargs)


def close_loggers(failed: bool = False) -> None:
    """Finish the W&B run, if one is open (marked failed after an error): the next job of a sweep starts its
    own, where Lightning would reuse it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1 if failed else 0)


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    with report_failures(cfg, on_failure=lambda: close_loggers(failed=True)):
        metrics = train(cfg)
    # what Hydra's sweepers optimise (configs/hparams_search/): the last logged value of `optimized_metric`
    try:
        return metric_value(metrics, cfg.get("optimized_metric"))
    except KeyError as err:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # a sweeper needs the value: the trial fails, naming the key and the logged metrics
        # a single run (semiblind/drp does not validate) has done its work; nothing optimises the value
        log.warning("%s", err.args[0])
        return None


if __name__ == "__main__":
    main()
