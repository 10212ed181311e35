"""ConvNeXt blocks and a restoration U-Net built from them (the baseline InceptionNeXt compares with).

Paper: "A ConvNet for the 2020s", Liu, Mao, Wu, Feichtenhofer, Darrell, Xie, CVPR 2022,
https://arxiv.org/abs/2201.03545; official code https://github.com/facebookresearch/ConvNeXt.

Implements the ConvNeXt block (paper Fig. 4, right): 7×7 depthwise conv → LayerNorm →
Linear C→4C → GELU → Linear 4C→C → layer scale γ (init 1e-6) → DropPath, residual; the pointwise
layers run channels-last (``nn.Linear`` on (B, H, W, C)) as in the official code. LayerNorm, Mlp
and DropPath are timm's. ``configs/model/net/convnext_*.yaml`` put the block on the shared
:class:`~restore.models.unet.RestorationUNet` (``convnext_base`` has the layout of ``unireplknet_base``
for a side-by-side comparison).

Added for deployment, not in the paper: ``reparameterize()`` folds γ into the last Linear
(exact), ``deploy=True`` builds that form, so every backbone of the toolkit loads deploy checkpoints.
"""

from __future__ import annotations

import torch
from timm.layers import DropPath, LayerNorm, Mlp
from torch import nn

__all__ = ["ConvNeXtBlock"]


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: y = x + DropPath(γ ⊙ MLP(LN(DWConv_k(x)))).

    Args:
        dim: channels C.
        kernel_size: depthwise kernel size (7 in the paper).
        drop_path: stochastic-depth rate.
        mlp_ratio: MLP hidden width, ×C (4).
        layer_scale_init: initial γ (1e-6); 0 disables layer scale.
        deploy: build the form :meth:`reparameterize` produces (γ folded into the last Linear).

    Shapes: (B, C, H, W) → (B, C, H, W).
    """

    def __init__(self, dim: int, kernel_size: int = 7, drop_path: float = 0.0, mlp_ratio: float = 4.0,
                 layer_scale_init: float = 1e-6, deploy: bool = False) -> None:
        super().__init__()
        self.deploy = deploy
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init)) if (layer_scale_init and not deploy) else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.dwconv(x).permute(0, 2, 3, 1)))
        if self.gamma is not None:
            y = y * self.gamma
        return x + self.drop_path(y.permute(0, 3, 1, 2))

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold γ into ``mlp.fc2``, in place; idempotent."""
        if self.deploy:
            return
        if self.gamma is not None:
            self.mlp.fc2.weight.mul_(self.gamma[:, None])
            self.mlp.fc2.bias.mul_(self.gamma)
        self.gamma = None
        self.deploy = True

