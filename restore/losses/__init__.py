"""Pixel and frequency losses for restoration.

L1 is ``torch.nn.L1Loss`` and the PSNR loss is ``kornia.losses.PSNRLoss``; configs use them
directly. Written here: the Charbonnier loss with a small ε (kornia's ``CharbonnierLoss`` is the
robust-regression form √(x²+1)−1 with ε fixed at 1, far too flat for [0,1] images) and the
FFT-amplitude term of DeepRFT / NAFNet-style training, and :class:`MultiScaleLoss` for networks with an
output per scale (DeepRFT, MIMO-UNet): the loss of every scale against the target resized to it.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from kornia.filters import laplacian
from torch import nn

__all__ = ["CharbonnierLoss", "FFTLoss", "EdgeLoss", "RestorationLoss", "MultiScaleLoss"]


class CharbonnierLoss(nn.Module):
    """mean √((pred − target)² + ε²), ε = 1e-3 as in MPRNet/DeepRFT."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()


class FFTLoss(nn.Module):
    """mean |rfft2(pred) − rfft2(target)| (DeepRFT's frequency loss; complex difference modulus).

    Computed in float32 so it stays stable under mixed precision.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = torch.fft.rfft2(pred.float(), norm="backward") - torch.fft.rfft2(target.float(), norm="backward")
        return diff.abs().mean()


class EdgeLoss(nn.Module):
    """Charbonnier distance between Laplacians, ``Charbonnier(Δ pred, Δ target)`` (MPRNet / DeepRFT v0's edge
    loss; the Laplacian is ``kornia.filters.laplacian``, 3×3, where MPRNet uses a Gaussian-difference one)."""

    def __init__(self, eps: float = 1e-3, kernel_size: int = 3) -> None:
        super().__init__()
        self.charbonnier = CharbonnierLoss(eps)
        self.kernel_size = kernel_size

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.charbonnier(laplacian(pred.float(), self.kernel_size), laplacian(target.float(), self.kernel_size))


class RestorationLoss(nn.Module):
    """A pixel loss plus an optional FFT term: ``pixel(p, g) + fft_weight · FFTLoss(p, g)``.

    Args:
        pixel: any ``(pred, target) -> scalar`` loss (``nn.L1Loss``, :class:`CharbonnierLoss`,
            ``kornia.losses.PSNRLoss``…).
        fft_weight: weight of the FFT term (0.01 in DeepRFT; 0 disables it).
    """

    def __init__(self, pixel: nn.Module | None = None, fft_weight: float = 0.0) -> None:
        super().__init__()
        self.pixel = pixel if pixel is not None else nn.L1Loss()
        self.fft_weight = fft_weight
        self.fft = FFTLoss() if fft_weight > 0 else None

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.pixel(pred, target)
        if self.fft is not None:
            loss = loss + self.fft_weight * self.fft(pred, target)
        return loss


class MultiScaleLoss(nn.Module):
    """Σ_s w_s · [pixel(p_s, g_s) + fft_weight · FFTLoss(p_s, g_s) + edge_weight · EdgeLoss(p_s, g_s)].

    DeepRFTv2: L1 + 0.01·FFT on every output scale (the defaults); DeepRFT v0: ``pixel`` = Charbonnier,
    ``edge_weight=0.05``. g_s is the target resized to p_s's size (bilinear with antialiasing, as the
    network downsamples its input), so any list of outputs works, e.g. coarse → fine.

    Args:
        pixel: ``(pred, target) -> scalar``; default ``nn.L1Loss``.
        fft_weight: weight of :class:`FFTLoss`.
        edge_weight: weight of :class:`EdgeLoss` (0 disables it).
        scale_weights: one weight per output (default 1 each).

    Shapes: pred (B, C, H_s, W_s) or a list/tuple of them; target (B, C, H, W).
    """

    def __init__(self, pixel: nn.Module | None = None, fft_weight: float = 0.01, edge_weight: float = 0.0,
                 scale_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.pixel = pixel if pixel is not None else nn.L1Loss()
        self.fft_weight, self.edge_weight = fft_weight, edge_weight
        self.fft = FFTLoss() if fft_weight > 0 else None
        self.edge = EdgeLoss() if edge_weight > 0 else None
        self.scale_weights = list(scale_weights) if scale_weights is not None else None

    def forward(self, pred: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        preds = [pred] if isinstance(pred, torch.Tensor) else list(pred)
        weights = self.scale_weights or [1.0] * len(preds)
        if len(weights) != len(preds):
            raise ValueError(f"MultiScaleLoss has {len(weights)} scale_weights but got {len(preds)} outputs")
        total = target.new_zeros(())
        for w, p in zip(weights, preds):
            if p.shape[:2] != target.shape[:2]:
                raise ValueError(f"output of shape {tuple(p.shape)} does not match the target {tuple(target.shape)}")
            g = target if p.shape[-2:] == target.shape[-2:] else F.interpolate(
                target, size=p.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
            loss = self.pixel(p, g)
            if self.fft is not None:
                loss = loss + self.fft_weight * self.fft(p, g)
            if self.edge is not None:
                loss = loss + self.edge_weight * self.edge(p, g)
            total = total + w * loss
        return total
