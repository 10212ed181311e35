"""``deblur_semiblind``: restore one image given an inaccurate kernel (deep residual prior).

Tang et al., CVPR 2023 — see :mod:`restore.semiblind.solver` for the model and algorithm.
"""

from __future__ import annotations

from typing import Any

import torch

from restore.semiblind.kernels import as_kernel
from restore.semiblind.solver import DeepResidualPrior, config_from
from restore.utils.image import from_tensor, to_tensor

__all__ = ["deblur_semiblind", "check_inputs"]


def check_inputs(image: torch.Tensor, kernel: torch.Tensor, gt: torch.Tensor | None = None) -> None:
    """Validate y (1, C, H, W) and k̂ (kh, kw); raises ValueError naming the problem."""
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be a single image (1, C, H, W), got shape {tuple(image.shape)}")
    c, h, w = image.shape[1:]
    if c not in (1, 3):
        raise ValueError(f"image must have 1 (gray) or 3 (RGB) channels, got {c}")
    if not torch.isfinite(image).all():
        raise ValueError("image contains NaN or Inf values")
    kh, kw = kernel.shape
    if kh > h or kw > w:
        raise ValueError(f"kernel ({kh}×{kw}) is larger than the image ({h}×{w})")
    if gt is not None and tuple(gt.shape) != tuple(image.shape):
        raise ValueError(f"ground truth shape {tuple(gt.shape)} differs from the image shape {tuple(image.shape)}")


def deblur_semiblind(
    image: Any,
    kernel: Any,
    seed: int = 0,
    *,
    preset: str = "fast",
    device: str | torch.device | None = None,
    gt: Any = None,
    return_residual: bool = False,
    return_history: bool = False,
    **cfg: Any,
) -> Any:
    """Semi-blind deblurring of ``image`` with the inaccurate ``kernel``.

    Args:
        image: blurry image — path, PIL image, numpy (H×W or H×W×C, uint8 or float in [0, 1]) or
            tensor ((C, H, W) or (1, C, H, W) in [0, 1]); gray or RGB.
        kernel: (kh, kw) array/tensor summing to 1, or a path (.png normalised to sum 1, .txt, .npy).
        seed: seeds the networks and their inputs (bitwise-reproducible on CPU).
        preset: 'fast' (2-core CPU, default: 600 iterations, ≈4 min for a 256² gray image on 2 idle
            cores) or 'paper' (the paper's networks and 2000 iterations).
        device: default: the input tensor's device, else CUDA when available, else CPU.
        gt: ground truth (same kinds as ``image``), only for the PSNR history — never for stopping.
        return_residual: also return the residual r (a float tensor (1, C, H, W), signed).
        return_history: also return the per-25-iteration history (loss terms, PSNR if ``gt``).
        **cfg: overrides of :class:`~restore.semiblind.solver.DRPConfig` (iterations, lr, residual_lr, lambda1,
            lambda2, tv_weight, image_channels, ..., tol).

    Returns:
        the restored image in the input's kind; with ``return_residual``/``return_history`` a
        tuple (image, residual?, history?).
    """
    y, kind = to_tensor(image)
    k = as_kernel(kernel)
    g = to_tensor(gt, channels=y.shape[1])[0] if gt is not None else None
    check_inputs(y, k, g)
    if device is None:
        device = y.device if (isinstance(image, torch.Tensor) and image.is_cuda) else (
            "cuda" if torch.cuda.is_available() else "cpu")
    y = y.to(device)
    model = DeepResidualPrior(y, k.float().to(device), config_from(preset, **cfg), seed=seed)
    history = model.run(gt=g.to(device) if g is not None else None)
    out = [from_tensor(model.estimate(), kind)]
    if return_residual:
        out.append(model.residual())
    if return_history:
        out.append(history)
    return out[0] if len(out) == 1 else tuple(out)
