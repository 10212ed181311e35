"""Semi-blind deblurring with a deep residual prior (Tang et al., CVPR 2023: the model and alternating scheme of its
method section).

Model: y = k̂ ⊗ x + r + s + n, k̂ an *inaccurate* kernel, x = I(z_x) a DIP skip net
(sigmoid output), r = R(z_r) a smaller skip net (the kernel-error residual), s a sparse outlier
term. Each iteration:

1. s ← IDCT(soft(DCT(y − k̂⊗x − r), τ)), the closed-form minimiser of the data term + λ₁‖DCT s‖₁
   with x, r fixed (τ = λ₁/2, all terms being per-pixel means);
2. one Adam step on both networks for
   L = mean(k̂⊗x + s + r − y)² + λ₁·mean|DCT s| + λ₂·mean|r| + w_tv·TV(x)
   with TV the mean anisotropic ℓ1 total variation of x.

Departures from the official code, each fixing a pitfall:
- real-part-of-OTF product → true convolution (``operators.BlurOperator``, asymmetric kernels OK);
- circular boundary → x lives on an extended (H+kh−1)×(W+kw−1) domain, 'valid' data term, crop;
- oracle stopping (best PSNR vs. ground truth) → fixed iteration count (optional stability rule
  ``tol``) and the running average x̄ of the iterates (DIP's exponential averaging) as output;
  the ground truth, if given, only feeds the PSNR history;
- grayscale only → C = 1 or 3 (both nets output C channels);
- it soft-thresholds s in the pixel domain while penalising ‖DCT s‖₁; we threshold in the DCT
  domain, the exact minimiser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from restore.metrics.shift_aligned import image_quality
from restore.semiblind.configs import with_overrides
from restore.semiblind.networks import SkipNet
from restore.semiblind.operators import BlurOperator

__all__ = ["DRPConfig", "DeepResidualPrior", "PAPER", "FAST", "dct2", "idct2", "total_variation"]


@dataclass(frozen=True)
class DRPConfig:
    """Hyper-parameters. Networks, z, lr and iterations default to the paper's (``PAPER``); ``FAST`` is the
    2-core CPU preset. The weights are per-pixel means, set here: the paper's λ₁=5e-7, λ₂=5e-5, TV 2 belong to
    the official code's mixed mean/sum normalisation and, used as is, let s absorb the whole residual (threshold
    ≈ 0) and TV flatten x; converting them as summed priors over a mean data term (λ·N per pixel) makes r ≡ 0 and
    x constant. Under gross kernel error the objective itself does not favour the sharp image (measurements:
    ``docs/methods/semiblind.md``)."""

    iterations: int = 2000
    lr: float = 5e-4
    residual_lr: float | None = None  # Adam lr of the residual net (None: ``lr``)
    lambda1: float = 0.1  # ‖DCT s‖₁ weight (sparse outliers): s threshold λ₁/2  (paper: 5e-7)
    lambda2: float = 0.02  # mean |r| weight (sparse residual)  (paper: 5e-5)
    tv_weight: float = 5e-4  # mean anisotropic TV weight  (paper: 2)
    image_channels: Sequence[int] = (128, 128, 128, 128, 128)
    image_skip: int = 16
    residual_channels: Sequence[int] = (16, 16, 32, 64, 64)
    residual_skip: int = 4
    z_channels: int = 1
    z_scale: float = 0.1  # z ~ U(0, 1) × z_scale
    average: float = 0.99  # output = exponential average of the iterates (0: last iterate)
    tol: float = 0.0  # stop early when the averaged image changes by < tol (relative) over `check_every`
    check_every: int = 50


PAPER = DRPConfig()
# the 2-core CPU preset: 600 iterations, a narrower image net (minutes for a 256² gray image on one thread)
FAST = DRPConfig(iterations=600, lr=2e-3, image_channels=(32, 32, 32, 32, 32), image_skip=4)


def _dct_matrix(n: int, device, dtype) -> torch.Tensor:
    """Orthonormal DCT-II matrix (n, n) (hand-written: torch has no DCT)."""
    k = torch.arange(n, device=device, dtype=dtype)[:, None]
    i = torch.arange(n, device=device, dtype=dtype)[None, :]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two dims."""
    dh, dw = _dct_matrix(x.shape[-2], x.device, x.dtype), _dct_matrix(x.shape[-1], x.device, x.dtype)
    return dh @ x @ dw.T


def idct2(c: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2`."""
    dh, dw = _dct_matrix(c.shape[-2], c.device, c.dtype), _dct_matrix(c.shape[-1], c.device, c.dtype)
    return dh.T @ c @ dw


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean anisotropic ℓ1 TV of (B, C, H, W)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


class DeepResidualPrior(nn.Module):
    """State of one semi-blind deblurring problem: both generators, their inputs, s and x̄.

    Args:
        blurry: y, (1, C, H, W) in [0, 1], C ∈ {1, 3}.
        kernel: k̂, (kh, kw), sum 1, kh ≤ H and kw ≤ W.
        config: :class:`DRPConfig`.
        seed: seeds network initialisation and the inputs z_x, z_r.
    """

    def __init__(self, blurry: torch.Tensor, kernel: torch.Tensor, config: DRPConfig | None = None, seed: int = 0):
        super().__init__()
        cfg = self.cfg = config or DRPConfig()
        _, c, h, w = blurry.shape
        self.register_buffer("y", blurry.float())
        self.op = BlurOperator(kernel.to(blurry.device, torch.float32), (h, w))
        eh, ew = self.op.ext_hw
        mi, mr = 2 ** len(cfg.image_channels), 2 ** len(cfg.residual_channels)
        # multiples of 2**levels, at least 2**(levels+1) so the coarsest BatchNorm sees > 1 value
        self.net_hw = (_round_up(max(eh, 2 * mi), mi), _round_up(max(ew, 2 * mi), mi))
        self.res_hw = (_round_up(max(h, 2 * mr), mr), _round_up(max(w, 2 * mr), mr))
        g = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.image_net = SkipNet(cfg.z_channels, c, cfg.image_channels, None, cfg.image_skip, sigmoid=True)
            self.residual_net = SkipNet(cfg.z_channels, c, cfg.residual_channels, None, cfg.residual_skip,
                                        sigmoid=False)
        self.to(blurry.device)
        z_x = torch.rand(1, cfg.z_channels, *self.net_hw, generator=g) * cfg.z_scale
        self.register_buffer("z_x", z_x.to(blurry.device))
        z_r = torch.rand(1, cfg.z_channels, *self.res_hw, generator=g) * cfg.z_scale
        self.register_buffer("z_r", z_r.to(blurry.device))
        self.register_buffer("s", torch.zeros_like(self.y))
        self.register_buffer("x_avg", torch.zeros(1, c, eh, ew, device=blurry.device))
        self.steps = 0
        self.n_pixels = self.y.numel()

    def generate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x on the extended domain (1, C, H+kh−1, W+kw−1), r (1, C, H, W))."""
        x = self.image_net(self.z_x)
        (eh, ew), (nh, nw) = self.op.ext_hw, self.net_hw
        x = x[..., (nh - eh) // 2 : (nh - eh) // 2 + eh, (nw - ew) // 2 : (nw - ew) // 2 + ew]
        h, w = self.y.shape[-2:]
        r = self.residual_net(self.z_r)[..., :h, :w]
        return x, r

    @torch.no_grad()
    def update_outliers(self, ax: torch.Tensor, r: torch.Tensor) -> None:
        """Closed-form s-step: s = IDCT(soft(DCT(y − k̂⊗x − r), λ₁/2))."""
        tau = self.cfg.lambda1 / 2
        c = dct2(self.y - ax - r)
        self.s = idct2(torch.sign(c) * (c.abs() - tau).clamp_min(0))

    def loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """s-step, then the objective of the Adam step and its terms."""
        cfg = self.cfg
        x, r = self.generate()
        ax = self.op(x)
        self.update_outliers(ax.detach(), r.detach())
        data = ((ax + self.s + r - self.y) ** 2).mean()
        sparse_r = r.abs().mean()
        tv = total_variation(x)
        total = data + cfg.lambda2 * sparse_r + cfg.tv_weight * tv
        outlier = cfg.lambda1 * dct2(self.s).abs().mean()
        self._last = x.detach()
        self._last_r = r.detach()
        return total + outlier, {"data": data.detach(), "residual_l1": sparse_r.detach(), "tv": tv.detach(),
                                 "outlier_l1": outlier.detach()}

    @torch.no_grad()
    def after_step(self) -> float:
        """Update x̄ with the iterate of this step; returns the relative change of x̄."""
        a = self.cfg.average if self.steps > 0 else 0.0
        prev = self.x_avg.clone()
        self.x_avg.mul_(a).add_(self._last, alpha=1 - a)
        self.steps += 1
        return float((self.x_avg - prev).norm() / self.x_avg.norm().clamp_min(1e-12))

    @torch.no_grad()
    def estimate(self) -> torch.Tensor:
        """Restored image on the observed frame (1, C, H, W)."""
        return self.op.crop_latent(self.x_avg if self.steps else self.generate()[0]).clamp(0, 1)

    @torch.no_grad()
    def residual(self) -> torch.Tensor:
        """Current residual r = R(z_r), (1, C, H, W)."""
        return self.generate()[1]

    def parameters_groups(self) -> list[dict[str, Any]]:
        res = {"params": self.residual_net.parameters()}
        if self.cfg.residual_lr is not None:
            res["lr"] = self.cfg.residual_lr
        return [{"params": self.image_net.parameters()}, res]

    def run(self, gt: torch.Tensor | None = None, log_every: int = 25,
            callback: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
        """Plain optimisation loop (the Lightning module runs the same steps one per training step).

        Args:
            gt: ground truth (1, C, H, W) — only to report PSNR in the history, never for stopping.
        Returns:
            history: one dict per ``log_every`` iterations (step, loss terms, psnr if gt).
        """
        cfg = self.cfg
        opt = torch.optim.Adam(self.parameters_groups(), lr=cfg.lr)
        history: list[dict[str, float]] = []
        ref = self.x_avg.clone()
        for it in range(cfg.iterations):
            opt.zero_grad(set_to_none=True)
            loss, terms = self.loss()
            loss.backward()
            opt.step()
            self.after_step()
            last = it == cfg.iterations - 1
            stop = False
            if cfg.tol > 0 and (it + 1) % cfg.check_every == 0 and it + 1 >= 4 * cfg.check_every:
                change = float((self.x_avg - ref).norm() / self.x_avg.norm().clamp_min(1e-12))
                ref = self.x_avg.clone()
                stop = change < cfg.tol
            if (it + 1) % log_every == 0 or last or stop:
                rec = {"step": it + 1, "loss": float(loss.detach()), **{k: float(v) for k, v in terms.items()}}
                if gt is not None:
                    rec["psnr"] = image_quality(self.estimate(), gt)["psnr"]
                history.append(rec)
                if callback:
                    callback(it + 1, rec)
            if stop:
                break
        return history


def config_from(base: DRPConfig | str | None = None, **overrides: Any) -> DRPConfig:
    """``DRPConfig`` from a preset ('paper' | 'fast' | a DRPConfig) with keyword overrides."""
    if base is None or base == "paper":
        base = PAPER
    elif base == "fast":
        base = FAST
    elif not isinstance(base, DRPConfig):
        raise ValueError(f"preset must be 'paper', 'fast' or a DRPConfig, got {base!r}")
    return with_overrides(base, overrides)
