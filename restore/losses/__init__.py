"""Pixel and frequency losses for restoration.

L1 is ``torch.nn.L1Loss`` and the PSNR loss is ``kornia.losses.PSNRLoss``; configs use them
directly. Written here: the Charbonnier loss with a small ε (kornia's ``CharbonnierLoss`` is the
robust-regression form √(x²+1)−1 with ε fixed at 1, far too flat for [0,1] images) and the
FFT-amplitude term of DeepRFT / NAFNet-style training.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CharbonnierLoss", "FFTLoss", "RestorationLoss"]


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
