"""NAFNet: the toolkit's baseline restoration network.

Paper: "Simple Baselines for Image Restoration", Chen, Chu, Zhang, Sun, ECCV 2022,
https://arxiv.org/abs/2204.04676; official code https://github.com/megvii-research/NAFNet.

Implements the NAFBlock of Fig. 3(c): LayerNorm → 1×1 conv (C→2C) → 3×3 depthwise conv →
SimpleGate → Simplified Channel Attention → 1×1 conv, scaled by β (init 0); then LayerNorm →
1×1 conv (C→2C) → SimpleGate → 1×1 conv, scaled by γ (init 0). The U-shaped skeleton is
:class:`restore.models.unet.RestorationUNet`. LayerNorm2d and DropPath come from timm.
"""

from __future__ import annotations

import torch
from timm.layers import DropPath, LayerNorm2d
from torch import nn

from restore.models.unet import RestorationUNet

__all__ = ["NAFBlock", "SimpleGate", "nafnet"]


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them (NAFNet Eq. 4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block (NAFNet Fig. 3c).

    Args:
        dim: channels.
        kernel_size: depthwise kernel size (3 in the paper).
        dw_expand: expansion of the first 1×1 conv (2).
        ffn_expand: expansion of the feed-forward branch (2).
        drop_path: stochastic depth (the paper uses dropout 0; DropPath is the toolkit-wide knob).
    """

    def __init__(self, dim: int, kernel_size: int = 3, dw_expand: int = 2, ffn_expand: int = 2,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        dw = dim * dw_expand
        self.norm1 = LayerNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, kernel_size, padding=kernel_size // 2, groups=dw)
        self.gate = SimpleGate()
        # Simplified Channel Attention (Eq. 5): global average pool → 1×1 conv, multiplied in.
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, dim, 1)
        self.norm2 = LayerNorm2d(dim)
        ffn = dim * ffn_expand
        self.conv4 = nn.Conv2d(dim, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, dim, 1)
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.conv2(self.conv1(self.norm1(x))))
        y = self.conv3(y * self.sca(y))
        x = x + self.drop_path(y * self.beta)
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return x + self.drop_path(y * self.gamma)


def nafnet(in_channels: int = 3, width: int = 32, enc_blocks=(2, 2, 4, 8), middle_blocks: int = 12,
           dec_blocks=(2, 2, 2, 2), drop_path_rate: float = 0.0, **kwargs) -> RestorationUNet:
    """NAFNet on the shared U-Net skeleton (defaults: NAFNet-width32 of the paper: 29.2M params, 16 GMACs at 256²)."""
    return RestorationUNet(NAFBlock, in_channels=in_channels, width=width, enc_blocks=enc_blocks,
                           middle_blocks=middle_blocks, dec_blocks=dec_blocks,
                           drop_path_rate=drop_path_rate, skip="add", **kwargs)
