"""Train a restoration model: `python train.py [experiment=<group>/<name>] [key=value ...]`.

seed → datamodule → model → callbacks → loggers → trainer → fit → (test), as in the
lightning-hydra-template. The run folder (outputs/<task_name>/<timestamp>/) gets the resolved
config, the command line, CSV/TensorBoard logs and checkpoints/{best,last}.ckpt.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
import lightning as L  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from restore.utils.config import instantiate_node, record_run  # noqa: E402
from restore.utils.reporting import print_metrics, split_metrics, write_metrics  # noqa: E402

log = logging.getLogger(__name__)


def instantiate_group(cfg: DictConfig, key: str) -> list:
    """Instantiate every `_target_` entry of a dict group (callbacks, logger); None → []."""
    node = OmegaConf.select(cfg, key)
    if not node:
        return []
    return [instantiate_node(cfg, f"{key}.{name}") for name, sub in node.items() if sub and "_target_" in sub]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and optionally test) the configured model; returns the final logged metrics."""
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
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.get("test"):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best, weights_only=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    if trainer.is_global_zero and any(k.startswith("val/") for k in metrics):
        protocols = getattr(model, "protocols", [])
        groups = split_metrics(metrics, "val")
        print_metrics(groups, f"validation at step {trainer.global_step} (EMA weights if enabled)", protocols)
        write_metrics(groups, output_dir, protocols, {"step": trainer.global_step})
        ckpt = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if ckpt:
            log.info("Best checkpoint: %s", ckpt)
    return metrics


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get("val/psnr")  # for Hydra sweepers


if __name__ == "__main__":
    main()
