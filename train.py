"""Train a restoration model: `python train.py [experiment=<group>/<name>] [key=value ...]`.

seed → datamodule → model → callbacks → loggers → trainer → fit → (test), as in the
lightning-hydra-template. The run folder (outputs/<task_name>/<timestamp>/, `_1`, `_2`… appended
when runs start in the same second) gets the resolved config, the command line, CSV/TensorBoard
logs, checkpoints/{best,last}.ckpt and metrics.json/md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
import lightning as L  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

# importing restore.utils.config registers the ${unique_dir:} resolver the run folder uses
from restore.utils.config import instantiate_group, instantiate_node, record_run, task_config  # noqa: E402
from restore.utils.reporting import print_metrics, write_metrics  # noqa: E402

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and optionally test) the configured model; returns the final logged metrics."""
    if cfg.get("cpu_threads"):
        # fewer intra-op threads than cores: on a CPU other jobs load, OpenMP threads wait on each other
        torch.set_num_threads(int(cfg.cpu_threads))
    if cfg.get("pruning"):  # iterative pruning rounds (configs/pruning/): restore.pruning.run
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
    callbacks = instantiate_group(cfg, "callbacks")
    loggers = instantiate_group(cfg, "logger")
    trainer: L.Trainer = instantiate_node(cfg, "trainer", callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(task_config(cfg), resolve=True))

    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.get("test"):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    results = getattr(model, "results", {}).get("val")
    if trainer.is_global_zero and results:
        protocols = getattr(model, "protocols", [])
        print_metrics(results, f"validation at step {trainer.global_step} (EMA weights if enabled)", protocols)
        write_metrics(results, output_dir, protocols, {"step": trainer.global_step})
        ckpt = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if ckpt:
            log.info("Best checkpoint: %s", ckpt)
    tested = getattr(model, "results", {}).get("test") if cfg.get("test") else None
    if trainer.is_global_zero and tested:
        protocols = getattr(model, "protocols", [])
        print_metrics(tested, "test set (best checkpoint)", protocols)
        write_metrics(tested, Path(output_dir) / "test", protocols, {"step": trainer.global_step})
    return metrics


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get("val/psnr")  # for Hydra sweepers


if __name__ == "__main__":
    main()
