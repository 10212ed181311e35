"""NAFNet: the toolkit's baseline restoration network.

Paper: "Simple Baselines for Image Restoration", Chen, Chu, Zhang, Sun, ECCV 2022,
https://arxiv.org/abs/2204.04676; official code https://github.com/megvii-research/NAFNet.

Implements the NAFBlock of Fig. 3(c): LayerNorm → 1×1 conv (C→2C) → 3×3 depthwise conv →
SimpleGate → Simplified Channel Attention → 1×1 conv, scaled by β (init 0); then LayerNorm →
1×1 conv (C→2C) → SimpleGate → 1×1 conv, scaled by γ (init 0). The U-shaped skeleton is
:class:`restore.models.unet.RestorationUNet` (``configs/model/net/nafnet_*.yaml``: NAFNet-width32 of
the paper is ``nafnet_base``, 29.2M params, 16 GMACs at 256²). LayerNorm2d and DropPath come from timm.
"""

from __future__ import annotations

import torch
from timm.layers import DropPath, LayerNorm2d
from torch import nn

__all__ = ["NAFBlock", "SimpleGate"]


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
        deploy: accepted so every block shares one contract; NAFBlock has no training-only branches,
            so its deploy form is its training form.

    Shapes: (B, C, H, W) → (B, C, H, W).
    """

    def __init__(self, dim: int, kernel_size: int = 3, dw_expand: int = 2, ffn_expand: int = 2,
                 drop_path: float = 0.0, deploy: bool = False) -> None:
        super().__init__()
        self.deploy = deploy
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

