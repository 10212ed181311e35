"""UniRepLKNet blocks and a large-kernel restoration U-Net built from them.

Paper: "UniRepLKNet: A Universal Perception Large-Kernel ConvNet for Audio, Video, Point Cloud,
Time-Series and Image Recognition", Ding, Zhang, Ge, Zhao, Song, Yue, Shan, CVPR 2024,
https://arxiv.org/abs/2311.15599; official code https://github.com/AILab-CVC/UniRepLKNet.

Implements
* the Dilated Reparam Block (paper Fig. 2, Sec. 3.2): a K×K depthwise conv + BN in parallel with
  small depthwise *dilated* convs, each + BN, summed; merged for deployment into one K×K
  depthwise conv (a dilated k×k kernel is a dense (r(k−1)+1)² kernel with zeros between taps);
* the UniRepLKNet block (Fig. 1, the official ``UniRepLKNetBlock``): DRB → BN → SE (C→C/4→C) →
  Linear C→4C → GELU → GRN → Linear 4C→C → BN → layer scale → DropPath, residual; its
  ``reparameterize()`` folds the dilated branches and every BN, GRN's β and the layer scale into
  plain biased layers, as the official block does;
* ``configs/model/net/unireplknet_*.yaml``: the block on the shared
  :class:`~restore.models.unet.RestorationUNet`. ``unireplknet_tiny`` is CPU-sized (width 16, one block
  per level, K = 7/9/11 and 13 at the bottleneck); ``unireplknet_base`` is the GPU size: width 48 over 3
  levels (48/96/192, bottleneck 384, the Restormer layout), encoder blocks (2, 2, 4), 6 in the middle,
  decoder (4, 2, 2) — the UniRepLKNet-A/F/P depth budget (2, 2, 6, 2), deepest at low resolution — and
  K = (7, 9, 13, 13): the paper's K = 13 at the coarse levels, smaller kernels at full and half resolution
  where each pixel of kernel costs most.

Departures from the official code, each for a reason:
* no CUDA-only implicit-GEMM large-kernel conv: plain PyTorch everywhere (it runs on any device);
  for K ≥ 31 an FFT convolution can be chosen instead (``conv_impl="fft"``), which is faster on
  CPU there (``benchmarks/backbones.py``);
* GRN and SE are timm's ``GlobalResponseNorm`` (channels-last, like the official NHWC GRN) and
  ``SEModule`` (global mean → 1×1 conv → ReLU → 1×1 conv → sigmoid, the official ``SEBlock``);
  deploy form keeps GRN's γ and drops its β (a non-persistent zero buffer, not a parameter);
* PyTorch's default initialisation (the U-Net skeleton's convention) rather than the official
  trunc-normal(0.02), which targets ImageNet classification.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, SEModule
from timm.layers.grn import GlobalResponseNorm
from torch import nn

__all__ = [
    "DRB_BRANCHES",
    "DilatedReparamBlock",
    "UniRepLKNetBlock",
    "dilated_to_dense_kernel",
    "fft_depthwise_conv2d",
    "fuse_bn",
    "merge_dilated_into_large_kernel",
]

#: Dilated branches of the DRB per large kernel size K: (branch kernel sizes, dilations); the
#: official defaults ("we did not tune them carefully").
DRB_BRANCHES: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    17: ((5, 9, 3, 3, 3), (1, 2, 4, 5, 7)),
    15: ((5, 7, 3, 3, 3), (1, 2, 3, 5, 7)),
    13: ((5, 7, 3, 3, 3), (1, 2, 3, 4, 5)),
    11: ((5, 5, 3, 3, 3), (1, 2, 3, 4, 5)),
    9: ((5, 5, 3, 3), (1, 2, 3, 4)),
    7: ((5, 3, 3), (1, 2, 3)),
    5: ((3, 3), (1, 2)),
}

CONV_IMPLS = ("direct", "fft")


def fuse_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the preceding conv: (W·γ/σ, β + (b − μ)·γ/σ), σ = √(var + eps).

    Args:
        weight: conv weight (C_out, C_in/groups, k, k).
        bias: conv bias (C_out,) or None.
    Returns:
        the folded (weight, bias).
    """
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    b = bn.bias + ((0 if bias is None else bias) - bn.running_mean) * scale
    return weight * scale.reshape(-1, 1, 1, 1), b


def dilated_to_dense_kernel(kernel: torch.Tensor, dilation: int) -> torch.Tensor:
    """The dense kernel equal to a dilated one: (O, I, k, k) → (O, I, r(k−1)+1, r(k−1)+1), zeros between taps.

    Exact (a transposed conv of the kernel with a 1×1 ones kernel at stride r only moves values).
    """
    if dilation == 1:
        return kernel
    o, i, kh, kw = kernel.shape
    ones = torch.ones(1, 1, 1, 1, dtype=kernel.dtype, device=kernel.device)
    dense = F.conv_transpose2d(kernel.reshape(o * i, 1, kh, kw), ones, stride=dilation)
    return dense.reshape(o, i, *dense.shape[-2:])


def merge_dilated_into_large_kernel(large: torch.Tensor, dilated: torch.Tensor, dilation: int) -> torch.Tensor:
    """Add a dilated kernel, made dense and zero-padded to the centre, to a large K×K kernel."""
    dense = dilated_to_dense_kernel(dilated, dilation)
    pad = (large.shape[-1] - dense.shape[-1]) // 2
    if pad < 0:
        raise ValueError(f"a {dilated.shape[-1]}×{dilated.shape[-1]} kernel at dilation {dilation} spans "
                         f"{dense.shape[-1]} px, more than the large kernel's {large.shape[-1]}")
    return large + F.pad(dense, [pad] * 4)


def fft_depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Depthwise 'same' convolution (zero padding K//2, cross-correlation like ``F.conv2d``) by FFT.

    Args:
        x: (B, C, H, W).
        weight: (C, 1, K, K), K odd.
        bias: (C,) or None.
    Returns:
        (B, C, H, W), equal to ``F.conv2d(x, weight, bias, padding=K // 2, groups=C)`` up to float
        rounding. Computed in float32 (or float64) even under autocast; ``irfft2`` gets ``s=``.
    """
    k = weight.shape[-1]
    p = k // 2
    h, w = x.shape[-2:]
    size = (h + 2 * p, w + 2 * p)  # ≥ H + K − 1: the circular convolution is the linear one
    dtype = torch.promote_types(x.dtype, torch.float32)
    with torch.autocast(x.device.type, enabled=False):
        xf = torch.fft.rfft2(x.to(dtype), s=size)
        wf = torch.fft.rfft2(weight.to(dtype)[:, 0].flip(-2, -1), s=size)
        y = torch.fft.irfft2(xf * wf, s=size)[..., p: p + h, p: p + w]
        if bias is not None:
            y = y + bias.to(dtype).reshape(1, -1, 1, 1)
    return y.to(x.dtype)


def _depthwise_conv(x: torch.Tensor, conv: nn.Conv2d, impl: str) -> torch.Tensor:
    if impl == "fft":
        return fft_depthwise_conv2d(x, conv.weight, conv.bias)
    return conv(x)


class DilatedReparamBlock(nn.Module):
    """Dilated Reparam Block (UniRepLKNet Fig. 2): K×K depthwise conv + BN, plus dilated depthwise
    branches (k_i at dilation r_i, padding r_i(k_i−1)/2) + BN each; the outputs summed.

    Args:
        channels: C (depthwise: groups = C).
        kernel_size: K, odd; the branch table :data:`DRB_BRANCHES` covers 5…17.
        branch_kernel_sizes: custom branch kernel sizes (with ``branch_dilations``), e.g. for a
            K outside the table; each must span r(k−1)+1 ≤ K.
        branch_dilations: custom branch dilations.
        deploy: build the merged form directly (one K×K depthwise conv with bias).
        conv_impl: ``"direct"`` (``nn.Conv2d``) or ``"fft"`` (:func:`fft_depthwise_conv2d`) for the K×K
            conv; the small dilated branches always run directly.

    Shapes: (B, C, H, W) → (B, C, H, W).
    """

    def __init__(self, channels: int, kernel_size: int, branch_kernel_sizes: Sequence[int] | None = None,
                 branch_dilations: Sequence[int] | None = None, deploy: bool = False,
                 conv_impl: str = "direct") -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")
        if (branch_kernel_sizes is None) != (branch_dilations is None):
            raise ValueError("give both branch_kernel_sizes and branch_dilations, or neither")
        if branch_kernel_sizes is None:
            if kernel_size not in DRB_BRANCHES:
                raise ValueError(f"no default dilated branches for kernel_size={kernel_size} (table: "
                                 f"{sorted(DRB_BRANCHES)}); pass branch_kernel_sizes and branch_dilations")
            branch_kernel_sizes, branch_dilations = DRB_BRANCHES[kernel_size]
        if len(branch_kernel_sizes) != len(branch_dilations):
            raise ValueError(f"{len(branch_kernel_sizes)} branch kernel sizes but {len(branch_dilations)} dilations")
        for k, r in zip(branch_kernel_sizes, branch_dilations):
            if k % 2 != 1 or r < 1 or r * (k - 1) + 1 > kernel_size:
                raise ValueError(f"branch k={k}, r={r} must be odd k, r ≥ 1, spanning r(k−1)+1 ≤ {kernel_size}")
        self.channels, self.kernel_size = channels, kernel_size
        self.branch_kernel_sizes = tuple(int(k) for k in branch_kernel_sizes)
        self.branch_dilations = tuple(int(r) for r in branch_dilations)
        self.conv_impl = conv_impl
        self.deploy = deploy
        self.large_conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels,
                                    bias=deploy)
        if not deploy:
            self.large_bn = nn.BatchNorm2d(channels)
            self.branch_convs = nn.ModuleList(
                nn.Conv2d(channels, channels, k, padding=r * (k - 1) // 2, dilation=r, groups=channels, bias=False)
                for k, r in zip(self.branch_kernel_sizes, self.branch_dilations))
            self.branch_bns = nn.ModuleList(nn.BatchNorm2d(channels) for _ in self.branch_kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _depthwise_conv(x, self.large_conv, self.conv_impl)
        if self.deploy:
            return out
        out = self.large_bn(out)
        for conv, bn in zip(self.branch_convs, self.branch_bns):
            out = out + bn(conv(x))
        return out

    @torch.no_grad()
    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (weight (C, 1, K, K), bias (C,)) of the single conv equal to the block in eval mode."""
        if self.deploy:
            return self.large_conv.weight.clone(), self.large_conv.bias.clone()
        weight, bias = fuse_bn(self.large_conv.weight, self.large_conv.bias, self.large_bn)
        for conv, bn, r in zip(self.branch_convs, self.branch_bns, self.branch_dilations):
            w, b = fuse_bn(conv.weight, None, bn)
            weight = merge_dilated_into_large_kernel(weight, w, r)
            bias = bias + b
        return weight, bias

    def reparameterize(self) -> None:
        """Fold the BNs and the dilated branches into one biased K×K depthwise conv (in place; idempotent)."""
        if self.deploy:
            return
        weight, bias = self.merged_kernel()
        self.large_conv = _conv_like(self.large_conv, weight, bias)
        del self.large_bn, self.branch_convs, self.branch_bns
        self.deploy = True

    def extra_repr(self) -> str:
        branches = ", ".join(f"{k}@{r}" for k, r in zip(self.branch_kernel_sizes, self.branch_dilations))
        return (f"channels={self.channels}, kernel_size={self.kernel_size}, branches=[{branches}], "
                f"deploy={self.deploy}, conv_impl={self.conv_impl}")


def _conv_like(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A biased copy of ``conv``'s geometry holding the given weight and bias."""
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                    dilation=conv.dilation, groups=conv.groups, bias=True,
                    device=weight.device, dtype=weight.dtype)
    new.weight.data.copy_(weight)
    new.bias.data.copy_(bias)
    return new


def _drop_grn_bias(grn: GlobalResponseNorm) -> None:
    """Make GRN's β a constant zero (deploy form: it lives in the next layer's bias)."""
    zeros = torch.zeros_like(grn.bias.data)
    del grn.bias
    grn.register_buffer("bias", zeros, persistent=False)


class UniRepLKNetBlock(nn.Module):
    """UniRepLKNet block (paper Fig. 1; official ``UniRepLKNetBlock``).

    y = x + DropPath(γ ⊙ BN(Linear(GRN(GELU(Linear(SE(BN(DRB(x)))))))))

    The pointwise layers run channels-last (``nn.Linear`` on (B, H, W, C)), as in the official code.

    Args:
        dim: channels C.
        kernel_size: K; a Dilated Reparam Block for K ≥ 7, a plain depthwise conv for K ∈ {3, 5}
            (the official rule; custom branches force a DRB for any K).
        drop_path: stochastic-depth rate.
        ffn_ratio: hidden width of the pointwise MLP, ×C (4).
        se_ratio: SE bottleneck, ×C (1/4).
        layer_scale_init: initial γ (1e-6); 0 disables layer scale.
        branch_kernel_sizes: custom DRB branches' kernel sizes (default: :data:`DRB_BRANCHES`).
        branch_dilations: their dilations, one per kernel size.
        deploy: build the re-parameterised form directly (what :meth:`reparameterize` produces).
        conv_impl: ``"direct"`` or ``"fft"`` for the DRB's K×K conv (plain 3×3 / 5×5 convs run directly).

    Shapes: (B, C, H, W) → (B, C, H, W).
    """

    def __init__(self, dim: int, kernel_size: int = 13, drop_path: float = 0.0, ffn_ratio: float = 4.0,
                 se_ratio: float = 0.25, layer_scale_init: float = 1e-6,
                 branch_kernel_sizes: Sequence[int] | None = None, branch_dilations: Sequence[int] | None = None,
                 deploy: bool = False, conv_impl: str = "direct") -> None:
        super().__init__()
        if conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")
        self.deploy = deploy
        self.conv_impl = conv_impl
        if kernel_size >= 7 or branch_kernel_sizes is not None:
            self.dwconv: nn.Module = DilatedReparamBlock(dim, kernel_size, branch_kernel_sizes, branch_dilations,
                                                         deploy=deploy, conv_impl=conv_impl)
        elif kernel_size in (3, 5):
            self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=deploy)
        else:
            raise ValueError(f"kernel_size must be 3, 5 or ≥ 7 (odd), got {kernel_size}")
        self.dw_norm = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        self.se = SEModule(dim, rd_channels=max(1, int(dim * se_ratio)))
        hidden = int(dim * ffn_ratio)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.grn = GlobalResponseNorm(hidden, eps=1e-6, channels_last=True)
        self.pwconv2 = nn.Linear(hidden, dim, bias=deploy)
        self.out_norm = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        if deploy:
            _drop_grn_bias(self.grn)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init)) if (layer_scale_init and not deploy) else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.dw_norm(self.dwconv(x)))
        y = y.permute(0, 2, 3, 1)  # (B, H, W, C): free when x is channels-last
        y = self.pwconv2(self.grn(self.act(self.pwconv1(y))))
        y = self.out_norm(y.permute(0, 3, 1, 2))
        if self.gamma is not None:
            y = y * self.gamma.reshape(1, -1, 1, 1)
        return x + self.drop_path(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Deploy form, in place (eval-mode equivalent; idempotent), as the official block does:
        DRB branches + BN → one biased depthwise conv; GRN β, the last BN and γ → ``pwconv2``'s bias/weight."""
        if self.deploy:
            return
        # depthwise conv (+ dilated branches) and the BN after it → one biased conv
        if isinstance(self.dwconv, DilatedReparamBlock):
            self.dwconv.reparameterize()
            conv = self.dwconv.large_conv
        else:
            conv = self.dwconv
        weight, bias = fuse_bn(conv.weight, conv.bias, self.dw_norm)
        if isinstance(self.dwconv, DilatedReparamBlock):
            self.dwconv.large_conv = _conv_like(conv, weight, bias)
        else:
            self.dwconv = _conv_like(conv, weight, bias)
        self.dw_norm = nn.Identity()
        # pwconv2(GRN(h)) = W·GRN₀(h) + W·β; then BN (scale s, shift t) and layer scale γ:
        # out = γ·s·W·GRN₀(h) + γ·(s·(W·β + b − μ) + bn.bias)
        w = self.pwconv2.weight
        b = w @ self.grn.bias + (0 if self.pwconv2.bias is None else self.pwconv2.bias)
        if isinstance(self.out_norm, nn.BatchNorm2d):
            bn = self.out_norm
            s = bn.weight / (bn.running_var + bn.eps).sqrt()
            w, b = w * s[:, None], (b - bn.running_mean) * s + bn.bias
        if self.gamma is not None:
            w, b = w * self.gamma[:, None], b * self.gamma
        pw = nn.Linear(self.pwconv2.in_features, self.pwconv2.out_features, bias=True, device=w.device, dtype=w.dtype)
        pw.weight.copy_(w)
        pw.bias.copy_(b)
        self.pwconv2 = pw
        _drop_grn_bias(self.grn)
        self.out_norm = nn.Identity()
        self.gamma = None
        self.deploy = True

