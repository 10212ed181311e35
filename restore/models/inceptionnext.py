"""InceptionNeXt blocks and a restoration U-Net built from them.

Paper: "InceptionNeXt: When Inception Meets ConvNeXt", Yu, Zhou, Yan, Wang, CVPR 2024,
https://arxiv.org/abs/2303.16900; official code https://github.com/sail-sg/inceptionnext.

Implements
* the Inception depthwise token mixer (paper Eq. 1–5): channels split into (C−3g, g, g, g),
  g = ⌊rC⌋, r = 1/8: identity, 3×3, 1×k and k×1 depthwise convs, concatenated — timm's
  ``InceptionDWConv2d`` with the band size k from the U-Net's per-level ``kernel_size`` (11 in the
  paper);
* the InceptionNeXt block, a MetaNeXt block with that mixer (paper Eq. 6–7, Fig. 2):
  y = x + DropPath(γ ⊙ MLP(BN(mixer(x)))), MLP = 1×1 conv → GELU → 1×1 conv, ratio 4, γ initialised to 1e-6.

``configs/model/net/inceptionnext_*.yaml`` put the block on the shared
:class:`~restore.models.unet.RestorationUNet`.

Departures: MLP ratio 4 at every level (the paper uses 3 in its last stage; a U-Net has no last
stage of that kind). Added for deployment, not in the paper: ``reparameterize()`` folds the BN
into the MLP's first 1×1 conv and γ into its second (exact in eval mode), ``deploy=True`` builds
that form.
"""

from __future__ import annotations

import torch
from timm.layers import DropPath, Mlp
from timm.models.inception_next import InceptionDWConv2d
from torch import nn

__all__ = ["InceptionDWConv2d", "InceptionNeXtBlock"]


class InceptionNeXtBlock(nn.Module):
    """InceptionNeXt block: a MetaNeXt block with the Inception depthwise mixer (InceptionNeXt Fig. 2).

    Args:
        dim: channels C (≥ 8, so each conv branch gets ⌊C/8⌋ ≥ 1 channels).
        kernel_size: band kernel size k of the 1×k / k×1 branches (11 in the paper).
        drop_path: stochastic-depth rate.
        square_kernel_size: the square branch (3).
        branch_ratio: channels per conv branch, ×C (1/8).
        mlp_ratio: MLP hidden width, ×C (4).
        layer_scale_init: initial γ (1e-6); 0 disables layer scale.
        deploy: build the form :meth:`reparameterize` produces (no BN, no γ).

    Shapes: (B, C, H, W) → (B, C, H, W).
    """

    def __init__(self, dim: int, kernel_size: int = 11, drop_path: float = 0.0, square_kernel_size: int = 3,
                 branch_ratio: float = 0.125, mlp_ratio: float = 4.0, layer_scale_init: float = 1e-6,
                 deploy: bool = False) -> None:
        super().__init__()
        if int(dim * branch_ratio) < 1:
            raise ValueError(f"dim={dim} × branch_ratio={branch_ratio} leaves no channel for the conv branches")
        self.deploy = deploy
        self.token_mixer = InceptionDWConv2d(dim, square_kernel_size=square_kernel_size,
                                             band_kernel_size=kernel_size, branch_ratio=branch_ratio)
        self.norm = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, use_conv=True)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init)) if (layer_scale_init and not deploy) else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.token_mixer(x)))
        if self.gamma is not None:
            y = y * self.gamma.reshape(1, -1, 1, 1)
        return x + self.drop_path(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold BN (eval statistics) into ``mlp.fc1`` and γ into ``mlp.fc2``, in place; idempotent."""
        if self.deploy:
            return
        fc1, fc2 = self.mlp.fc1, self.mlp.fc2
        if isinstance(self.norm, nn.BatchNorm2d):
            bn = self.norm
            s = bn.weight / (bn.running_var + bn.eps).sqrt()
            t = bn.bias - bn.running_mean * s
            # fc1(s·x + t) = (W·s) x + (W t + b)
            fc1.bias.add_(fc1.weight[:, :, 0, 0] @ t)
            fc1.weight.mul_(s.reshape(1, -1, 1, 1))
        if self.gamma is not None:
            fc2.weight.mul_(self.gamma.reshape(-1, 1, 1, 1))
            fc2.bias.mul_(self.gamma)
        self.norm = nn.Identity()
        self.gamma = None
        self.deploy = True

