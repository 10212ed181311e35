"""Deep Image Prior "skip" encoder–decoder, the untrained generator of the deep residual prior.

Ulyanov et al., "Deep Image Prior", CVPR 2018 (https://arxiv.org/abs/1711.10925), architecture of
the supplement (skip net); used by Tang et al., CVPR 2023 for both I(z_x) (5 levels × 128 channels,
skip 16, sigmoid) and the residual generator R(z_r) (16/16/32/64/64, no sigmoid). Written from
the paper's description: stride-2 3×3 conv + 3×3 conv per level, 1×1 skip branch, bilinear
upsampling, BatchNorm, LeakyReLU(0.2), reflection padding.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["SkipNet"]


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    pad = (k - 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad else []
    layers.append(nn.Conv2d(cin, cout, k, stride=stride))
    return nn.Sequential(*layers)


def _bn_act(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True)]


class _Level(nn.Module):
    """One U level: concat(skip(x), up(deeper(down(x)))) → BN → 3×3 conv → 1×1 conv."""

    def __init__(self, cin: int, down: int, up: int, skip: int, deeper: nn.Module | None, deeper_out: int):
        super().__init__()
        self.skip = nn.Sequential(_conv(cin, skip, 1), *_bn_act(skip)) if skip else None
        self.down = nn.Sequential(_conv(cin, down, 3, 2), *_bn_act(down), _conv(down, down, 3), *_bn_act(down))
        self.deeper = deeper
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        cat = skip + (deeper_out if deeper is not None else down)
        self.fuse = nn.Sequential(nn.BatchNorm2d(cat), _conv(cat, up, 3), *_bn_act(up), _conv(up, up, 1), *_bn_act(up))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        if self.deeper is not None:
            d = self.deeper(d)
        d = self.up(d)
        parts = [self.skip(x), d] if self.skip is not None else [d]
        return self.fuse(torch.cat(parts, 1))


class SkipNet(nn.Module):
    """DIP skip net: (B, in_channels, H, W) → (B, out_channels, H, W), H and W multiples of 2**levels.

    Args:
        in_channels: channels of the fixed random input z.
        out_channels: image channels (1 gray, 3 RGB).
        channels_down / channels_up / channels_skip: per-level widths (paper image net: 5 × 128,
            skip 16; residual net: 16/16/32/64/64).
        sigmoid: squash the output to (0, 1) (image net yes, residual net no).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels_down: Sequence[int] = (128, 128, 128, 128, 128),
        channels_up: Sequence[int] | None = None,
        channels_skip: Sequence[int] | int = 16,
        sigmoid: bool = True,
    ):
        super().__init__()
        channels_up = list(channels_up or channels_down)
        if isinstance(channels_skip, int):
            channels_skip = [channels_skip] * len(channels_down)
        if not (len(channels_down) == len(channels_up) == len(channels_skip)):
            raise ValueError("channels_down, channels_up and channels_skip need one entry per level")
        self.levels = len(channels_down)
        deeper, deeper_out = None, 0
        for i in reversed(range(self.levels)):
            cin = in_channels if i == 0 else channels_down[i - 1]
            deeper = _Level(cin, channels_down[i], channels_up[i], channels_skip[i], deeper, deeper_out)
            deeper_out = channels_up[i]
        self.body = deeper
        self.head = nn.Conv2d(channels_up[0], out_channels, 1)
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        m = 2**self.levels
        if z.shape[-2] % m or z.shape[-1] % m:
            raise ValueError(f"SkipNet input H, W must be multiples of {m}, got {tuple(z.shape[-2:])}")
        out = self.head(self.body(z))
        return torch.sigmoid(out) if self.sigmoid else out
