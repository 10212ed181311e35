"""Helpers around Hydra: instantiation whose errors name the config file, run-folder records."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

__all__ = ["instantiate_node", "config_source", "record_run", "ConfigError"]


class ConfigError(RuntimeError):
    """A config node could not be built; the message names the config file to fix."""


def config_source(key: str) -> str:
    """The config file(s) a dotted key comes from, as far as Hydra's runtime choices tell.

    ``model.net._target_`` with choices ``{model: restoration, model/net: nafnet_tiny}`` →
    ``configs/model/net/nafnet_tiny.yaml``; the chosen experiment is named as well, since it may
    override the value.
    """
    try:
        choices = dict(HydraConfig.get().runtime.choices)
    except ValueError:  # not inside a Hydra app (tests composing by hand)
        return f"the config of `{key}`"
    parts = key.split(".")
    source = None
    for depth in range(len(parts), 0, -1):
        group = "/".join(parts[:depth])
        if choices.get(group) not in (None, "null"):
            source = f"configs/{group}/{choices[group]}.yaml"
            break
    files = [source or "configs/train.yaml (or the primary config)"]
    if choices.get("experiment") not in (None, "null"):
        files.append(f"configs/experiment/{choices['experiment']}.yaml")
    return " or ".join(files)


def instantiate_node(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(cfg[key], **kwargs)``, re-raising errors with the config file.

    A wrong ``_target_`` or a missing required value (``???``) then says where to look.
    """
    node = OmegaConf.select(cfg, key, throw_on_missing=False)
    try:
        return instantiate(node, **kwargs)
    except (InstantiationException, MissingMandatoryValue) as err:
        raise ConfigError(f"Cannot build `{key}` from {config_source(key)}: {err}") from err


def record_run(output_dir: str | Path, cfg: DictConfig) -> None:
    """Keep the exact command line and the resolved config in the run folder (BasicSR habit)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cmd.txt").write_text(" ".join([Path(sys.executable).name] + sys.argv) + "\n")
    (out / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
