"""Export deploy-form networks to ONNX and TorchScript, with dynamic batch, height and width.

Both exports first convert a copy of the network to its deploy form (:func:`restore.reparameterize`;
the caller's network is left as it was), then trace it on one example input. The traced graph
computes :class:`~restore.models.unet.RestorationUNet`'s padding to a multiple of
``size_multiple`` and the crop back from the input's size (see
:func:`~restore.models.unet.pad_to_multiple`), so any H, W ≥ ``size_multiple`` runs. The reflect
padding of an exported graph needs that floor; smaller images go through :func:`restore.restore_image`.

ONNX uses PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)`` with
``dynamic_axes``): it needs the ``onnx`` package (``pip install restore[export]``), not onnxruntime
or onnxscript. Every export is checked against
the PyTorch module on an input of another size (not a multiple of ``size_multiple``): TorchScript
always, ONNX when onnxruntime is installed.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from restore.models.reparam import reparameterize

__all__ = ["export_onnx", "export_torchscript", "ExportMismatchError", "DEFAULT_OPSET"]

log = logging.getLogger(__name__)

#: ONNX opset by default (onnxruntime ≥ 1.12 runs it; PyTorch's TorchScript exporter supports 7–20).
DEFAULT_OPSET = 17

#: Largest |exported − PyTorch| accepted by the export check, on images in [0, 1].
CHECK_TOLERANCE = 1e-4

_DYNAMIC_AXES = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}}


class ExportMismatchError(RuntimeError):
    """The exported graph's output differs from the PyTorch module's (it baked in a shape or a branch)."""


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
    """
    if importlib.util.find_spec("onnx") is None:
        raise ImportError("export_onnx needs the onnx package: pip install onnx (or restore[export])")
    deploy, example = _deploy_copy(net, example_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.*is deprecated.*")
        torch.onnx.export(deploy, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"], dynamic_axes=_DYNAMIC_AXES)
    if check:
        try:
            import onnxruntime
        except ImportError:
            log.info("onnxruntime is not installed: %s was not checked against the PyTorch module", path)
        else:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            _check(deploy, lambda x: torch.from_numpy(session.run(None, {"input": x.cpu().numpy()})[0]),
                   example, path)
    return path


def export_torchscript(net: nn.Module, path: str | Path, example_size: int | None = None,
                       check: bool = True) -> Path:
    """Write the network's deploy form as a traced TorchScript module (``torch.jit.load`` reads it).

    Args:
        net: a network mapping (B, C, H, W) to (B, C', H, W); not modified (a copy is re-parameterised).
        path: the file to write (``.pt``; parents created).
        example_size: side of the square example input traced; default ``max(64, 2·size_multiple)``.
        check: compare the traced module with the eager one on a second size (raises
            :class:`ExportMismatchError` beyond ``CHECK_TOLERANCE``).
    """
    deploy, example = _deploy_copy(net, example_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.*is deprecated.*")
        traced = torch.jit.trace(deploy, example, check_trace=False)
        warnings.filterwarnings("ignore", message=".*torch.jit.save.*is deprecated.*")
        torch.jit.save(traced, str(path))
    if check:
        _check(deploy, traced, example, path)
    return path


def _deploy_copy(net: nn.Module, example_size: int | None) -> tuple[nn.Module, torch.Tensor]:
    """→ (a re-parameterised copy of ``net`` in eval mode, a random (1, C, S, S) example on its device)."""
    deploy = reparameterize(copy.deepcopy(net))
    for attr in ("net_config", "checkpoint_path"):  # plain attributes load_model sets; not part of the graph
        deploy.__dict__.pop(attr, None)
    param = next(deploy.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    channels = getattr(deploy, "in_channels", None)
    if channels is None:
        first = next((m for m in deploy.modules() if isinstance(m, nn.Conv2d)), None)
        if first is None:
            raise ValueError(f"cannot tell how many input channels {type(net).__name__} takes: give it an "
                             "`in_channels` attribute")
        channels = first.in_channels
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
