"""PSNR/SSIM after the best integer shift: the evaluation protocol of blind deblurring.

Levin et al., "Understanding and evaluating blind deconvolution algorithms", CVPR 2009 (Sec. 5;
kept by SelfDeblur, Ren et al. CVPR 2020): a blind (or refined) kernel is only defined up to a
translation, which shifts the restored image by as much, so the estimate is compared with the
ground truth at the integer shift (within ±``max_shift`` px) that maximises PSNR. Both images are
cropped by ``max_shift`` on every side so each shift compares the same number of pixels. PSNR and
SSIM themselves are :class:`~restore.metrics.ImageQualityMetrics` (protocol ``rgb``, no further
crop: RGB/gray in [0, 1], SSIM with the 11×11 σ = 1.5 Gaussian window).
"""

from __future__ import annotations

import torch

from restore.metrics.image_quality import ImageQualityMetrics

__all__ = ["image_quality", "shift_aligned_quality"]


def image_quality(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """PSNR (dB) and SSIM of one image pair (1, C, H, W) in [0, 1], protocol ``rgb``, no crop."""
    m = ImageQualityMetrics("rgb")
    m.update(pred.cpu(), target.cpu())
    return {k: float(v) for k, v in m.compute().items()}


def shift_aligned_quality(pred: torch.Tensor, target: torch.Tensor, max_shift: int = 5) -> dict[str, float]:
    """PSNR/SSIM at the integer shift of ``pred`` (|dy|, |dx| ≤ max_shift) that maximises PSNR.

    Args:
        pred: (1, C, H, W) in [0, 1], H and W > 2·max_shift.
        target: the same shape as ``pred``.
        max_shift: the largest |dy| and |dx| tried, in pixels.

    Returns:
        {"psnr", "ssim", "dy", "dx"}: measured on the (H − 2·max_shift)×(W − 2·max_shift) centre of
        ``target`` against ``pred`` displaced by (dy, dx).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    s = int(max_shift)
    h, w = target.shape[-2:]
    if h <= 2 * s or w <= 2 * s:
        raise ValueError(f"image {h}×{w} too small for max_shift={s}")
    ref = target[..., s : h - s, s : w - s].float().clamp(0, 1)
    pred = pred.float().clamp(0, 1)
    best = None
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            cand = pred[..., s + dy : h - s + dy, s + dx : w - s + dx]
            mse = float(((cand - ref) ** 2).mean())
            if best is None or mse < best[0]:
                best = (mse, dy, dx)
    _, dy, dx = best
    out = image_quality(pred[..., s + dy : h - s + dy, s + dx : w - s + dx], ref)
    return {**out, "dy": dy, "dx": dx}
