"""Loading trained networks in Python, and exporting them as safetensors.

Two formats load (their layout, digests and size limits: :mod:`restore.weights_io`):

* a Lightning checkpoint written by ``train.py`` (``.ckpt``): read with ``weights_only=True``; its
  ``state_dict`` holds the EMA weights when the EMA callback ran (raw ones under
  ``current_model_state``), and ``net_config`` the network's Hydra config;
* an exported weights file (``.safetensors``) from :func:`export_model` (or a pruned sparse export),
  whose metadata holds the network's config and whether it is in deploy (re-parameterised) form.

Loading never runs code from the file: the stored config is checked by :func:`check_net_config`
(every ``_target_`` must be a toolkit network/block of :data:`restore.models.allowlist.TRUSTED_NETWORKS`
or one registered with :func:`restore.register_network`; no interpolations) before
``hydra.utils.instantiate`` sees it. Nothing of a declared size is allocated before the size checks,
the weights' digest must match, and they must be finite.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from restore.errors import MissingNetConfigError, NonFiniteWeightsError, UnsafeCheckpointError, WeightsSizeError
from restore.model_zoo import PRETRAINED_MODELS, model_card, model_card_warning, resolve_model, shipped_digest
from restore.models.allowlist import is_trusted_target, trusted_targets
from restore.models.reparam import reparameterize
from restore.weights_io import config_with_deploy, deploy_flag, max_weights_bytes, open_weights, save_weights

__all__ = ["load_model", "export_model", "read_checkpoint", "build_net", "check_net_config", "describe_state_mismatch",
           "training_record", "TrainingRecord", "UnsafeCheckpointError", "NonFiniteWeightsError",
           "MissingNetConfigError"]

log = logging.getLogger(__name__)

# Hydra's special keys a stored config may use; `_recursive_`, `_convert_` and anything else are refused.
_SPECIAL_KEYS = ("_target_", "_partial_", "_args_")

#: Deepest nesting of mappings and lists a stored network config may have (the toolkit's nest 1 deep):
#: deeper ones are refused before anything recurses into them (copying or building one would hit
#: Python's recursion limit).
MAX_CONFIG_DEPTH = 32


def read_checkpoint(path: str | Path, map_location: Any = "cpu", ema: bool = True,
                    max_bytes: int | None = None) -> tuple[dict, dict | None, bool]:
    """→ (network state dict without the ``net.`` prefix, network config or None, deploy form?).

    The config is returned as stored, unchecked: :func:`build_net` checks it before building. The
    file is size-checked and its digest verified (:mod:`restore.weights_io`).

    Raises:
        FileNotFoundError: no such file.
        WeightsSizeError: the file declares more bytes than ``max_bytes``
            (:func:`restore.weights_io.max_weights_bytes`).
        DamagedFileError: the weights' digest does not match (the file was modified or damaged).
        OSError: the file is corrupt, truncated or not a checkpoint (the message names it).
    """
    with open_weights(path, ema=ema, max_bytes=max_bytes, expected_digest=shipped_digest(Path(path))) as f:
        return f.state_dict(map_location=map_location), f.net_config, f.deploy


def check_net_config(config: Any, source: str | Path = "the stored config") -> None:
    """Refuse a network config that could do anything but build a trusted network.

    Every ``_target_`` (in dicts and lists, at any depth) must be a trusted network/block
    constructor (:data:`~restore.models.allowlist.TRUSTED_NETWORKS`, or registered with
    :func:`restore.register_network`); ``_partial_`` and ``_args_`` only sit next to such a
    target; no other ``_special_`` key; no string holds an OmegaConf interpolation ``${…}``
    (resolvers run code); leaves are str/int/float/bool/None. Nothing is imported or built here.

    Raises:
        UnsafeCheckpointError: naming the offending key or target and ``source`` (the file).
    """
    if not isinstance(config, Mapping) or "_target_" not in config:
        raise UnsafeCheckpointError(f"{source}: the stored network config must be a mapping with a `_target_`, "
                                    f"got {type(config).__name__}")
    if config.get("_partial_") is True:
        raise _refuse(str(source), "net_config._partial_", "the network itself cannot be a partial")
    depth = _nesting_depth(config, MAX_CONFIG_DEPTH)
    if depth > MAX_CONFIG_DEPTH:
        raise UnsafeCheckpointError(f"{source}: the stored network config is nested more than {MAX_CONFIG_DEPTH} "
                                    "levels deep (the toolkit's nest 1 level): a damaged or hostile file, refused")
    _check_node(config, "net_config", str(source))


def _nesting_depth(node: Any, limit: int) -> int:
    """Depth of nested mappings and lists in ``node`` (a leaf is 0), counted without recursion and
    stopping once past ``limit``."""
    deepest, stack = 0, [(node, 0)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, (list, tuple)) else ()
        for child in children:
            if isinstance(child, (Mapping, list, tuple)):
                if depth + 1 > limit:
                    return depth + 1
                deepest = max(deepest, depth + 1)
                stack.append((child, depth + 1))
    return deepest


def _refuse(source: str, where: str, why: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{source}: refusing to build the network: {why} (at {where}). A weights file may only name the "
        f"toolkit's networks and blocks ({', '.join(trusted_targets())}); for your own architecture pass "
        f"`net=` to load_model or call restore.register_network('your.module.Net') first")


def _check_node(node: Any, where: str, source: str) -> None:
    if isinstance(node, Mapping):
        for key in node:
            if not isinstance(key, str):
                raise _refuse(source, where, f"non-string key {key!r}")
            if "${" in key:
                raise _refuse(source, where, f"interpolation in key {key!r}")
            if key.startswith("_") and key.endswith("_") and len(key) > 1 and key not in _SPECIAL_KEYS:
                raise _refuse(source, f"{where}.{key}", f"special key {key!r} is not allowed in a stored config")
        if "_target_" in node:
            target = node["_target_"]
            if not is_trusted_target(target):
                raise _refuse(source, f"{where}._target_", f"_target_ {target!r} is not an allowed network constructor")
        else:
            for key in ("_partial_", "_args_"):
                if key in node:
                    raise _refuse(source, f"{where}.{key}", f"{key} without a _target_")
        if "_partial_" in node and not isinstance(node["_partial_"], bool):
            raise _refuse(source, f"{where}._partial_", f"_partial_ must be true or false, got {node['_partial_']!r}")
        if "_args_" in node and not isinstance(node["_args_"], (list, tuple)):
            raise _refuse(source, f"{where}._args_", "_args_ must be a list")
        for key, value in node.items():
            if key != "_target_":
                _check_node(value, f"{where}.{key}", source)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _check_node(value, f"{where}[{i}]", source)
    elif isinstance(node, str):
        if "${" in node:
            raise _refuse(source, where, f"interpolation in {node!r} (OmegaConf resolvers could run code)")
    elif not (node is None or isinstance(node, (bool, int, float))):
        raise _refuse(source, where, f"value of type {type(node).__name__} (only str, int, float, bool, None, "
                                     "lists and mappings)")


def load_model(path: str | Path, net: nn.Module | None = None, map_location: Any = "cpu", deploy: bool = False,
               ema: bool = True, strict: bool = True, max_bytes: int | None = None) -> nn.Module:
    """Load a trained network, in eval mode; never runs code from the file.

    Args:
        path: a ``.ckpt`` from ``train.py``, a ``.safetensors`` from :func:`export_model`, or the name
            of a shipped pretrained model (:func:`restore.list_models`, e.g. ``"denoise_color"``).
            A string that is exactly a shipped model's name always means that model, whatever the
            working folder holds (a file there named ``denoise_color`` is not used, with a warning);
            to load such a file, give it as a path: ``"./denoise_color"`` or ``Path("denoise_color")``.
        net: a network to load the weights into; by default it is built from the config stored
            in the file, which may only name the toolkit's networks and blocks or ones registered
            with :func:`restore.register_network` (see :func:`check_net_config`).
        map_location: device for the weights (``"cpu"``, ``"cuda"``…).
        deploy: convert re-parameterisable blocks to their deploy form after loading.
        ema: use the EMA weights when the checkpoint has them (else the raw ones).
        strict: raise on missing or unexpected keys (listed in the error); with False they are
            logged and skipped, e.g. to fine-tune from a partly matching checkpoint.
        max_bytes: the most bytes the file and the network it builds may declare; default
            ``$RESTORE_MAX_WEIGHTS_BYTES`` or 4 GiB (:func:`restore.weights_io.max_weights_bytes`).

    Returns:
        the network (``nn.Module``), eval mode, on ``map_location``; ``net.net_config`` holds its
        config so :func:`export_model` can re-export it, ``net.checkpoint_path`` the file.

    Raises:
        FileNotFoundError / OSError: missing, corrupt or truncated file (named).
        WeightsSizeError: the file, or the network its config builds, is over ``max_bytes`` (checked
            before either is allocated; the numbers are named).
        DamagedFileError: the weights do not match the digest the file (or a shipped model's card)
            stores: it was modified or damaged. A file without a digest loads with one
            :class:`~restore.errors.UnverifiedWeightsWarning`.
        UnsafeCheckpointError: the stored config names an untrusted constructor (nothing is built).
        MissingNetConfigError: the file stores no config and no ``net`` was given.
        NonFiniteWeightsError: a weight is NaN or Inf (the file and the first such tensor are named).
        RuntimeError: missing/unexpected keys or shape mismatches with ``strict=True`` (found from the
            file's declared shapes, before its tensors are read).
    """
    path = resolve_model(path)  # a shipped model's name → its file; a path stays a path
    warning = model_card_warning(path)
    if warning:
        log.warning("%s: %s", path.name, warning)
    with open_weights(path, ema=ema, max_bytes=max_bytes, expected_digest=shipped_digest(path)) as f:
        config, is_deploy = f.net_config, f.deploy
        if net is None:
            if config is None:
                raise MissingNetConfigError(f"{path} stores no network config: pass the network to load into as "
                                            "`net=`")
            check_net_config(config, path)
            expected = _network_layout(config, is_deploy, path, max_weights_bytes(max_bytes))
        else:
            if config is not None:
                try:
                    check_net_config(config, path)
                except UnsafeCheckpointError as err:  # the weights are usable; the config is not kept for re-export
                    log.warning("%s", err)
                    config = None
            expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        declared = f.layout
        mismatch = describe_state_mismatch(expected, declared)
        if mismatch is not None:
            msg = f"Loading {path}: {mismatch}"
            if strict:
                raise RuntimeError(msg + " (strict=True; pass strict=False to load only the matching ones)")
            log.warning(msg)
        state = f.state_dict(names=[k for k in declared if k in expected and declared[k] == expected[k]],
                             map_location=map_location)
    _check_finite(state, path)
    if net is None:
        net = build_net(config, deploy=is_deploy, source=path)
    net.load_state_dict(state, strict=False)
    net = net.to(map_location).eval()
    if deploy and not is_deploy:
        reparameterize(net)
        is_deploy = True
    if config is not None:
        net.net_config = config_with_deploy(config, is_deploy)
    net.checkpoint_path = str(path)
    return net


def _network_layout(config: Mapping, deploy: bool, source: Path, cap: int) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of the state dict of the network ``config`` builds, found on the ``meta`` device
    (nothing allocated); refused when that network alone is over ``cap`` bytes."""
    with torch.device("meta"):
        meta = build_net(config, deploy=deploy, source=source)
    needed = sum(t.numel() * t.element_size() for t in (*meta.parameters(), *meta.buffers()))
    if needed > cap:
        raise WeightsSizeError(f"{source}: the network its stored config builds needs {needed / 2**30:.2f} GiB "
                               f"({needed} bytes), over the limit of {cap / 2**30:.2f} GiB ({cap} bytes); refused "
                               "before building it. If the file is genuine, raise the limit (max_bytes=… or "
                               "$RESTORE_MAX_WEIGHTS_BYTES)")
    return {k: tuple(v.shape) for k, v in meta.state_dict().items()}


def load_pretrained(net: nn.Module, spec: str | Path) -> nn.Module:
    """Load pretrained weights into ``net`` before training (BasicSR's ``path.pretrain_network_g``).

    Only the network weights are loaded (EMA ones when the file has them), through :func:`load_model`
    (``weights_only`` reading, never code): not the optimizer, scheduler or step (that is resuming,
    ``ckpt_path``). The network stays in training mode.

    Args:
        net: the network the run built from its config.
        spec: a shipped model's name (:func:`restore.list_models`), a ``.ckpt`` from ``train.py`` or a
            ``.safetensors`` from :func:`export_model`.

    Raises:
        FileNotFoundError / UnknownModelError: no such file or model name.
        RuntimeError: the file's weights do not fit ``net`` (the file and its first missing/unexpected
            keys or shape mismatches are named).
    """
    try:
        load_model(spec, net=net, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f"pretrained={spec}: its weights do not fit the configured network "
                           f"(model.net): {err}") from err
    return net.train()


def _check_finite(state: dict, path: str | Path) -> None:
    for name, tensor in state.items():
        if torch.is_tensor(tensor) and (tensor.is_floating_point() or tensor.is_complex()):
            if not torch.isfinite(tensor).all():
                kind = "NaN" if torch.isnan(tensor).any() else "Inf"
                raise NonFiniteWeightsError(f"{path}: weight {name!r} {tuple(tensor.shape)} holds {kind} values "
                                            "(a diverged run or a corrupted file)")


def describe_state_mismatch(own: Mapping[str, Any], state: Mapping[str, Any]) -> str | None:
    """How the state dict ``state`` (a file's) differs from ``own`` (the network's), in one line: its missing
    keys, unexpected keys and shape mismatches (file → network), the first few of each; None when it fits.
    Values are tensors or shapes (a file's declared layout)."""
    def shape(v: Any) -> tuple[int, ...]:
        return tuple(v.shape) if hasattr(v, "shape") else tuple(v)

    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {shape(state[k])}→{shape(own[k])}" for k in own
                  if k in state and shape(state[k]) != shape(own[k])]
    parts = [f"{what} {_head(keys)}" for what, keys in (
        ("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)) if keys]
    return "; ".join(parts) if parts else None


def _head(keys: list[str], n: int = 8) -> str:
    return f"{keys[:n]}{f' (+{len(keys) - n} more)' if len(keys) > n else ''}"


def build_net(config: Mapping, deploy: bool = False, source: str | Path = "the stored config") -> nn.Module:
    """Check a network config (:func:`check_net_config`), then instantiate it.

    ``deploy=True`` builds the re-parameterised form: ``config["block"]["deploy"] = True`` for a
    skeleton + block config, a top-level ``deploy`` for a factory; set only where the constructor
    has a ``deploy`` parameter.
    """
    check_net_config(config, source)
    net = instantiate(config_with_deploy(config, deploy))
    if not isinstance(net, nn.Module):
        raise TypeError(f"{source}: the stored network config built a {type(net).__name__}, not an nn.Module")
    return net


def export_model(net: nn.Module, path: str | Path, net_config: dict | None = None) -> Path:
    """Save a network's weights as safetensors, with its config and weights digest in the metadata
    (:func:`restore.weights_io.save_weights`: written atomically).

    A network in deploy form (after :func:`restore.reparameterize`) is saved as such and loads
    back through its ``deploy=True`` constructor, without the training-form code path.

    Raises:
        ValueError: no config (pass ``net_config=``), or a partly re-parameterised network.
    """
    config = net_config if net_config is not None else getattr(net, "net_config", None)
    if config is None:
        raise ValueError("export_model needs the network's config (net_config=...) to rebuild it on load")
    return save_weights(net.state_dict(), path, config, deploy=deploy_flag(net, config))


#: a data config's name as Hydra takes it on the command line (``denoise/cbsd68``): nothing else is taken from a file
DATA_CONFIG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*(/[A-Za-z0-9_][A-Za-z0-9_-]*)*")


@dataclass(frozen=True)
class TrainingRecord:
    """What is known of the run that produced a weights file, for ``eval.py``.

    Attributes:
        step: the global step of the weights (a checkpoint's; a model card's recipe), or None.
        data: the name of the data config to test on (``configs/data/<data>.yaml``), or None when unknown.
        source: where ``data`` comes from: ``checkpoint`` (the training config stored in the checkpoint),
            ``run_folder`` (the training run's ``.hydra/hydra.yaml`` beside ``checkpoints/``), ``model_card``
            (a shipped model's card: its test data), or ``unknown``.
    """

    step: int | None
    data: str | None
    source: str


def training_record(spec: str | Path) -> TrainingRecord:
    """The training step and data of a checkpoint, a shipped model's name or an exported weights file.

    Only a data config *name* is taken from a file, checked against :data:`DATA_CONFIG_NAME`, never a config
    to build: the name selects one of the project's own data configs, composed by Hydra as ``data=<name>``.
    A checkpoint written by ``train.py`` stores it (``data_config.name``); an older one is looked up in its run
    folder's ``.hydra/hydra.yaml`` (read as plain YAML: no interpolation is resolved).

    Raises:
        UnsafeCheckpointError: the stored name is not a data config name (naming the file and the value).
        FileNotFoundError / OSError: as :func:`load_model`, for a missing or unreadable file.
    """
    if isinstance(spec, str) and spec in PRETRAINED_MODELS:
        card = model_card(spec)
        data = (card.get("test_sized") or {}).get("data")
        source = f"restore/weights/{spec}.json"
        return TrainingRecord(_int_or_none((card.get("recipe") or {}).get("steps")),
                              _checked_data_name(data, source) if data is not None else None,
                              "model_card" if data is not None else "unknown")
    path = resolve_model(spec)
    with open_weights(path, max_bytes=None) as f:
        training = f.training
    step = _int_or_none(training.get("global_step"))
    stored = training.get("data_config")
    if isinstance(stored, Mapping) and stored.get("name") is not None:
        return TrainingRecord(step, _checked_data_name(stored["name"], path), "checkpoint")
    hydra_file = path.parent.parent / ".hydra" / "hydra.yaml"
    if path.parent.name == "checkpoints" and hydra_file.is_file():
        import yaml

        try:
            choices = yaml.safe_load(hydra_file.read_text())["hydra"]["runtime"]["choices"]
            data = choices.get("data")
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
            data = None
        if data is not None:
            return TrainingRecord(step, _checked_data_name(data, hydra_file), "run_folder")
    return TrainingRecord(step, None, "unknown")


def _checked_data_name(name: Any, source: str | Path) -> str:
    if not isinstance(name, str) or not DATA_CONFIG_NAME.fullmatch(name):
        raise UnsafeCheckpointError(f"{source}: the training data it records, {name!r}, is not a data config name "
                                    "(like denoise/cbsd68): refused, nothing of it is used. Choose the test data "
                                    "with data=<group>/<name>")
    return name


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
