"""Compact export of a pruned network: a safetensors file whose size shrinks with sparsity.

Layout (``metadata["format"] == "restore-sparse"``, ``format_version`` "1"): every tensor of the
dense state dict (masks folded in) is stored either as is, under its own name, or — when that is
smaller — as its non-zero values ``<name>::values`` (1-D, the tensor's dtype, in flat order) plus
their positions, whichever of the two encodings is smaller for that tensor:

* ``<name>::indices``: int32 flat indices, strictly increasing (4 bytes per non-zero);
* ``<name>::bitmask``: uint8, bit j of byte i set ⇔ flat index 8i + j is non-zero, little bit
  order, ⌈numel/8⌉ bytes (smaller once more than 1/32 of the entries survive).

``metadata["sparse"]`` (JSON) gives, per sparse tensor, ``shape``, ``dtype``, ``encoding`` and
``nnz``; ``net_config`` and ``deploy`` are what :func:`restore.export_model` writes, so
:func:`restore.load_model` rebuilds the network. :func:`densify_state_dict` validates everything
(keys, shapes, dtypes, counts, index range and order, padding bits) and raises ``ValueError``
naming the tensor: a damaged or hand-edited file never loads into a silently different network.
Loading runs no code: safetensors only.

Hand-written: safetensors has no sparse tensors, and ``torch.sparse`` tensors cannot be saved
to it (nor are they smaller than int32 indices + values for unstructured masks).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from restore.pruning.masks import dense_state_dict

__all__ = ["SPARSE_FORMAT", "export_sparse", "densify_state_dict", "encode_state_dict", "pack_bits", "unpack_bits"]

SPARSE_FORMAT = "restore-sparse"
FORMAT_VERSION = "1"
ENCODINGS = ("indices", "bitmask")
_FLOAT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                 "float64": torch.float64}


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Flat bool mask (N,) → uint8 (⌈N/8⌉,), bit j of byte i = mask[8i + j]; padding bits zero."""
    flat = mask.flatten().to(torch.int32)
    flat = torch.nn.functional.pad(flat, (0, (-flat.numel()) % 8))
    weights = (1 << torch.arange(8, dtype=torch.int32, device=flat.device))
    return (flat.view(-1, 8) * weights).sum(dim=1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """uint8 (⌈N/8⌉,) → bool (N + padding,) (the caller checks the padding bits)."""
    shifts = torch.arange(8, dtype=torch.int32, device=packed.device)
    return ((packed.to(torch.int32)[:, None] >> shifts) & 1).flatten().bool()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def encode_state_dict(state: Mapping[str, torch.Tensor], encoding: str = "auto"
                      ) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """Dense state dict → (tensors to save, ``{name: info}`` of the sparse ones).

    Args:
        encoding: ``"auto"`` (per tensor, the smaller of dense / indices / bitmask), or
            ``"indices"`` / ``"bitmask"`` to force that position encoding wherever sparse storage
            is smaller than dense (for measuring the two).
    """
    if encoding not in ("auto", *ENCODINGS):
        raise ValueError(f"encoding must be 'auto', 'indices' or 'bitmask', got {encoding!r}")
    tensors: dict[str, torch.Tensor] = {}
    sparse: dict[str, dict] = {}
    for name, value in state.items():
        if "::" in name:
            raise ValueError(f"state-dict key {name!r} contains '::', reserved by the sparse format")
        value = value.detach().contiguous().cpu()
        if not value.is_floating_point() or value.numel() == 0:
            tensors[name] = value
            continue
        nonzero = value.flatten() != 0
        nnz = int(nonzero.sum())
        cost = {"indices": 4 * nnz, "bitmask": math.ceil(value.numel() / 8)}
        chosen = min(cost, key=cost.get) if encoding == "auto" else encoding
        if nnz * value.element_size() + cost[chosen] >= value.numel() * value.element_size():
            tensors[name] = value  # dense is smaller
            continue
        tensors[f"{name}::values"] = value.flatten()[nonzero].clone()
        if chosen == "indices":
            tensors[f"{name}::indices"] = nonzero.nonzero().flatten().to(torch.int32)
        else:
            tensors[f"{name}::bitmask"] = pack_bits(nonzero)
        sparse[name] = {"shape": list(value.shape), "dtype": _dtype_name(value.dtype), "encoding": chosen, "nnz": nnz}
    return tensors, sparse


def export_sparse(net: nn.Module, path: str | Path, net_config: dict | None = None, encoding: str = "auto") -> Path:
    """Write ``net`` (pruning masks folded in, i.e. made permanent in the file) as a restore-sparse
    safetensors file that :func:`restore.load_model` loads into a dense network.

    Args:
        net: any network; pruned (``torch.nn.utils.prune`` masks attached) or not. Not modified.
        path: the ``.safetensors`` file to write (folders are created).
        net_config: the network's Hydra config; defaults to ``net.net_config``.
        encoding: see :func:`encode_state_dict`.

    Returns:
        ``path``.
    """
    from restore.checkpoint import _looks_deployed, _with_deploy  # the dense export's own rules

    config = net_config if net_config is not None else getattr(net, "net_config", None)
    if config is None:
        raise ValueError("export_sparse needs the network's config (net_config=...) to rebuild it on load")
    tensors, sparse = encode_state_dict(dense_state_dict(net), encoding)
    deploy = bool(config.get("deploy", False)) or _looks_deployed(net)
    meta = {"format": SPARSE_FORMAT, "format_version": FORMAT_VERSION,
            "net_config": json.dumps(_with_deploy(dict(config), deploy)), "deploy": "true" if deploy else "false",
            "sparse": json.dumps(sparse)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def _fail(name: str, problem: str) -> ValueError:
    return ValueError(f"restore-sparse file: tensor {name!r}: {problem}")


def densify_state_dict(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> dict[str, torch.Tensor]:
    """The dense state dict stored in a restore-sparse file (its tensors and its metadata).

    Raises:
        ValueError: not this format or version, unreadable ``sparse`` metadata, or a tensor whose
            parts disagree (missing or unexpected part, shape, dtype, count, index out of range or
            not strictly increasing, bitmask length, padding bits or pop count); the message names it.
    """
    if (metadata or {}).get("format") != SPARSE_FORMAT:
        raise ValueError(f"not a {SPARSE_FORMAT} file (metadata format={(metadata or {}).get('format')!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{SPARSE_FORMAT} format_version {metadata.get('format_version')!r} is not supported "
                         f"(this version of restore reads {FORMAT_VERSION!r})")
    try:
        sparse = json.loads(metadata.get("sparse", ""))
    except json.JSONDecodeError as err:
        raise ValueError(f"{SPARSE_FORMAT} metadata 'sparse' is not valid JSON: {err}") from err
    if not isinstance(sparse, dict):
        raise ValueError(f"{SPARSE_FORMAT} metadata 'sparse' must map tensor names to their layout")
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, info in sparse.items():
        out[name] = _densify_one(name, info, tensors)
        used.update(k for k in (f"{name}::values", f"{name}::indices", f"{name}::bitmask") if k in tensors)
    for key, value in tensors.items():
        if key in used:
            continue
        if "::" in key:
            raise _fail(key, "a sparse part with no entry in the metadata (or of an unknown kind)")
        if key in out:
            raise _fail(key, "stored both dense and sparse")
        out[key] = value
    return out


def _densify_one(name: str, info: object, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    if not isinstance(info, dict) or not {"shape", "dtype", "encoding", "nnz"} <= set(info):
        raise _fail(name, f"metadata entry must have shape, dtype, encoding and nnz, got {info!r}")
    shape, dtype_name, encoding, nnz = info["shape"], info["dtype"], info["encoding"], info["nnz"]
    if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                            for s in shape)):
        raise _fail(name, f"shape must be a list of non-negative integers, got {shape!r}")
    if dtype_name not in _FLOAT_DTYPES:
        raise _fail(name, f"dtype must be one of {sorted(_FLOAT_DTYPES)}, got {dtype_name!r}")
    if encoding not in ENCODINGS:
        raise _fail(name, f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    numel = math.prod(shape)
    if not isinstance(nnz, int) or isinstance(nnz, bool) or not 0 <= nnz <= numel:
        raise _fail(name, f"nnz must be an integer in [0, {numel}], got {nnz!r}")
    other = "bitmask" if encoding == "indices" else "indices"
    if f"{name}::{other}" in tensors:
        raise _fail(name, f"has both {encoding} (as the metadata says) and {other}")
    values = tensors.get(f"{name}::values")
    positions = tensors.get(f"{name}::{encoding}")
    if values is None or positions is None:
        raise _fail(name, f"missing {name}::values or {name}::{encoding}")
    dtype = _FLOAT_DTYPES[dtype_name]
    if values.dtype != dtype or values.dim() != 1 or values.numel() != nnz:
        raise _fail(name, f"values must be 1-D {dtype_name} with nnz={nnz} entries, got {values.dtype} "
                          f"{tuple(values.shape)}")
    if encoding == "indices":
        if positions.dtype != torch.int32 or positions.dim() != 1 or positions.numel() != nnz:
            raise _fail(name, f"indices must be 1-D int32 with nnz={nnz} entries, got {positions.dtype} "
                              f"{tuple(positions.shape)}")
        index = positions.to(torch.int64)
        if nnz and (int(index.min()) < 0 or int(index.max()) >= numel):
            raise _fail(name, f"indices out of range [0, {numel}) (min {int(index.min())}, max {int(index.max())})")
        if nnz > 1 and not bool((index[1:] > index[:-1]).all()):
            raise _fail(name, "indices are not strictly increasing (repeated or unsorted)")
    else:
        n_bytes = math.ceil(numel / 8)
        if positions.dtype != torch.uint8 or positions.dim() != 1 or positions.numel() != n_bytes:
            raise _fail(name, f"bitmask must be 1-D uint8 with ⌈{numel}/8⌉ = {n_bytes} bytes, got "
                              f"{positions.dtype} {tuple(positions.shape)}")
        bits = unpack_bits(positions, numel)
        if bool(bits[numel:].any()):
            raise _fail(name, "bitmask has bits set beyond the tensor's size")
        if int(bits.sum()) != nnz:
            raise _fail(name, f"bitmask has {int(bits.sum())} bits set, nnz says {nnz}")
        index = bits[:numel].nonzero().flatten()
    dense = torch.zeros(numel, dtype=dtype, device=values.device)
    dense[index.to(values.device)] = values
    return dense.view(shape)
