"""Reading and writing weights files: the one module that knows their format.

:mod:`restore.checkpoint` (``load_model``, ``export_model``), :mod:`restore.pruning` (sparse exports,
θ₀, masks) and :mod:`restore.lightning.checkpointing` (Lightning checkpoints) read and write through
here; this module knows nothing of pruning or training.

**Safetensors files** (:func:`save_weights`). Tensors plus string metadata:

* ``format``: ``"restore"`` (dense) or ``"restore-sparse"`` (the sparse encoding below);
  ``format_version``: ``"1"``;
* ``net_config`` (JSON, the network's Hydra config) and ``deploy`` (``"true"``/``"false"``: the config
  builds the re-parameterised form), when the file holds a network; absent in tensor files (masks);
* ``digest``: the weights digest of the stored tensors (below); ``sparse`` (restore-sparse only).

**Sparse encoding** (``restore-sparse``). Every tensor of the dense state dict is stored either as
is, under its own name, or — when that is smaller — as its non-zero values ``<name>::values`` (1-D,
the tensor's dtype, flat order) plus their positions, whichever encoding is smaller for it:

* ``<name>::indices``: int32 flat indices, strictly increasing (4 bytes per non-zero);
* ``<name>::bitmask``: uint8, bit j of byte i set ⇔ flat index 8i + j is non-zero, little bit order,
  ⌈numel/8⌉ bytes (smaller once more than 1/32 of the entries survive).

``metadata["sparse"]`` (JSON) gives, per sparse tensor, ``shape``, ``dtype``, ``encoding`` and ``nnz``.
:func:`densify_state_dict` validates everything (keys, shapes, dtypes, counts, index range and order,
padding bits) and raises ``ValueError`` naming the tensor. Hand-written: safetensors has no sparse
tensors, and ``torch.sparse`` tensors cannot be saved to it.

**Lightning checkpoints** (``.ckpt``, torch's zip format, read with ``weights_only=True``):
:class:`restore.lightning.AtomicCheckpointIO` stores ``weights_digest``, the digest of every tensor
in the checkpoint (network, EMA copy, optimiser state…), each named by its key path joined with
``/`` (``state_dict/net.intro.weight``, ``optimizer_states/0/state/3/exp_avg``).

**Weights digest** (:func:`weights_digest`): SHA-256 over the tensors in sorted name order; for each,
the UTF-8 line ``json.dumps([name, dtype, shape]) + "\\n"`` (dtype as torch names it, ``"float32"``),
then the tensor's bytes (C order, little-endian, as safetensors stores them). Written as
``"sha256:<64 hex digits>"``. Loading recomputes it: a mismatch is a :class:`DamagedFileError` naming
the file; a file without a digest loads with one :class:`UnverifiedWeightsWarning`. It detects damage
(flipped bytes, truncation, edits), not forgery: anyone can recompute it.

**Size limits**, checked before anything of the declared size is allocated, in this order:
(1) the file's declared bytes against the cap (:func:`max_weights_bytes`: ``max_bytes``, else
``$RESTORE_MAX_WEIGHTS_BYTES``, else 4 GiB): a ``.ckpt``'s zip entries' uncompressed sizes (a
compressed entry is refused: ``torch.save`` never compresses), a safetensors header's shapes, a sparse
export's declared dense shapes; (2) in :func:`restore.load_model`, the network the stored config builds
(on the ``meta`` device) against the cap, then the file's declared tensors against that network's
names and shapes; (3) only then are tensors read, digest-checked, densified.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import os
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_object
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from restore.errors import DamagedFileError, UnverifiedWeightsWarning, WeightsSizeError
from restore.models.reparam import is_deployed
from restore.utils.files import atomic_path

__all__ = ["FORMAT", "SPARSE_FORMAT", "FORMAT_VERSION", "DIGEST_KEY", "CKPT_DIGEST_KEY", "MAX_BYTES_ENV",
           "DEFAULT_MAX_BYTES", "WeightsFile", "open_weights", "save_weights", "load_tensors", "weights_digest",
           "file_digest", "checkpoint_tensors", "checkpoint_digest", "verify_digest", "check_checkpoint_archive",
           "max_weights_bytes", "deploy_flag", "config_with_deploy", "config_deploy", "encode_state_dict",
           "sparse_layout", "densify_state_dict", "pack_bits", "unpack_bits", "torch_load_reason"]

FORMAT = "restore"
SPARSE_FORMAT = "restore-sparse"
FORMAT_VERSION = "1"
DIGEST_KEY = "digest"  # in a safetensors file's metadata
CKPT_DIGEST_KEY = "weights_digest"  # in a Lightning checkpoint's dict
MAX_BYTES_ENV = "RESTORE_MAX_WEIGHTS_BYTES"
DEFAULT_MAX_BYTES = 4 * 2**30
ENCODINGS = ("indices", "bitmask")
_DIGEST_PREFIX = "sha256:"
_FLOAT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                 "float64": torch.float64}
# bytes per element of safetensors' dtype names (unknown ones count as 8: an over-estimate is safe)
_SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
                         "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}
_METADATA_KEYS = ("format", "format_version", "net_config", "deploy", DIGEST_KEY, "sparse")


# -- digests ---------------------------------------------------------------------------------------
def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _tensor_bytes(tensor: torch.Tensor):
    """The tensor's bytes as a buffer (no copy for a contiguous CPU tensor)."""
    tensor = tensor.detach()
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    flat = tensor.cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy() if flat.numel() else b""


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """``"sha256:<hex>"`` over the tensors' names, dtypes, shapes and bytes, in sorted name order
    (the definition is in the module docstring)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(json.dumps([name, _dtype_name(tensor.dtype), list(tensor.shape)]).encode() + b"\n")
        digest.update(_tensor_bytes(tensor))
    return _DIGEST_PREFIX + digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """The weights digest of the tensors stored in a safetensors file, as stored (sparse parts
    included), whatever its metadata says: what a model card records for a shipped file."""
    with safe_open(str(path), framework="pt", device="cpu") as f:
        return weights_digest({k: f.get_tensor(k) for k in f.keys()})


def checkpoint_tensors(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """Every tensor in a checkpoint dict (at any depth of dicts, lists, tuples), named by its key path
    joined with ``/``; the stored digest itself is left out."""
    found: dict[str, torch.Tensor] = {}
    stack: list[tuple[Any, tuple[str, ...]]] = [(checkpoint, ())]
    while stack:  # iterative: a deeply nested (hostile) checkpoint cannot exhaust the recursion limit
        node, parts = stack.pop()
        if isinstance(node, torch.Tensor):
            found["/".join(parts)] = node
        elif isinstance(node, Mapping):
            stack.extend((value, (*parts, str(key))) for key, value in node.items()
                         if parts or key != CKPT_DIGEST_KEY)
        elif isinstance(node, (list, tuple)):
            stack.extend((value, (*parts, str(i))) for i, value in enumerate(node))
    return found


def checkpoint_digest(checkpoint: Mapping) -> str:
    """The weights digest of a checkpoint dict (:func:`checkpoint_tensors`)."""
    return weights_digest(checkpoint_tensors(checkpoint))


def verify_digest(actual: str, stored: Any, source: str | Path, expected: str | None = None,
                  fix: str = "use an undamaged copy of it") -> bool:
    """Compare the digest computed from a file's tensors with the one it stores (and with ``expected``,
    e.g. a model card's). Returns True when verified; with no reference digest at all, warns once
    (:class:`UnverifiedWeightsWarning`) and returns False.

    Raises:
        DamagedFileError: a reference digest differs ("<source> was modified or damaged: digest mismatch").
    """
    references = [d for d in (stored, expected) if d is not None]
    if not references:
        warnings.warn(f"{source} stores no weights digest (written by another tool, or before digests were "
                      "stored): damage to it cannot be detected", UnverifiedWeightsWarning, stacklevel=3)
        return False
    for reference in references:
        if reference != actual:
            shown = reference[:23] + "…" if isinstance(reference, str) else repr(reference)
            raise DamagedFileError(f"{source} was modified or damaged: digest mismatch (stored {shown}, its tensors "
                                   f"give {actual[:23]}…); {fix}")
    return True


# -- size limits -----------------------------------------------------------------------------------
def max_weights_bytes(max_bytes: int | None = None) -> int:
    """The cap on the bytes a weights file may declare: ``max_bytes`` if given, else the environment
    variable ``RESTORE_MAX_WEIGHTS_BYTES`` (bytes, or with a K/M/G/T suffix, powers of 1024), else 4 GiB."""
    if max_bytes is not None:
        if int(max_bytes) <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        return int(max_bytes)
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    match = re.fullmatch(r"(\d+)\s*([KMGT]?)(?:i?B)?", text, flags=re.IGNORECASE)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"${MAX_BYTES_ENV}={text!r} is not a size: give bytes, e.g. 8589934592 or 8G")
    return int(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " ")


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _check_cap(declared: int, cap: int, path: str | Path, what: str) -> None:
    if declared > cap:
        raise WeightsSizeError(f"{path}: {what} {_size(declared)} ({declared} bytes), over the limit of {_size(cap)} "
                               f"({cap} bytes); refused before allocating. If the file is genuine, raise the limit "
                               f"(max_bytes=… or ${MAX_BYTES_ENV})")


def check_checkpoint_archive(path: str | Path, max_bytes: int | None = None) -> bool:
    """Size-check a ``.ckpt`` before torch reads it: True for a zip (torch's format) whose entries'
    declared uncompressed sizes sum to at most the cap and are all stored uncompressed, False for a
    file that is not a zip (the legacy format; its size on disk is checked instead).

    Raises:
        WeightsSizeError: over the cap (the file and the numbers are named).
        OSError: an entry is compressed (``torch.save`` never compresses: a zip bomb or another tool's
            archive), or the zip directory is unreadable.
    """
    path, cap = Path(path), max_weights_bytes(max_bytes)
    if not zipfile.is_zipfile(path):
        _check_cap(path.stat().st_size, cap, path, "the file is")
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise OSError(f"Cannot read checkpoint {path}: its zip directory is damaged ({err})") from None
    _check_cap(sum(e.file_size for e in entries), cap, path, "its zip entries declare (uncompressed)")
    compressed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if compressed:
        raise OSError(f"Cannot read checkpoint {path}: entry {compressed[0]!r} is compressed, which torch.save never "
                      "does (a zip bomb, or an archive re-packed by another tool); refused unread")
    return True


# -- deploy form in configs ------------------------------------------------------------------------
def config_with_deploy(config: Mapping, deploy: bool) -> dict:
    """A copy of ``config``, with ``deploy: true`` where its constructor takes it (when ``deploy``):
    the block of a skeleton + block config, else the top level; set only where the constructor has a
    ``deploy`` parameter (imports it: call only on checked configs or the caller's own)."""
    config = copy.deepcopy(dict(config))
    if not deploy:
        return config
    block = config.get("block")
    if isinstance(block, Mapping):
        if _takes_deploy(block.get("_target_")):
            config["block"] = {**block, "deploy": True}
    elif _takes_deploy(config.get("_target_")):
        config["deploy"] = True
    return config


def _takes_deploy(target: Any) -> bool:
    if not isinstance(target, str):
        return False
    try:
        return "deploy" in inspect.signature(get_object(target)).parameters
    except (ImportError, AttributeError, ValueError, TypeError):  # hydra wraps failed imports in ImportError
        return False


def config_deploy(config: Mapping) -> bool:
    """Whether a network config asks for the deploy form (top level or its block)."""
    block = config.get("block")
    return bool(config.get("deploy", False)) or (isinstance(block, Mapping) and bool(block.get("deploy", False)))


def deploy_flag(net: nn.Module, config: Mapping) -> bool:
    """Whether a file holding ``net`` says it is in deploy form: its config asks for it, or the network
    is re-parameterised (:func:`restore.is_deployed`).

    Raises:
        ValueError: the network is partly re-parameterised (no config can rebuild it).
    """
    blocks = [m for m in net.modules() if hasattr(m, "reparameterize")]
    done = sum(getattr(m, "deploy", False) is True for m in blocks)
    if 0 < done < len(blocks):
        raise ValueError(f"the network is partly re-parameterised ({done} of {len(blocks)} blocks): call "
                         "restore.reparameterize(net) on the whole network before saving it")
    return config_deploy(config) or is_deployed(net)


# -- writing ---------------------------------------------------------------------------------------
def save_weights(tensors: Mapping[str, torch.Tensor], path: str | Path, net_config: Mapping | None = None,
                 deploy: bool = False, sparse: bool = False, encoding: str = "auto",
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write tensors as a safetensors file of this format, atomically (:func:`restore.utils.files.atomic_path`).

    Args:
        tensors: a state dict (moved to CPU, made contiguous).
        path: the file (folders are created); an existing one is replaced only once the new one is complete.
        net_config: the network's Hydra config (stored with ``deploy`` applied); None for plain tensor files.
        deploy: the network is in deploy form (see :func:`deploy_flag`).
        sparse: store in the restore-sparse encoding (:func:`encode_state_dict` with ``encoding``).
        metadata: extra string entries (not the format's own keys).

    Returns:
        ``path``.
    """
    clash = [k for k in (metadata or {}) if k in _METADATA_KEYS]
    if clash:
        raise ValueError(f"metadata keys {clash} are the weights format's own")
    stored = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {"format": SPARSE_FORMAT if sparse else FORMAT, "format_version": FORMAT_VERSION}
    if sparse:
        stored, layout = encode_state_dict(stored, encoding)
        meta["sparse"] = json.dumps(layout)
    if net_config is not None:
        meta["net_config"] = json.dumps(config_with_deploy(net_config, deploy))
        meta["deploy"] = "true" if deploy else "false"
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    meta[DIGEST_KEY] = weights_digest(stored)
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(stored, str(tmp), metadata=meta)
    return path


# -- reading ---------------------------------------------------------------------------------------
class WeightsFile:
    """An opened weights file: its config, deploy flag and declared tensor layout, known before any
    tensor's bytes are read (:func:`open_weights`); :meth:`state_dict` reads, verifies and densifies.

    Attributes:
        path: the file.
        net_config: the stored network config (unchecked) or None.
        deploy: whether the stored config builds the deploy form.
        metadata: a safetensors file's metadata (``{}`` for a checkpoint).
        layout: ``{name: shape}`` of the state dict the file holds (dense shapes for a sparse export;
            a checkpoint's network weights without the ``net.`` prefix).
        training: what a checkpoint records of its training run, as stored (unchecked): ``global_step``,
            ``data_config`` (``{"name": <data config name>}``, written by ``train.py``); ``{}`` otherwise.
    """

    def __init__(self, path: Path, net_config: dict | None, deploy: bool, metadata: dict[str, str],
                 layout: dict[str, tuple[int, ...]], training: dict | None = None) -> None:
        self.path, self.net_config, self.deploy, self.metadata, self.layout = path, net_config, deploy, metadata, layout
        self.training = training or {}

    def state_dict(self, names: Iterable[str] | None = None, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
        """The network's tensors (only ``names`` when given: others are neither densified nor moved),
        after the file's digest is verified. They own their memory: the file is read (mapped) once,
        verified and used as the same bytes, and later changes to it cannot reach them."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> WeightsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _SafetensorsFile(WeightsFile):
    def __init__(self, path: Path, cap: int, expected_digest: str | None) -> None:
        try:
            self._handle = safe_open(str(path), framework="pt", device="cpu")
            metadata = dict(self._handle.metadata() or {})
            stored = {k: (tuple(self._handle.get_slice(k).get_shape()), self._handle.get_slice(k).get_dtype())
                      for k in self._handle.keys()}
        except (SafetensorError, OSError) as err:
            raise OSError(f"Cannot read weights file {path}: {err} (corrupt or truncated .safetensors)") from None
        _check_cap(sum(math.prod(s) * _SAFETENSORS_ITEMSIZE.get(d, 8) for s, d in stored.values()), cap, path,
                   "its tensors declare")
        if metadata.get("format") == FORMAT and metadata.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise OSError(f"{path}: format_version {metadata['format_version']!r} of the {FORMAT!r} weights format is "
                          f"not supported (this version of restore reads {FORMAT_VERSION!r}): update restore")
        layout = {k: shape for k, (shape, _) in stored.items()}
        self._sparse = None
        if metadata.get("format") == SPARSE_FORMAT:
            try:
                self._sparse = sparse_layout(metadata)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
            _check_cap(sum(math.prod(info["shape"]) * _FLOAT_DTYPES[info["dtype"]].itemsize
                           for info in self._sparse.values()), cap, path, "its sparse tensors declare (dense)")
            layout = {k: s for k, s in layout.items() if "::" not in k}
            layout.update({k: tuple(info["shape"]) for k, info in self._sparse.items()})
        try:
            config = json.loads(metadata["net_config"]) if "net_config" in metadata else None
        except json.JSONDecodeError as err:
            raise OSError(f"{path}: its `net_config` metadata is not valid JSON ({err})") from None
        super().__init__(path, config, metadata.get("deploy") == "true", metadata, layout)
        self._expected = expected_digest

    def state_dict(self, names: Iterable[str] | None = None, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
        try:
            # safetensors maps the file: copy, so what is verified is what is used
            stored = {k: self._handle.get_tensor(k).clone() for k in self._handle.keys()}
        except (SafetensorError, OSError) as err:
            raise OSError(f"Cannot read weights file {self.path}: {err} (corrupt or truncated .safetensors)") from None
        verify_digest(weights_digest(stored), self.metadata.get(DIGEST_KEY), self.path, self._expected)
        if self._sparse is not None:
            try:
                state = densify_state_dict(stored, self.metadata, names)
            except ValueError as err:
                raise ValueError(f"{self.path}: {err}") from None
        else:
            state = stored
        wanted = set(state) if names is None else set(names)
        return {k: v.to(map_location) for k, v in state.items() if k in wanted}

    def close(self) -> None:
        self.__dict__.pop("_handle", None)


class _CheckpointFile(WeightsFile):
    def __init__(self, path: Path, cap: int, ema: bool, expected_digest: str | None) -> None:
        zipped = check_checkpoint_archive(path, cap)
        try:
            # mmap: the tensors stay in the file until used (their sizes are known from the zip directory)
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
        except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
            raise OSError(f"Cannot read checkpoint {path}: {torch_load_reason(err)}. The file is corrupt, truncated "
                          "or not a checkpoint; only tensors and plain containers are ever loaded from it") from None
        if not isinstance(ckpt, dict):
            raise OSError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict")
        if "state_dict" in ckpt:
            state = ckpt["current_model_state"] if (not ema and "current_model_state" in ckpt) else ckpt["state_dict"]
        else:  # a bare state dict (BasicSR-style files keep it under "params" / "params_ema")
            state = ckpt.get("params_ema" if ema else "params", ckpt.get("params", ckpt))
        if not isinstance(state, Mapping):
            raise OSError(f"{path}: its weights are a {type(state).__name__}, not a state dict")
        if any(k.startswith("net.") for k in state):
            state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        self._ckpt, self._state, self._expected = ckpt, state, expected_digest
        layout = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        training = {k: ckpt[k] for k in ("global_step", "data_config") if k in ckpt}
        super().__init__(path, ckpt.get("net_config"), bool(ckpt.get("deploy", False)), {}, layout, training)

    def state_dict(self, names: Iterable[str] | None = None, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
        wanted = set(self._state) if names is None else set(names)
        # the tensors are mapped from the file: copy the wanted ones, and verify the digest over the copies
        state = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in self._state.items() if k in wanted}
        copies = {id(self._state[k]): v for k, v in state.items()}
        tensors = {name: copies.get(id(t), t) for name, t in checkpoint_tensors(self._ckpt).items()}
        verify_digest(weights_digest(tensors), self._ckpt.get(CKPT_DIGEST_KEY), self.path, self._expected)
        return {k: v.to(map_location) if isinstance(v, torch.Tensor) else v for k, v in state.items()}

    def checkpoint(self, fix: str = "use an undamaged copy of it") -> dict:
        """The whole checkpoint dict (optimiser, callbacks, step…), digest-verified; its tensors stay
        mapped from the file (read-only use)."""
        verify_digest(checkpoint_digest(self._ckpt), self._ckpt.get(CKPT_DIGEST_KEY), self.path, self._expected,
                      fix=fix)
        return self._ckpt

    def close(self) -> None:
        self.__dict__.pop("_ckpt", None)
        self.__dict__.pop("_state", None)


def open_weights(path: str | Path, ema: bool = True, max_bytes: int | None = None,
                 expected_digest: str | None = None) -> WeightsFile:
    """Open a ``.safetensors`` (this format, or a foreign one) or a ``.ckpt`` (any other suffix) and read
    what it declares, size-checked against :func:`max_weights_bytes`, without reading its tensors.

    Args:
        ema: for a checkpoint with EMA weights, those (else the raw ones, ``current_model_state``).
        expected_digest: a digest the file's tensors must also match (a model card's).

    Raises:
        FileNotFoundError: no such file.
        WeightsSizeError: the file declares more than the cap.
        OSError: corrupt, truncated, or not a weights file (named).
        ValueError: a sparse export whose layout metadata is inconsistent (the tensor is named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    cap = max_weights_bytes(max_bytes)
    if path.suffix == ".safetensors":
        return _SafetensorsFile(path, cap, expected_digest)
    return _CheckpointFile(path, cap, ema, expected_digest)


def load_tensors(path: str | Path, fix: str = "use an undamaged copy of it",
                 max_bytes: int | None = None) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file written by :func:`save_weights` (dense), digest-verified.

    Raises:
        DamagedFileError: the file is unreadable (truncated…) or its digest does not match; the message
            names it and ends with ``fix``.
    """
    try:
        with open_weights(path, max_bytes=max_bytes) as f:
            return f.state_dict()
    except FileNotFoundError:
        raise
    except DamagedFileError as err:
        raise DamagedFileError(str(err).rsplit("; ", 1)[0] + f"; {fix}") from None
    except (OSError, ValueError) as err:
        raise DamagedFileError(f"{path} is damaged ({err}); {fix}") from None


def torch_load_reason(err: Exception) -> str:
    """torch.load's error, without its advice to retry with ``weights_only=False`` (which would run
    code from the file) or to allowlist the file's globals."""
    text = str(err)
    detail = re.search(r"WeightsUnpickler error:(.*?)(Check the documentation|$)", text, flags=re.S)
    if detail:
        text = detail.group(1)
    text = re.split(r"\s*(?:Please use|Please file an issue|If you are seeing this error)", text)[0]
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if "weights_only" not in s]
    return " ".join(sentences).strip().rstrip(".") or f"{type(err).__name__} (the file ends too early)"


# -- the sparse encoding ---------------------------------------------------------------------------
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


def _fail(name: str, problem: str) -> ValueError:
    return ValueError(f"restore-sparse file: tensor {name!r}: {problem}")


def sparse_layout(metadata: Mapping[str, str]) -> dict[str, dict]:
    """The ``sparse`` metadata of a restore-sparse file, each entry's fields validated (not yet
    against the tensors): ``{name: {"shape", "dtype", "encoding", "nnz"}}``.

    Raises:
        ValueError: not this format or version, unreadable JSON, or an entry with a bad field (named).
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
    for name, info in sparse.items():
        if not isinstance(info, dict) or not {"shape", "dtype", "encoding", "nnz"} <= set(info):
            raise _fail(name, f"metadata entry must have shape, dtype, encoding and nnz, got {info!r}")
        shape, nnz = info["shape"], info["nnz"]
        if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                for s in shape)):
            raise _fail(name, f"shape must be a list of non-negative integers, got {shape!r}")
        if info["dtype"] not in _FLOAT_DTYPES:
            raise _fail(name, f"dtype must be one of {sorted(_FLOAT_DTYPES)}, got {info['dtype']!r}")
        if info["encoding"] not in ENCODINGS:
            raise _fail(name, f"encoding must be one of {ENCODINGS}, got {info['encoding']!r}")
        numel = math.prod(shape)
        if not isinstance(nnz, int) or isinstance(nnz, bool) or not 0 <= nnz <= numel:
            raise _fail(name, f"nnz must be an integer in [0, {numel}], got {nnz!r}")
    return sparse


def densify_state_dict(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
                       names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """The dense state dict stored in a restore-sparse file (its tensors and its metadata); with
    ``names``, only those tensors are densified (the file is validated whole either way).

    Raises:
        ValueError: not this format or version, unreadable ``sparse`` metadata, or a tensor whose
            parts disagree (missing or unexpected part, shape, dtype, count, index out of range or
            not strictly increasing, bitmask length, padding bits or pop count); the message names it.
    """
    sparse = sparse_layout(metadata)
    wanted = None if names is None else set(names)
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, info in sparse.items():
        index, values = _sparse_positions(name, info, tensors)
        if wanted is None or name in wanted:
            dense = torch.zeros(math.prod(info["shape"]), dtype=values.dtype, device=values.device)
            dense[index.to(values.device)] = values
            out[name] = dense.view(info["shape"])
        used.update(k for k in (f"{name}::values", f"{name}::indices", f"{name}::bitmask") if k in tensors)
    for key, value in tensors.items():
        if key in used:
            continue
        if "::" in key:
            raise _fail(key, "a sparse part with no entry in the metadata (or of an unknown kind)")
        if key in sparse:
            raise _fail(key, "stored both dense and sparse")
        if wanted is None or key in wanted:
            out[key] = value
    return out


def _sparse_positions(name: str, info: dict, tensors: Mapping[str, torch.Tensor]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat indices of the non-zeros, their values) of one sparse tensor, checked against its entry."""
    shape, dtype_name, encoding, nnz = info["shape"], info["dtype"], info["encoding"], info["nnz"]
    numel = math.prod(shape)
    other = "bitmask" if encoding == "indices" else "indices"
    if f"{name}::{other}" in tensors:
        raise _fail(name, f"has both {encoding} (as the metadata says) and {other}")
    values = tensors.get(f"{name}::values")
    positions = tensors.get(f"{name}::{encoding}")
    if values is None or positions is None:
        raise _fail(name, f"missing {name}::values or {name}::{encoding}")
    if values.dtype != _FLOAT_DTYPES[dtype_name] or values.dim() != 1 or values.numel() != nnz:
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
        return index, values
    n_bytes = math.ceil(numel / 8)
    if positions.dtype != torch.uint8 or positions.dim() != 1 or positions.numel() != n_bytes:
        raise _fail(name, f"bitmask must be 1-D uint8 with ⌈{numel}/8⌉ = {n_bytes} bytes, got "
                          f"{positions.dtype} {tuple(positions.shape)}")
    bits = unpack_bits(positions, numel)
    if bool(bits[numel:].any()):
        raise _fail(name, "bitmask has bits set beyond the tensor's size")
    if int(bits.sum()) != nnz:
        raise _fail(name, f"bitmask has {int(bits.sum())} bits set, nnz says {nnz}")
    return bits[:numel].nonzero().flatten(), values
