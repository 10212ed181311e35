"""Loading trained networks in Python, and exporting them as safetensors.

Two formats load:

* a Lightning checkpoint written by ``train.py`` (``.ckpt``): read with ``weights_only=True``; its
  ``state_dict`` holds the EMA weights when the EMA callback ran (raw ones under
  ``current_model_state``), and ``net_config`` the network's Hydra config;
* an exported weights file (``.safetensors``) from :func:`export_model`, whose metadata holds the
  network's config and whether it is in deploy (re-parameterised) form.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from restore.models.reparam import reparameterize

__all__ = ["load_model", "export_model", "read_checkpoint"]

log = logging.getLogger(__name__)


def read_checkpoint(path: str | Path, map_location: Any = "cpu", ema: bool = True) -> tuple[dict, dict | None, bool]:
    """→ (network state dict without the ``net.`` prefix, network config or None, deploy form?)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") == "restore-sparse":  # pruned networks (restore.pruning.export_sparse)
            from restore.pruning.sparse import densify_state_dict
            state = densify_state_dict(state, meta)
        config = json.loads(meta["net_config"]) if "net_config" in meta else None
        return state, config, meta.get("deploy") == "true"
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise OSError(f"Cannot read checkpoint {path} (weights_only=True): {err}") from err
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    if "state_dict" in ckpt:
        state = ckpt["current_model_state"] if (not ema and "current_model_state" in ckpt) else ckpt["state_dict"]
    else:  # a bare state dict (BasicSR-style files keep it under "params" / "params_ema")
        state = ckpt.get("params_ema" if ema else "params", ckpt.get("params", ckpt))
    if any(k.startswith("net.") for k in state):
        state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    return state, ckpt.get("net_config"), bool(ckpt.get("deploy", False))


def load_model(path: str | Path, net: nn.Module | None = None, map_location: Any = "cpu", deploy: bool = False,
               ema: bool = True, strict: bool = True) -> nn.Module:
    """Load a trained network, in eval mode.

    Args:
        path: a ``.ckpt`` from ``train.py`` or a ``.safetensors`` from :func:`export_model`.
        net: a network to load the weights into; by default it is built from the config stored
            in the file.
        map_location: device for the weights (``"cpu"``, ``"cuda"``…).
        deploy: convert re-parameterisable blocks to their deploy form after loading.
        ema: use the EMA weights when the checkpoint has them (else the raw ones).
        strict: raise on missing or unexpected keys (listed in the error); with False they are
            logged and skipped, e.g. to fine-tune from a partly matching checkpoint.

    Returns:
        the network (``nn.Module``), eval mode, on ``map_location``; ``net.net_config`` holds its
        config so :func:`export_model` can re-export it.
    """
    state, config, is_deploy = read_checkpoint(path, map_location, ema)
    if net is None:
        if config is None:
            raise ValueError(f"{path} stores no network config: pass the network to load into as `net=`")
        net = build_net(config, deploy=is_deploy)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)}→{tuple(own[k].shape)}" for k in own
                  if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        msg = f"Loading {path}: " + "; ".join(f"{what} {_head(keys)}" for what, keys in (
            ("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)) if keys)
        if strict:
            raise RuntimeError(msg + " (strict=True; pass strict=False to load only the matching ones)")
        log.warning(msg)
    net.load_state_dict({k: v for k, v in state.items() if k in own and v.shape == own[k].shape}, strict=False)
    net = net.to(map_location).eval()
    if deploy and not is_deploy:
        reparameterize(net)
        is_deploy = True
    if config is not None:
        net.net_config = _with_deploy(config, is_deploy)
    return net


def _head(keys: list[str], n: int = 8) -> str:
    return f"{keys[:n]}{f' (+{len(keys) - n} more)' if len(keys) > n else ''}"


def build_net(config: dict, deploy: bool = False) -> nn.Module:
    """Instantiate a network from its Hydra config (``deploy=True`` only for nets that take it)."""
    return instantiate(_with_deploy(config, deploy) if deploy else config)


def _with_deploy(config: dict, deploy: bool) -> dict:
    config = dict(config)
    if deploy:
        config["deploy"] = True
    return config


def export_model(net: nn.Module, path: str | Path, net_config: dict | None = None) -> Path:
    """Save a network's weights as safetensors, with its config in the metadata.

    A network in deploy form (after :func:`restore.reparameterize`) is saved as such and loads
    back through its ``deploy=True`` constructor, without the training-form code path.
    """
    config = net_config if net_config is not None else getattr(net, "net_config", None)
    if config is None:
        raise ValueError("export_model needs the network's config (net_config=...) to rebuild it on load")
    deploy = bool(config.get("deploy", False)) or _looks_deployed(net)
    meta = {"format": "restore", "net_config": json.dumps(_with_deploy(config, deploy)),
            "deploy": "true" if deploy else "false"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata=meta)
    return path


def _looks_deployed(net: nn.Module) -> bool:
    """True when some block reports it has been re-parameterised (``deploy`` attribute)."""
    return any(getattr(m, "deploy", False) is True for m in net.modules())
