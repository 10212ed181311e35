"""DeepRFT / DeepRFTv2: deblurring with kernel-level learning in Fourier space, on any block of the toolkit.

Papers: Mao, Liu, Wang, Luo, Yang, Wang & Jia, "Intriguing Findings of Frequency Selection for Image
Deblurring" (DeepRFT, AAAI 2023, https://arxiv.org/abs/2111.11745; official code
https://github.com/INVOKERer/DeepRFT) and its v2 with the Fourier kernel estimator (DeepRFTv2, official code
https://github.com/INVOKERer/DeepRFTv2, ``basicsr/models/archs/DeepRFTv2_arch.py``: ``KernelEstimator``).
What is implemented follows ``../shared/notes/methods.md``, section "DeepRFT and DeepRFTv2", and the official
estimator's computation (padding and windows, read from its code; module sizes are this toolkit's choices).

What is implemented (equation numbers of methods.md's summary):

* :class:`ResFFTBlock` — DeepRFT v0's Res-FFT-ReLU block,
  y = x + Conv3×3(ReLU(Conv3×3 x)) + irfft2(Conv1×1(ReLU(Conv1×1 [Re; Im] rfft2 x))), usable as the
  ``block`` of :class:`~restore.models.unet.RestorationUNet` (``dim, kernel_size, drop_path, deploy``).
* :class:`FourierKernelEstimator` (FKE) — from a decoder feature d: x = Conv1×1(d), y = Conv1×1(d);
  r₀ = Conv1×1([Re; Im] rfft2 x); a small encoder R (here a small RestorationUNet of the configured block,
  so it keeps the spectrum's H × (W/2+1) size) → LayerNorm → Conv1×1 C→2C gives the per-channel complex
  kernel spectrum K = K_re + i·K_im; f = irfft2(rfft2(y) ⊙ K, s=(H, W)) (features convolved with the
  estimated kernel, a circular convolution); f' = Conv1×1([f; d]). The residual image of the scale,
  P̂ = Conv3×3(f') + blurry input, is the sub-U-Net's own ``reconstruct`` (its outro conv + global residual).
  As the official runs it: x and y replicate-padded by 32 px before the FFTs and cropped after, and a feature
  larger than 512² estimated per 512² window (128-px overlap, linear ramps at inference; non-overlapping in
  training), both halved at the ½ scale (tested against a transcription of the official computation).
* :class:`DeepRFTNet` — decoupled multi-scale sub-U-Nets (coarse → fine, ½ scale per step; the coarse
  scale's f' and image fused into the fine one's stem), an FKE per scale, an image per scale, and optional
  RevCol columns (Cai et al., "Reversible Column Networks", ICLR 2023, Eq. 1:
  c_i^t = l_i(c_{i−1}^t, c_{i+1}^{t−1}) + α_i·c_i^{t−1}) between each sub-U-Net's encoder and decoder,
  reversible (activations recomputed in backward, :class:`_ReversibleColumns`) with ``reversible=True``.

Departures from the official code, each for a stated reason: the official v2 blocks (and the FKE's spectral
encoder, 4 Mamba blocks at constant width) need a CUDA-only Mamba kernel, so the sub-U-Nets use any block of the
toolkit (NAF, UniRepLKNet, InceptionNeXt, ResFFT) by config and the spectral encoder is a small U-Net of that
block; x's spectrum is taken with ``norm="ortho"`` (the official ``backward`` scales the encoder's input with the
window's area, so one network would see different magnitudes at 256² and 512²); the 1×1 convolutions keep their
biases (the official's have none but the head's) and the head starts at K = 1 (f = y: the plain features first;
the official starts at random K); the latent sharp images are off by default (``net(x)`` then depends on every
parameter, the toolkit's network contract); every ``irfft2`` passes ``s=`` (the official drops a column on odd
widths); FFTs run in float32 under autocast; the reversible scale α is kept at |α| ≥ ``min_alpha`` (the
backward divides by it).
The circular FFT convolution, the windows, the reversible autograd function and the spectral encoder are written
here: no library we depend on offers them for arbitrary blocks.
"""

from __future__ import annotations

import contextlib
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d
from torch import nn

from restore.models.unet import RestorationUNet, _stage, pad_to_multiple

__all__ = ["ResFFTBlock", "FourierKernelEstimator", "KernelSpectrum", "DeepRFTNet", "RevColumns", "fft_conv2d",
           "kernel_images", "window_starts", "window_weights"]

BlockFactory = Callable[..., nn.Module]


@contextlib.contextmanager
def _fp32(x: torch.Tensor):
    """Autocast off on ``x``'s device: FFTs of half-precision features lose too much (methods.md pitfall)."""
    if not torch.amp.is_autocast_available(x.device.type):  # e.g. the meta device of MAC counting
        yield
        return
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


def _full(x: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors to float32 for FFTs; float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _complex_like(z: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return z.to(torch.complex128 if real.dtype == torch.float64 else torch.complex64)


def fft_conv2d(features: torch.Tensor, kernel_spectrum: torch.Tensor) -> torch.Tensor:
    """Per-channel circular convolution as a product in Fourier space: irfft2(rfft2(y) ⊙ K, s=(H, W)).

    Args:
        features: (B, C, H, W) real.
        kernel_spectrum: (B or 1, C, H, W//2 + 1) complex, the rfft2 (``norm="backward"``) of the kernels
            k = irfft2(K, s=(H, W)); the result equals y ⊛ k with circular boundaries.

    Returns:
        (B, C, H, W) float32 (float64 for float64 features), any H and W (``s=`` keeps odd sizes).
    """
    h, w = features.shape[-2:]
    if kernel_spectrum.shape[-2:] != (h, w // 2 + 1):
        raise ValueError(f"kernel spectrum of shape {tuple(kernel_spectrum.shape)} does not match features of "
                         f"size {h}×{w} (expected (..., {h}, {w // 2 + 1}))")
    with _fp32(features):
        features = _full(features)
        spec = torch.fft.rfft2(features) * _complex_like(kernel_spectrum, features)
        return torch.fft.irfft2(spec, s=(h, w))


def kernel_images(kernel_spectrum: torch.Tensor, size: tuple[int, int], crop: int | None = 65) -> torch.Tensor:
    """Estimated kernels to look at: |irfft2(K, s=size)| per channel, centred (fftshift), cropped, in [0, 1].

    (B, C, H, W//2+1) complex → (B, C, crop, crop) (or (B, C, H, W) with ``crop=None``), each kernel scaled
    by its own maximum.
    """
    with _fp32(kernel_spectrum):
        if kernel_spectrum.dtype not in (torch.complex64, torch.complex128):
            kernel_spectrum = kernel_spectrum.to(torch.complex64)
        k = torch.fft.irfft2(kernel_spectrum, s=size).abs()
    k = torch.fft.fftshift(k, dim=(-2, -1))
    if crop is not None:
        h, w = size
        ch, cw = min(crop, h), min(crop, w)
        top, left = h // 2 - ch // 2, w // 2 - cw // 2
        k = k[..., top:top + ch, left:left + cw]
    return k / k.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


class ResFFTBlock(nn.Module):
    """DeepRFT's Res-FFT-ReLU block (AAAI 2023, Fig. 2 / Eq. 5), a block of the toolkit's U-Net.

    y = x + Conv3×3(ReLU(Conv3×3 x)) + irfft2(Conv1×1(ReLU(Conv1×1 [Re; Im] rfft2 x)), s=(H, W)).

    Args:
        dim: channels.
        kernel_size: spatial branch kernel (3 in the paper).
        drop_path: stochastic depth on both branches.
        deploy: accepted so every block shares one contract; no training-only branches.

    Shapes: (B, C, H, W) → (B, C, H, W), any H and W.
    """

    def __init__(self, dim: int, kernel_size: int = 3, drop_path: float = 0.0, deploy: bool = False) -> None:
        super().__init__()
        self.deploy = deploy
        pad = kernel_size // 2
        self.spatial = nn.Sequential(nn.Conv2d(dim, dim, kernel_size, padding=pad), nn.ReLU(inplace=True),
                                     nn.Conv2d(dim, dim, kernel_size, padding=pad))
        self.spectral = nn.Sequential(nn.Conv2d(2 * dim, 2 * dim, 1), nn.ReLU(inplace=True),
                                      nn.Conv2d(2 * dim, 2 * dim, 1))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        with _fp32(x):
            spec = torch.fft.rfft2(_full(x))
            z = self.spectral(torch.cat([spec.real, spec.imag], dim=1))
            re, im = z.chunk(2, dim=1)
            freq = torch.fft.irfft2(torch.complex(re, im), s=(h, w)).to(x.dtype)
        return x + self.drop_path(self.spatial(x) + freq)


class KernelSpectrum(NamedTuple):
    """The FKE's kernel spectra, one per estimator window (what :func:`kernel_images` turns into pictures).

    Attributes:
        spectrum: (B, N, C, h, w//2 + 1) complex, N windows in row-major order over a ``grid``.
        size: (h, w), the padded window's size (``irfft2``'s ``s=``).
        grid: (rows, columns) of windows.
    """

    spectrum: torch.Tensor
    size: tuple[int, int]
    grid: tuple[int, int]

    def centre(self) -> torch.Tensor:
        """(B, C, h, w//2 + 1): the spectrum of the window at the middle of the grid."""
        rows, cols = self.grid
        return self.spectrum[:, (rows // 2) * cols + cols // 2]


def window_starts(size: int, window: int, overlap: int) -> list[int]:
    """Offsets of the estimator windows along one axis, as the official ``KernelEstimator.grids``: windows of
    ``min(size, window)`` pixels every ``window − overlap``, the last moved back to end at the border."""
    k = min(size, window)
    if not 0 <= overlap < k:
        raise ValueError(f"window overlap must be in [0, {k}) for windows of {k} px, got {overlap}")
    starts, i = [], 0
    while i + k < size:
        starts.append(i)
        i += k - overlap
    return starts + [size - k]


def window_weights(starts: Sequence[int], k: int, hard: bool, dtype: torch.dtype = torch.float32,
                   device: torch.device | None = None) -> list[torch.Tensor]:
    """Each window's blending weights along one axis (length ``k``).

    Soft (``hard=False``, the official ``grids_inverse``): a linear ramp, ``linspace(0, 1)`` in and
    ``linspace(1, 0)`` out, over each overlap with a neighbour; the weights are summed, not normalised.
    Hard (the official ``window_partitionx``/``window_reversex``, used in training): every pixel from the first
    window that covers it.
    """
    weights = []
    for j, start in enumerate(starts):
        w = torch.ones(k, dtype=dtype, device=device)
        if j > 0 and (over := starts[j - 1] + k - start) > 0:
            w[:over] = 0.0 if hard else torch.linspace(0.0, 1.0, over, dtype=dtype, device=device)
        if not hard and j < len(starts) - 1 and (over := start + k - starts[j + 1]) > 0:
            w[k - over:] *= torch.linspace(1.0, 0.0, over, dtype=dtype, device=device)
        weights.append(w)
    return weights


class FourierKernelEstimator(nn.Module):
    """DeepRFTv2's Fourier kernel estimator (FKE): kernel-level learning from a decoder feature.

    x = Conv1×1(d), y = Conv1×1(d); per window (below): x and y replicate-padded by ``pad``;
    r₀ = Conv1×1([Re; Im] rfft2(x, ortho)); K = Conv1×1_{C→2C}(LN(R(r₀))) read as K_re + i·K_im;
    f = irfft2(rfft2(y) ⊙ K, s=) cropped back; f' = Conv1×1([f; d]).

    As the official ``KernelEstimator`` runs it: a feature larger than ``window`` on either side is cut into
    windows of ``window``² (one kernel per window; ``window_overlap`` px overlap and linear blending at
    inference, non-overlapping windows in training, :func:`window_starts`, :func:`window_weights`), and each
    window is replicate-padded by ``pad`` before the FFTs (the circular product then wraps the padding, not the
    far border) and cropped after.

    Args:
        dim: channels C of the decoder feature.
        block: block factory of the spectral encoder R (the network's block).
        levels: levels of R (4 in the paper).
        width: R's width at its first level (doubling per level).
        domain: ``"fourier"`` (the FKE) or ``"spatial"``, the ablation with identical parameters: R reads
            [x; y] in the image domain and the head's two halves modulate y (f = y·a + b) instead of
            convolving it with an estimated kernel (same windows and padding).
        pad: replicate padding of each window, px (official 32 at full scale; 0: none, circular borders).
        window: window side above which the feature is cut into windows (official 512 at full scale);
            ``None``: one window, the whole feature.
        window_overlap: overlap of neighbouring windows at inference (official 128).
        inputs, deconv_inputs: what x (read by the encoder) and y (convolved with K) are made from, the official
            ``inp_feature`` / ``deconv_feature`` options: ``"feature"`` (d, the official GoPro setting),
            ``"inp_feature"`` ([blurry image; d]), ``"inp_latentsharp_feature"`` ([blurry image; latent sharp
            image; d]; x only), ``"inp"`` (the blurry image; y only).
        image_channels: channels of the images those options read.

    Shapes: d (B, C, H, W) [, image and latent (B, image_channels, H, W)] → (f' (B, C, H, W),
    :class:`KernelSpectrum` or None for ``spatial``).
    """

    INPUTS = {"feature": ("feature",), "inp_feature": ("inp", "feature"),
              "inp_latentsharp_feature": ("inp", "latentsharp", "feature")}
    DECONV_INPUTS = {"feature": ("feature",), "inp_feature": ("inp", "feature"), "inp": ("inp",)}

    def __init__(self, dim: int, block: BlockFactory, levels: int = 4, width: int = 16,
                 domain: str = "fourier", pad: int = 32, window: int | None = 512, window_overlap: int = 128,
                 inputs: str = "feature", deconv_inputs: str = "feature", image_channels: int = 3) -> None:
        super().__init__()
        if domain not in ("fourier", "spatial"):
            raise ValueError(f"domain must be 'fourier' or 'spatial', got {domain!r}")
        if inputs not in self.INPUTS or deconv_inputs not in self.DECONV_INPUTS:
            raise ValueError(f"inputs must be one of {sorted(self.INPUTS)} and deconv_inputs one of "
                             f"{sorted(self.DECONV_INPUTS)}, got {inputs!r}, {deconv_inputs!r}")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        if window is not None and not 0 <= window_overlap < window:
            raise ValueError(f"window_overlap must be in [0, window={window}), got {window_overlap}")
        self.domain = domain
        self.pad, self.window, self.window_overlap = pad, window, window_overlap
        self.inputs, self.deconv_inputs = self.INPUTS[inputs], self.DECONV_INPUTS[deconv_inputs]
        width_of = {"feature": dim, "inp": image_channels, "latentsharp": image_channels}
        self.to_x = nn.Conv2d(sum(width_of[k] for k in self.inputs), dim, 1)
        self.to_y = nn.Conv2d(sum(width_of[k] for k in self.deconv_inputs), dim, 1)
        self.r0 = nn.Conv2d(2 * dim, dim, 1)
        self.encoder = RestorationUNet(block, in_channels=dim, width=width, enc_blocks=[1] * levels,
                                       middle_blocks=1)
        self.norm = LayerNorm2d(dim)
        self.head = nn.Conv2d(dim, 2 * dim, 1)
        self.fuse = nn.Conv2d(2 * dim, dim, 1)
        # start at K = 1 (a delta kernel; f = y) so early training sees the plain features
        nn.init.normal_(self.head.weight, std=1e-3)
        with torch.no_grad():
            self.head.bias.zero_()
            self.head.bias[:dim] = 1.0

    def windows(self, h: int, w: int) -> tuple[list[int], list[int], int, int]:
        """(row starts, column starts, window height, window width) for an h × w feature."""
        if self.window is None or (h <= self.window and w <= self.window):
            return [0], [0], h, w
        overlap = 0 if self.training else self.window_overlap
        return (window_starts(h, self.window, overlap), window_starts(w, self.window, overlap),
                min(h, self.window), min(w, self.window))

    def estimate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One batch of (padded) windows: x, y (N, C, h, w) → (f (N, C, h, w), K (N, C, h, w//2+1) or None)."""
        if self.domain == "spatial":
            a, b = self.head(self.norm(self.encoder(self.r0(torch.cat([x, y], dim=1))))).chunk(2, dim=1)
            return y * a + b, None
        with _fp32(x):
            spec = torch.fft.rfft2(_full(x), norm="ortho")
        r = self.encoder(self.r0(torch.cat([spec.real, spec.imag], dim=1).to(x.dtype)))
        k_re, k_im = _full(self.head(self.norm(r))).chunk(2, dim=1)
        kernel = torch.complex(k_re, k_im)
        return fft_conv2d(y, kernel).to(x.dtype), kernel

    @property
    def needs_latent(self) -> bool:
        """Whether x reads a latent sharp image (``inputs="inp_latentsharp_feature"``)."""
        return "latentsharp" in self.inputs

    def forward(self, d: torch.Tensor, image: torch.Tensor | None = None,
                latent: torch.Tensor | None = None) -> tuple[torch.Tensor, KernelSpectrum | None]:
        b, c, h, w = d.shape
        given = {"feature": d, "inp": image, "latentsharp": latent}
        missing = sorted({k for k in self.inputs + self.deconv_inputs if given[k] is None})
        if missing:
            raise ValueError(f"this estimator reads {' and '.join(missing)} (inputs={'_'.join(self.inputs)!r}, "
                             f"deconv_inputs={'_'.join(self.deconv_inputs)!r}); pass them to forward")
        # pointwise: the same on the whole feature as per window
        x = self.to_x(torch.cat([given[k] for k in self.inputs], dim=1))
        y = self.to_y(torch.cat([given[k] for k in self.deconv_inputs], dim=1))
        rows, cols, kh, kw = self.windows(h, w)
        p = self.pad

        def cut(t: torch.Tensor) -> torch.Tensor:
            parts = torch.cat([t[..., i:i + kh, j:j + kw] for i in rows for j in cols])
            return F.pad(parts, (p, p, p, p), mode="replicate") if p else parts

        f, kernel = self.estimate(cut(x), cut(y))
        f = f[..., p:p + kh, p:p + kw]
        if len(rows) * len(cols) > 1:
            hard = self.training or self.window_overlap == 0
            wh = window_weights(rows, kh, hard, f.dtype, f.device)
            ww = window_weights(cols, kw, hard, f.dtype, f.device)
            merged = f.new_zeros(b, c, h, w)
            parts = f.unflatten(0, (len(rows) * len(cols), b))
            for n, ((i, wi), (j, wj)) in enumerate((r, cl) for r in zip(rows, wh) for cl in zip(cols, ww)):
                merged[..., i:i + kh, j:j + kw] += parts[n] * (wi[:, None] * wj[None, :])
            f = merged
        spectrum = None
        if kernel is not None:
            spectrum = KernelSpectrum(kernel.unflatten(0, (len(rows) * len(cols), b)).transpose(0, 1),
                                      (kh + 2 * p, kw + 2 * p), (len(rows), len(cols)))
        return self.fuse(torch.cat([f, d], dim=1)), spectrum


# ---------------------------------------------------------------------------------------------------------
# RevCol columns
# ---------------------------------------------------------------------------------------------------------
class _ColumnLevel(nn.Module):
    """Level i of a RevCol column: l_i(c_{i−1}^t, c_{i+1}^{t−1}) = blocks(down(c_{i−1}^t) + up(c_{i+1}^{t−1})).

    Level 0 reads the stem (no down); the deepest level has no upper input (no up).
    """

    def __init__(self, block: BlockFactory, dim: int, kernel_size: int | None, n_blocks: int, first: bool,
                 last: bool, min_alpha: float) -> None:
        super().__init__()
        self.down = None if first else nn.Conv2d(dim // 2, dim, 2, stride=2)
        self.up = None if last else nn.Sequential(nn.Conv2d(dim * 2, dim * 4, 1, bias=False), nn.PixelShuffle(2))
        self.blocks = _stage(block, dim, kernel_size, [0.0] * n_blocks)
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.min_alpha = min_alpha

    def scale(self) -> torch.Tensor:
        """α with |α| ≥ min_alpha (sign kept): the reversible backward divides by it."""
        sign = torch.where(self.alpha >= 0, 1.0, -1.0).to(self.alpha)
        return sign * self.alpha.abs().clamp_min(self.min_alpha)

    def branch(self, lower: torch.Tensor, upper: torch.Tensor | None) -> torch.Tensor:
        z = lower if self.down is None else self.down(lower)
        if self.up is not None:
            z = z + self.up(upper)
        return self.blocks(z)


class _Column(nn.Module):
    def __init__(self, levels: Sequence[_ColumnLevel]) -> None:
        super().__init__()
        self.levels = nn.ModuleList(levels)

    def forward(self, stem: torch.Tensor, states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        new: list[torch.Tensor] = []
        last = len(self.levels) - 1
        for i, level in enumerate(self.levels):
            lower = stem if i == 0 else new[i - 1]
            upper = states[i + 1] if i < last else None
            new.append(level.branch(lower, upper) + level.scale() * states[i])
        return new


@contextlib.contextmanager
def _frozen_bn_stats(module: nn.Module):
    """Recomputation must not update BatchNorm running statistics a second time (momentum 0 = unchanged)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


def _rng_state(device: torch.device) -> tuple:
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


@contextlib.contextmanager
def _restored_rng(state: tuple, device: torch.device):
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=True):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield


class _ReversibleColumns(torch.autograd.Function):
    """RevCol's reversible propagation (Cai et al. 2023, Sec. 3.2): only the last column's states are kept;
    backward rebuilds each earlier column from the later one,
    c_i^{t−1} = (c_i^t − l_i(c_{i−1}^t, c_{i+1}^{t−1})) / α_i,
    deepest level first, recomputing each l_i once with gradients (RNG and autocast state replayed).

    Parameter gradients are accumulated into ``.grad`` inside backward (as in the official RevCol code), so
    use ``loss.backward()``; ``torch.autograd.grad`` would not see them.
    """

    @staticmethod
    def forward(ctx, columns: nn.ModuleList, stem: torch.Tensor, *states: torch.Tensor):
        ctx.columns = columns
        ctx.autocast = (torch.is_autocast_enabled(stem.device.type), torch.get_autocast_dtype(stem.device.type))
        ctx.device = stem.device
        rng = []
        with torch.no_grad():
            current = list(states)
            for column in columns:
                levels_rng = []
                new: list[torch.Tensor] = []
                last = len(column.levels) - 1
                for i, level in enumerate(column.levels):
                    levels_rng.append(_rng_state(stem.device))
                    lower = stem if i == 0 else new[i - 1]
                    upper = current[i + 1] if i < last else None
                    new.append(level.branch(lower, upper) + level.scale() * current[i])
                rng.append(levels_rng)
                current = new
        ctx.rng = rng
        ctx.save_for_backward(stem, *current)
        return tuple(current)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        stem, *states = ctx.saved_tensors
        enabled, dtype = ctx.autocast
        device = ctx.device
        grads = [torch.zeros_like(s) if g is None else g for g, s in zip(grads, states)]
        grad_stem = torch.zeros_like(stem)
        n = len(states)
        for column, levels_rng in zip(reversed(ctx.columns), reversed(ctx.rng)):
            prev: list[torch.Tensor | None] = [None] * n
            prev_grads: list[torch.Tensor | None] = [None] * n
            for i in reversed(range(n)):
                level = column.levels[i]
                lower = (stem if i == 0 else states[i - 1]).detach().requires_grad_()
                upper = prev[i + 1].detach().requires_grad_() if i < n - 1 else None
                with torch.enable_grad(), _restored_rng(levels_rng[i], device), _frozen_bn_stats(level), \
                        torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled):
                    f = level.branch(lower, upper)
                    alpha = level.scale()
                with torch.no_grad():
                    prev[i] = ((states[i] - f) / alpha).to(states[i].dtype)
                with torch.enable_grad():
                    # c_i^t = f + α·c_i^{t−1}: dα through the second term, c_i^{t−1} held constant
                    torch.autograd.backward([f, alpha * prev[i]], [grads[i].to(f.dtype), grads[i]])
                prev_grads[i] = alpha.detach() * grads[i]
                if i == 0:
                    grad_stem = grad_stem + lower.grad
                else:
                    grads[i - 1] = grads[i - 1] + lower.grad
                if upper is not None:
                    prev_grads[i + 1] = prev_grads[i + 1] + upper.grad
            states, grads = prev, prev_grads
        return (None, grad_stem, *grads)


class RevColumns(nn.Module):
    """RevCol columns over a U-Net's encoder levels: c_i^t = l_i(c_{i−1}^t, c_{i+1}^{t−1}) + α_i·c_i^{t−1}.

    Args:
        block: block factory.
        width: channels of level 0 (doubling per level).
        blocks: blocks per level, the deepest last (the U-Net's ``enc_blocks + [middle_blocks]``).
        kernel_sizes: kernel size per level (or ``None`` entries).
        columns: number of columns.
        reversible: recompute activations in backward instead of storing them (same outputs and gradients).
        min_alpha: lower bound on |α|.

    Shapes: stem (B, W, H, W') and states [c_0 … c_L] (c_i: (B, W·2^i, H/2^i, W'/2^i)) → states of the last column.
    """

    def __init__(self, block: BlockFactory, width: int, blocks: Sequence[int], kernel_sizes: Sequence[int | None],
                 columns: int, reversible: bool = False, min_alpha: float = 0.1) -> None:
        super().__init__()
        last = len(blocks) - 1
        self.columns = nn.ModuleList(
            _Column([_ColumnLevel(block, width * 2**i, k, n, i == 0, i == last, min_alpha)
                     for i, (n, k) in enumerate(zip(blocks, kernel_sizes))]) for _ in range(columns))
        self.reversible = reversible

    def forward(self, stem: torch.Tensor, states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(self.columns) == 0:
            return list(states)
        if self.reversible and torch.is_grad_enabled() and self.training:
            return list(_ReversibleColumns.apply(self.columns, stem, *states))
        for column in self.columns:
            states = column(stem, states)
        return list(states)


# ---------------------------------------------------------------------------------------------------------
# The deblurring network
# ---------------------------------------------------------------------------------------------------------
class DeepRFTNet(nn.Module):
    """Decoupled multi-scale deblurring network with a Fourier kernel estimator per scale (DeepRFTv2).

    Scale s = 0 is the coarsest (input downscaled by 2^(scales−1), 2×2 averages), the last the
    full resolution. Each scale is a :class:`~restore.models.unet.RestorationUNet` of the configured block used
    through its parts: stem = intro(x_s) (+ the coarser scale's [f'; P̂] fused in by Conv1×1 + PixelShuffle(2)),
    its encoder and middle, optional RevCol columns, its decoder → d; the FKE turns d into f'; the scale's
    image is the U-Net's ``reconstruct(f', x_s)`` = Conv3×3(f') + x_s.

    Contract: ``forward(x)`` maps (B, C, H, W) → (B, C, H, W) (the full-resolution image, any size: inputs are
    reflect-padded to :attr:`size_multiple` and cropped back), so the net works wherever a restoration network
    does (``restore_image``, metrics, export). ``forward(x, return_all=True)`` returns the images of every
    scale, **coarse → fine** (with ``latent_sharp`` two per scale, the latent sharp image then the FKE's; scale s
    cropped to ⌈H/2^(S−1−s)⌉ × ⌈W/2^(S−1−s)⌉; the last is the output), what the training loss
    reads
    (:class:`restore.losses.MultiScaleLoss`; :class:`~restore.lightning.RestorationModule` asks for it when the
    net has ``multi_output = True``). :meth:`estimate_kernels` gives the estimated kernels to look at.

    Args:
        block: block factory (Hydra ``_partial_`` block: NAFBlock, UniRepLKNetBlock, InceptionNeXtBlock,
            ResFFTBlock…).
        in_channels: image channels (1 or 3).
        width: channels at each sub-U-Net's full resolution (48 in the paper: widths 48/96/192).
        enc_blocks, middle_blocks, dec_blocks, kernel_sizes, skip, drop_path_rate: of each sub-U-Net
            (see :class:`~restore.models.unet.RestorationUNet`).
        scales: sub-U-Nets (2 in the paper: full and ½ scale).
        estimator: ``"fourier"`` (the FKE), ``"spatial"`` (the no-FKE ablation, identical parameter count) or
            ``None`` (the sub-U-Net's own reconstruction from d).
        estimator_levels, estimator_width: the FKE's spectral encoder (4 levels in the paper).
        estimator_pad, estimator_window, estimator_window_overlap: the full-resolution FKE's replicate padding,
            window and window overlap (official: 32, 512, 128; see :class:`FourierKernelEstimator`); each
            coarser scale halves them, as the official does. The net configs set the official values; the
            defaults here (0, None: no padding, one window) keep a stored config written before these options
            existed building the network its weights were trained as.
        estimator_inputs, estimator_deconv_inputs: what the estimator's x and y are made from (the official
            ``inp_feature`` / ``deconv_feature``; see :class:`FourierKernelEstimator`); the latent sharp image
            ``"inp_latentsharp_feature"`` reads needs ``latent_sharp``.
        columns: RevCol columns after each sub-U-Net's encoder (0: none).
        reversible: recompute the columns' activations in backward (training memory; same gradients).
        min_alpha: lower bound on the columns' |α|.
        latent_sharp: also give each scale's decoder image Conv3×3(d) + input, before the FKE, to the loss (the
            official ``latent_sharp``: both images of every scale are supervised); never the output.
        tile, tile_overlap: at inference (``eval()``, the full-resolution image), run images larger than ``tile``
            on overlapping tiles (:meth:`_tiled`; the official test: 512, overlap 128), so any photo restores in
            bounded memory; ``None``: the whole image at once (the estimator still windows it).

    Shapes: (B, C, H, W) → (B, C, H, W); with ``return_all=True`` a list of ``scales`` (× 2 with
    ``latent_sharp``) images, coarse → fine.
    """

    multi_output = True

    def __init__(
        self,
        block: BlockFactory,
        in_channels: int = 3,
        width: int = 16,
        enc_blocks: Sequence[int] = (1, 1),
        middle_blocks: int = 1,
        dec_blocks: Sequence[int] | None = None,
        kernel_sizes: Sequence[int] | None = None,
        skip: str = "add",
        drop_path_rate: float = 0.0,
        scales: int = 2,
        estimator: str | None = "fourier",
        estimator_levels: int = 2,
        estimator_width: int = 8,
        estimator_pad: int = 0,
        estimator_window: int | None = None,
        estimator_window_overlap: int = 128,
        estimator_inputs: str = "feature",
        estimator_deconv_inputs: str = "feature",
        columns: int = 0,
        reversible: bool = False,
        min_alpha: float = 0.1,
        latent_sharp: bool = False,
        tile: int | None = None,
        tile_overlap: int = 128,
    ) -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be >= 1, got {scales}")
        if estimator not in ("fourier", "spatial", None):
            raise ValueError(f"estimator must be 'fourier', 'spatial' or None, got {estimator!r}")
        levels = len(enc_blocks)
        self.in_channels = self.out_channels = in_channels
        self.width = width
        self.scales = scales
        self.size_multiple = 2**levels * 2 ** (scales - 1)
        ks = list(kernel_sizes) if kernel_sizes is not None else [None] * (levels + 1)
        self.unets = nn.ModuleList(
            RestorationUNet(block, in_channels=in_channels, width=width, enc_blocks=enc_blocks,
                            middle_blocks=middle_blocks, dec_blocks=dec_blocks, kernel_sizes=kernel_sizes,
                            skip=skip, drop_path_rate=drop_path_rate) for _ in range(scales))
        self.columns = nn.ModuleList(
            RevColumns(block, width, list(enc_blocks) + [middle_blocks], ks, columns, reversible, min_alpha)
            for _ in range(scales))
        def fke(s: int) -> nn.Module:
            if not estimator:
                return nn.Identity()
            f = 2 ** (scales - 1 - s)  # scale s is 1/f of the full resolution
            return FourierKernelEstimator(width, block, estimator_levels, estimator_width, estimator,
                                          pad=estimator_pad // f,
                                          window=None if estimator_window is None else estimator_window // f,
                                          window_overlap=estimator_window_overlap // f,
                                          inputs=estimator_inputs, deconv_inputs=estimator_deconv_inputs,
                                          image_channels=in_channels)

        self.estimators = nn.ModuleList(fke(s) for s in range(scales))
        self.estimator = estimator
        if estimator and "latentsharp" in estimator_inputs and not latent_sharp:
            raise ValueError(f"estimator_inputs={estimator_inputs!r} reads each scale's latent sharp image: "
                             "set latent_sharp=True")
        if tile is not None and not 0 <= tile_overlap < tile:
            raise ValueError(f"tile_overlap must be in [0, tile={tile}), got {tile_overlap}")
        self.tile, self.tile_overlap = tile, tile_overlap
        # the official's latent-sharp image of each scale, Conv3×3(d) + input, supervised beside the FKE's image
        self.latent_outros = nn.ModuleList(
            nn.Conv2d(width, in_channels, 3, padding=1) for _ in range(scales)) if latent_sharp else None
        # the coarser scale's [f'; image] → the finer scale's stem resolution and width
        self.fuses = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width + in_channels, width * 4, 1), nn.PixelShuffle(2)) for _ in range(scales - 1))

    # -- the full-resolution sub-U-Net's parts (what heads and tests read) ---------------------------------
    @property
    def decoder(self) -> nn.Module:
        """The full-resolution sub-U-Net's decoder."""
        return self.unets[-1].decoder

    @property
    def latent_channels(self) -> int:
        return self.unets[-1].latent_channels

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Padded input → the full-resolution sub-U-Net's (latent, skips), the coarser scales run first."""
        carry = self._coarse(x)[1]
        return self._encode_scale(len(self.unets) - 1, x, carry)

    def decode(self, latent: torch.Tensor, skips: Sequence[torch.Tensor],
               return_levels: bool = False) -> torch.Tensor | list[torch.Tensor]:
        return self.unets[-1].decode(latent, skips, return_levels=return_levels)

    def reconstruct(self, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Full-resolution decoder features and the padded input → the image (FKE, then Conv3×3 + input)."""
        return self._reconstruct_scale(len(self.unets) - 1, features, x)[0][-1]

    # -- scales ----------------------------------------------------------------------------------------------
    def _inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The blurry input at every scale, coarse → fine."""
        out = [x]
        for _ in range(self.scales - 1):
            # 2×2 average: an anti-aliased ½ downscale that ONNX exports (antialiased bilinear does not)
            out.append(F.avg_pool2d(out[-1], 2))
        return out[::-1]

    def _encode_scale(self, s: int, x: torch.Tensor, carry: torch.Tensor | None):
        unet = self.unets[s]
        stem = unet.intro(x)
        if carry is not None:
            stem = stem + self.fuses[s - 1](carry)
        latent, skips = unet.encoder(stem)
        states = self.columns[s](stem, skips + [unet.middle(latent)])
        return states[-1], states[:-1]

    def _reconstruct_scale(self, s: int, d: torch.Tensor, x: torch.Tensor, latent_sharp: bool = False):
        """Scale s's decoder feature d and input x → (its images: [latent sharp,] FKE image; carry; kernel)."""
        latent = self.latent_outros[s](d) + x if self.latent_outros is not None else None
        if self.estimator is None:
            feature, kernel = d, None
        else:
            feature, kernel = self.estimators[s](d, image=x, latent=latent)
        image = self.unets[s].reconstruct(feature, x)
        images = [latent, image] if latent_sharp and latent is not None else [image]
        return images, torch.cat([feature, image], dim=1), kernel

    def _coarse(self, x: torch.Tensor, latent_sharp: bool = False):
        """Run every scale but the finest: ([(scale, image), …], carry into the finest, kernel spectra)."""
        inputs = self._inputs(x)
        images, kernels, carry = [], [], None
        for s in range(self.scales - 1):
            latent, skips = self._encode_scale(s, inputs[s], carry)
            out, carry, kernel = self._reconstruct_scale(s, self.unets[s].decode(latent, skips), inputs[s],
                                                         latent_sharp)
            images += [(s, image) for image in out]
            kernels.append(kernel)
        return images, carry, kernels

    def _run(self, x: torch.Tensor, latent_sharp: bool = False):
        """Padded input → ([(scale, image), …] coarse → fine, the last the output; kernel spectra per scale)."""
        images, carry, kernels = self._coarse(x, latent_sharp)
        s = self.scales - 1
        latent, skips = self._encode_scale(s, x, carry)
        out, _, kernel = self._reconstruct_scale(s, self.unets[s].decode(latent, skips), x, latent_sharp)
        return images + [(s, image) for image in out], kernels + [kernel]

    def forward(self, x: torch.Tensor, return_all: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """(B, C, H, W) → (B, C, H, W); ``return_all=True``: every scale's images, coarse → fine."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} takes (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if not return_all and not self.training and self.tile is not None and max(h, w) > self.tile:
            return self._tiled(x)
        images, _ = self._run(pad_to_multiple(x, self.size_multiple), latent_sharp=return_all)
        if not return_all:
            return images[-1][1][..., :h, :w]
        out = []
        for s, image in images:
            f = 2 ** (self.scales - 1 - s)
            out.append(image[..., :-(-h // f), :-(-w // f)])
        return out

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        """The whole network on ``tile``² tiles overlapping by ``tile_overlap``, blended by the estimator's linear
        ramps (:func:`window_starts`, :func:`window_weights`): the official test's 512/128 sub-images. With
        ``tile`` and ``tile_overlap`` equal to the full-resolution estimator's window and overlap, every tile is
        one estimator window, where it lies in the whole-image computation."""
        _, _, h, w = x.shape
        rows, cols = window_starts(h, self.tile, self.tile_overlap), window_starts(w, self.tile, self.tile_overlap)
        th, tw = min(h, self.tile), min(w, self.tile)
        wh = window_weights(rows, th, hard=False, dtype=x.dtype, device=x.device)
        ww = window_weights(cols, tw, hard=False, dtype=x.dtype, device=x.device)
        out, total = torch.zeros_like(x), x.new_zeros(1, 1, h, w)
        for i, wi in zip(rows, wh):
            for j, wj in zip(cols, ww):
                patch = pad_to_multiple(x[..., i:i + th, j:j + tw], self.size_multiple)
                weight = wi[:, None] * wj[None, :]
                out[..., i:i + th, j:j + tw] += self._run(patch)[0][-1][1][..., :th, :tw] * weight
                total[..., i:i + th, j:j + tw] += weight
        return out / total  # normalised: where three tiles overlap the ramps do not sum to one

    @torch.no_grad()
    def estimate_kernels(self, x: torch.Tensor, crop: int | None = 65) -> list[torch.Tensor]:
        """The estimated kernels of every scale, coarse → fine: (B, C, crop, crop) images in [0, 1]
        (|irfft2(K)| per channel, centred; see :func:`kernel_images`); of the middle window where the estimator
        cuts the image into windows. Empty for ``estimator != "fourier"``."""
        if self.estimator != "fourier":
            return []
        _, kernels = self._run(pad_to_multiple(x, self.size_multiple))
        return [kernel_images(k.centre(), k.size, crop) for k in kernels]
