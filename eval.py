"""Evaluate a checkpoint: `python eval.py ckpt_path=<ckpt> [data=<name>] [experiment=<name>] [save_images=true]
[deploy=true]`.

The network is rebuilt from the checkpoint (its stored config, EMA weights when present), tested
on the datamodule's test set (its val set when it has none); a rich table is printed and
metrics.json / metrics.md are written to the run folder, restored images to <run>/images/.
Without data= (or an experiment=) on the command line the data is the one the checkpoint was trained
with, a zoo model's card's test data, or else the default (restore.checkpoint.training_record); the table
and the metrics files say which and why. A failure ends
with one line naming the culprit; its traceback goes to the run folder's <task_name>.log (HYDRA_FULL_ERROR=1
prints it).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))
# logger=mlflow writes a local store; MLflow's usage telemetry would send events to its servers
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import hydra  # noqa: E402
import lightning as L  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from restore.checkpoint import MissingNetConfigError, TrainingRecord, load_model, training_record  # noqa: E402
from restore.inference import input_channels  # noqa: E402
from restore.lightning import KernelImages  # noqa: E402
from restore.utils.config import (  # noqa: E402
    ConfigError,
    config_choice,
    config_source,
    instantiate_node,
    instantiate_trainer,
    record_run,
    report_failures,
)
from restore.utils.reporting import add_task_average, describe_run, print_metrics, write_metrics  # noqa: E402

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint; returns the logged test metrics."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    record_run(output_dir, cfg)
    record = training_record(cfg.ckpt_path)  # its step; a stored data name that is not one is refused here
    data = data_description(cfg, record)
    log.info("Data: %s", data)

    # The checkpoint knows its architecture; the configured model/net is the fallback only for files
    # that store no config. A refused config (untrusted _target_), a corrupt file or non-finite
    # weights end the run with their own message.
    try:
        net = load_model(cfg.ckpt_path, deploy=cfg.deploy)
    except MissingNetConfigError:
        log.info("%s stores no network config: building model.net from the config", cfg.ckpt_path)
        net = load_model(cfg.ckpt_path, net=instantiate_node(cfg, "model.net"), deploy=cfg.deploy)
    log.info("Network <%s> from %s%s", type(net).__name__, cfg.ckpt_path, " (deploy form)" if cfg.deploy else "")
    datamodule = instantiate_node(cfg, "data")
    check_channels(net, datamodule, cfg.ckpt_path)
    save_dir = str(output_dir / "images") if cfg.save_images else None
    model = instantiate_node(cfg, "model", net=net, save_images_dir=save_dir, log_images=0,
                             weights_path=str(cfg.ckpt_path))  # named if the weights give NaN outputs
    loggers = [instantiate_node(cfg, f"logger.{k}") for k in (cfg.get("logger") or {})]
    # kernel-estimating nets (DeepRFTNet) also write their estimated kernels beside the images
    callbacks = [KernelImages()] if save_dir and hasattr(net, "estimate_kernels") else []
    trainer: L.Trainer = instantiate_trainer(cfg, logger=loggers or False, callbacks=callbacks)
    trainer.test(model=model, datamodule=datamodule, verbose=False)  # our table below, not Lightning's

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        # {task: {metric: {"output", "input"}}} with the task average; incomplete → error
        results = add_task_average(model.results.get("test", {}))
        step = f"step {record.step}" if record.step is not None else "step unknown"
        print_metrics(results, f"{cfg.ckpt_path} ({step})\ndata: {data}", model.protocols)
        sets = datamodule.describe_sets("test") if hasattr(datamodule, "describe_sets") else []
        paths = write_metrics(results, output_dir, model.protocols,
                              {"checkpoint": str(cfg.ckpt_path), "global_step": record.step, "data": data,
                               "test_sets": sets, "deploy": bool(cfg.deploy)},
                              header=describe_run(str(cfg.ckpt_path), record.step, data, sets))
        log.info("Metrics written to %s", ", ".join(map(str, paths)))
        if save_dir:
            log.info("Restored images in %s", save_dir)
    return metrics


#: data_source values eval_data_overrides sets → why the data is the one used
DATA_SOURCES = {"checkpoint": "from the checkpoint's training config", "run_folder": "from the training run's "
                ".hydra/hydra.yaml", "model_card": "the model card's test data"}


def eval_data_overrides(args: list[str]) -> list[str]:
    """What eval.py adds to its command line ``args`` when they choose no data (no ``data=``, no
    ``experiment=``): ``data=<name>`` of the checkpoint's training data or a zoo model's test data, and
    ``data_source=<where from>`` (:data:`DATA_SOURCES`; ``unknown``: the default data stays).

    Nothing when the data is chosen, or the command line or the checkpoint cannot be read here: the run itself
    then reports the bad override or file (:func:`evaluate` reads the record again).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except Exception:  # noqa: BLE001 - Hydra names a bad override itself
        return []
    values = {o.key_or_group: o.value() for o in overrides}
    if "data" in values or "experiment" in values or not isinstance(values.get("ckpt_path"), str):
        return []
    try:
        record = training_record(values["ckpt_path"])
    except Exception:  # noqa: BLE001 - evaluate() reads it again and names the problem
        return []
    configs = Path(__file__).resolve().parent / "configs" / "data"
    if record.data is None or not (configs / f"{record.data}.yaml").is_file():
        return ["data_source=unknown"]
    return [f"data={record.data}", f"data_source={record.source}"]


def data_description(cfg: DictConfig, record: TrainingRecord) -> str:
    """``denoise/cbsd68 (from the checkpoint's training config)``: the data config tested on, and why."""
    name = config_choice("data") or "the configured data"
    source = cfg.get("data_source")
    if source in DATA_SOURCES:
        return f"{name} ({DATA_SOURCES[source]})"
    if source == "unknown":
        why = (f"its training data {record.data} is not a data config here" if record.data else
               "it records no training data")
        log.warning("%s: %s, so the default data is used: choose the test data with data=<group>/<name>",
                    cfg.ckpt_path, why)
        return f"{name} (the default: {why})"
    if config_choice("experiment"):
        return f"{name} (set by experiment={config_choice('experiment')} or the command line)"
    return f"{name} (chosen on the command line)" if "data" in _chosen_groups() else f"{name} (the default)"


def _chosen_groups() -> set[str]:
    """The config groups the command line chose (``data=...``)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        task = HydraConfig.get().overrides.task
    except ValueError:
        return set()
    return {o.lstrip("+~").split("=", 1)[0] for o in task if "=" in o}


def check_channels(net, datamodule, ckpt_path: str) -> None:
    """Refuse test data whose images have another channel count than the network takes (gray vs RGB), naming
    both, before the network sees a batch (a convolution's error would name neither file nor config)."""
    takes, dataset = input_channels(net), getattr(datamodule, "test_dataset", None)
    sample = dataset[0]["lq"] if takes is not None and dataset is not None else None
    if sample is None or sample.shape[0] == takes:
        return
    kinds = {1: "gray", 3: "RGB"}
    given = sample.shape[0]
    example = {1: " (e.g. data=denoise/bsd68)", 3: " (e.g. data=denoise/cbsd68)"}.get(takes, "")
    raise ConfigError(f"the network in {ckpt_path} takes {takes}-channel ({kinds.get(takes, 'other')}) images, the "
                      f"test data from {config_source('data')} gives {given}-channel ({kinds.get(given, 'other')}) "
                      f"ones: evaluate it on {takes}-channel data{example}, whose datasets set channels: {takes}")


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    with report_failures(cfg):
        evaluate(cfg)


if __name__ == "__main__":
    sys.argv += eval_data_overrides(sys.argv[1:])
    main()
