"""Export deploy-form networks to ONNX and TorchScript, with dynamic batch, height and width.

Both exports first convert a copy of the network to its deploy form (:func:`restore.reparameterize`;
the caller's network is left as it was), then trace it on one example input. The traced graph
computes :class:`~restore.models.unet.RestorationUNet`'s padding to a multiple of
``size_multiple`` and the crop back from the input's size (see
:func:`~restore.models.unet.pad_to_multiple`), so any H, W ≥ ``size_multiple`` runs. The reflect
padding of an exported graph needs that floor; smaller images go through :func:`restore.restore_image`.

ONNX uses PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)`` with
``dynamic_axes``): it needs the ``onnx`` package (``pip install restore[export]``), not onnxruntime
or onnxscript. That exporter has no FFT operators: a network calling ``torch.fft`` (DeepRFT's
Fourier kernel estimator, Res-FFT blocks) is refused before tracing, pointing to TorchScript.
Every export is checked against the PyTorch module on an input of another size (not a multiple of
``size_multiple``): TorchScript always, ONNX when onnxruntime is installed.

The file is written only once the export and its check succeeded, whole or not at all
(:func:`restore.utils.files.atomic_write`); a path that cannot be written is a
:class:`~restore.utils.files.WriteError` naming it, before anything is traced.
"""

from __future__ import annotations

import copy
import errno
import importlib.util
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from restore.errors import ExportMismatchError, UnsupportedExportError
from restore.inference import input_channels
from restore.models.reparam import reparameterize
from restore.utils.files import WriteError, atomic_write, check_output_folder

__all__ = ["export_onnx", "export_torchscript", "check_export_path", "check_opset", "ExportMismatchError",
           "UnsupportedExportError", "DEFAULT_OPSET", "ONNX_OPSETS"]

log = logging.getLogger(__name__)

#: ONNX opset by default (onnxruntime ≥ 1.12 runs it).
DEFAULT_OPSET = 17

#: Opsets PyTorch's TorchScript-based ONNX exporter writes (``torch.onnx._constants``: 7 to 20).
ONNX_OPSETS = range(7, 21)

#: Largest |exported − PyTorch| accepted by the export check, on images in [0, 1].
CHECK_TOLERANCE = 1e-4

_DYNAMIC_AXES = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}}


def export_onnx(net: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET, example_size: int | None = None,
                check: bool = True) -> Path:
    """Write the network's deploy form as an ONNX model with dynamic batch, height and width.

    Args:
        net: a network mapping (B, C, H, W) to (B, C', H, W), e.g. from :func:`restore.load_model`;
            not modified (a copy is re-parameterised).
        path: the ``.onnx`` file to write (parents created).
        opset: ONNX opset version.
        example_size: side of the square example input traced; default ``max(64, 2·size_multiple)``.
        check: compare onnxruntime's output with the module's on a second size, when onnxruntime
            is installed (raises :class:`ExportMismatchError` beyond ``CHECK_TOLERANCE``).

    Graph: input ``"input"`` (B, C, H, W) float32 in [0, 1] → output ``"output"`` (B, C', H, W).

    Raises:
        UnsupportedExportError: ``opset`` outside :data:`ONNX_OPSETS`, or a network that calls ``torch.fft``
            (export it with :func:`export_torchscript`).
        WriteError: ``path`` cannot be written (named; a full disk names its folder).
    """
    if importlib.util.find_spec("onnx") is None:
        raise ImportError("export_onnx needs the onnx package: pip install onnx (or restore[export])")
    check_opset(opset)
    path = check_export_path(path)
    deploy, example = _deploy_copy(net, example_size)
    fft = _fft_functions(deploy, example)
    if fft:
        raise UnsupportedExportError(f"{type(net).__name__} calls {', '.join(fft)} (torch.fft), which PyTorch's ONNX "
                                     f"exporter cannot write: export it to TorchScript instead ({path.stem}.pt, "
                                     "restore.export.export_torchscript)")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.*is deprecated.*")
        torch.onnx.export(deploy, (example,), buffer, dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"], dynamic_axes=_DYNAMIC_AXES)
    if check:
        try:
            import onnxruntime
        except ImportError:
            log.info("onnxruntime is not installed: %s was not checked against the PyTorch module", path)
        else:
            session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
            _check(deploy, lambda x: torch.from_numpy(session.run(None, {"input": x.cpu().numpy()})[0]),
                   example, path)
    return _write(buffer, path)


def export_torchscript(net: nn.Module, path: str | Path, example_size: int | None = None,
                       check: bool = True) -> Path:
    """Write the network's deploy form as a traced TorchScript module (``torch.jit.load`` reads it).

    Args:
        net: a network mapping (B, C, H, W) to (B, C', H, W); not modified (a copy is re-parameterised).
        path: the file to write (``.pt``; parents created).
        example_size: side of the square example input traced; default ``max(64, 2·size_multiple)``.
        check: compare the traced module with the eager one on a second size (raises
            :class:`ExportMismatchError` beyond ``CHECK_TOLERANCE``).

    Raises:
        WriteError: ``path`` cannot be written (named; a full disk names its folder).
    """
    path = check_export_path(path)
    deploy, example = _deploy_copy(net, example_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.*is deprecated.*")
        traced = torch.jit.trace(deploy, example, check_trace=False)
        warnings.filterwarnings("ignore", message=".*torch.jit.save.*is deprecated.*")
        # into memory, then written by Python: torch's own file writer aborts the process on a full disk
        torch.jit.save(traced, buffer)
    if check:
        _check(deploy, traced, example, path)
    return _write(buffer, path)


def check_opset(opset: int) -> None:
    """Refuse an ONNX opset outside :data:`ONNX_OPSETS` (:class:`UnsupportedExportError`), before any tracing."""
    if opset not in ONNX_OPSETS:
        raise UnsupportedExportError(f"opset {opset}: PyTorch's TorchScript-based ONNX exporter writes opsets "
                                     f"{ONNX_OPSETS.start} to {ONNX_OPSETS.stop - 1}; leave it at the default "
                                     f"{DEFAULT_OPSET} unless your runtime needs another")


def check_export_path(path: str | Path) -> Path:
    """``path`` as a Path; refused (:class:`WriteError`) when it is a folder, or its folder cannot hold it (a
    part of it is a file, a symbolic link loop…), before any tracing."""
    path = Path(path)
    if path.is_dir():
        example = path / f"net{path.suffix or '.onnx'}"
        raise WriteError(errno.EISDIR, f"{path} is a folder: give the file to write, e.g. {example}", str(path))
    check_output_folder(path.parent)
    return path


def _write(buffer: io.BytesIO, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(buffer.getbuffer())
    return path


class _FunctionRecorder(TorchFunctionMode):
    """Names of the ``torch.*`` functions called inside the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, str] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.setdefault(getattr(func, "__name__", ""), getattr(func, "__module__", "") or "")
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def _fft_functions(net: nn.Module, example: torch.Tensor) -> list[str]:
    """The ``torch.fft`` functions one forward pass of ``net`` calls (the ONNX exporter has none of them;
    checked first, as its failure prints the whole traced graph)."""
    with _FunctionRecorder() as recorder:
        net(example)
    return sorted(f"torch.fft.{name.removeprefix('fft_')}" for name, module in recorder.calls.items()
                  if module == "torch._C._fft")


def _deploy_copy(net: nn.Module, example_size: int | None) -> tuple[nn.Module, torch.Tensor]:
    """→ (a re-parameterised copy of ``net`` in eval mode, a random (1, C, S, S) example on its device)."""
    deploy = reparameterize(copy.deepcopy(net))
    for attr in ("net_config", "checkpoint_path"):  # plain attributes load_model sets; not part of the graph
        deploy.__dict__.pop(attr, None)
    param = next(deploy.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    channels = input_channels(deploy)
    if channels is None:
        raise ValueError(f"cannot tell how many input channels {type(net).__name__} takes: give it an "
                         "`in_channels` attribute")
    multiple = int(getattr(deploy, "size_multiple", 1))
    size = example_size or max(64, 2 * multiple)
    if size < multiple:
        raise ValueError(f"example_size {size} is smaller than the network's size_multiple {multiple}")
    example = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    return deploy, example


@torch.no_grad()
def _check(module: nn.Module, exported, example: torch.Tensor, path: Path) -> None:
    """Exported vs PyTorch output on a (2, C, S+3, S+5) input: another batch, height and width, and
    sizes off the network's multiple (so the padding and the crop are exercised)."""
    b, c, h, w = example.shape
    x = torch.rand(2, c, h + 3, w + 5, generator=torch.Generator().manual_seed(1)).to(example.device)
    expected = module(x)
    got = exported(x).to(expected.device)
    if got.shape != expected.shape:
        raise ExportMismatchError(f"{path}: on an input of shape {tuple(x.shape)} the export gives "
                                  f"{tuple(got.shape)}, the module {tuple(expected.shape)} (a shape was baked in)")
    diff = (got - expected).abs().max().item()
    if not diff <= CHECK_TOLERANCE:
        raise ExportMismatchError(f"{path}: on an input of shape {tuple(x.shape)} the export differs from the "
                                  f"module by up to {diff:.3g} (> {CHECK_TOLERANCE}): a shape-dependent branch "
                                  "was traced at the example size")
