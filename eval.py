"""Evaluate a checkpoint: `python eval.py ckpt_path=<ckpt> [data=<name>] [experiment=<name>] [save_images=true]
[deploy=true]`.

The network is rebuilt from the checkpoint (its stored config, EMA weights when present), tested
on the datamodule's test set (its val set when it has none); a rich table is printed and
metrics.json / metrics.md are written to the run folder, restored images to <run>/images/. A failure ends
with one line naming the culprit; its traceback goes to the run folder's <task_name>.log (HYDRA_FULL_ERROR=1
prints it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))
# logger=mlflow writes a local store; MLflow's usage telemetry would send events to its servers
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import hydra  # noqa: E402
import lightning as L  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from restore.checkpoint import MissingNetConfigError, load_model  # noqa: E402
from restore.inference import input_channels  # noqa: E402
from restore.lightning import KernelImages  # noqa: E402
from restore.utils.config import (  # noqa: E402
    ConfigError,
    config_source,
    instantiate_node,
    instantiate_trainer,
    record_run,
    report_failures,
)
from restore.utils.reporting import add_task_average, print_metrics, write_metrics  # noqa: E402

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint; returns the logged test metrics."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    record_run(output_dir, cfg)

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
        print_metrics(results, f"{cfg.ckpt_path}", model.protocols)
        paths = write_metrics(results, output_dir, model.protocols,
                              {"ckpt_path": str(cfg.ckpt_path), "deploy": bool(cfg.deploy)})
        log.info("Metrics written to %s", ", ".join(map(str, paths)))
        if save_dir:
            log.info("Restored images in %s", save_dir)
    return metrics


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
    main()
