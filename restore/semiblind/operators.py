"""Blur operator y = k ⊗ x with a 'valid' data term, and its adjoint (FFT, exact for any kernel).

Implements the forward model of Tang et al., CVPR 2023 ("Uncertainty-aware unfolding with deep
residual prior for semi-blind deblurring"), forward model y = k̂ ⊗ x + r + n — here as a *linear*
convolution of an image x living on an extended domain (H+kh−1)×(W+kw−1) whose 'valid' part is
the observed H×W image y.

Departures from the official code (all fixed here):
- it multiplies by the real part of the kernel's OTF (exact only for symmetric kernels); we use the
  complex OTF, i.e. a true convolution (flipped kernel), checked against scipy for asymmetric ones;
- it assumes a circular image; the 'valid' model makes no assumption outside the frame.

torch.fft does the work; kornia's ``filter2d`` is direct (slow for 70² kernels) and has no
'valid'-with-adjoint pair, so the padding/cropping here is hand-written. The FFTs run on scipy's
``next_fast_len`` grid: the extended domain's own size often has a large prime factor (256 + 27 − 1 = 2·3·47),
where an FFT is several times slower.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len

__all__ = ["BlurOperator", "extended_shape", "fast_fft_shape", "translate_image"]


def extended_shape(image_hw: tuple[int, int], kernel_hw: tuple[int, int]) -> tuple[int, int]:
    """Size of the latent domain whose 'valid' convolution with the kernel is ``image_hw``."""
    return image_hw[0] + kernel_hw[0] - 1, image_hw[1] + kernel_hw[1] - 1


def fast_fft_shape(hw: tuple[int, int]) -> tuple[int, int]:
    """The smallest fast (5-smooth) real-FFT grid ≥ ``hw``: a linear convolution computed on it is unchanged."""
    return next_fast_len(int(hw[0]), real=True), next_fast_len(int(hw[1]), real=True)


def translate_image(x: torch.Tensor, shift: tuple[float, float], circular: bool = True) -> torch.Tensor:
    """x (B, C, H, W) translated by a sub-pixel ``shift`` (dy, dx) px: content moves by +shift, x(p − shift).

    A linear phase on the FFT — the band-limited shift, which neither smooths (as bilinear does) nor rings (as an
    interpolation kernel cut to a few taps does). Exact for a periodic image (``circular``); otherwise applied to the
    image's even-symmetric extension (2H × 2W, as a DCT sees it), whose period has no jump, so the edge does not ring
    into the frame (a smooth scene moved by 0.4 px: 1e-3 off at 4 px from the edge, against 1e-2 with a 16-px mirror
    pad). Hand-written: kornia's ``translate`` resamples bilinearly.
    """
    dy, dx = float(shift[0]), float(shift[1])
    if dy == 0 and dx == 0:
        return x
    h, w = x.shape[-2:]
    xe = x.double()
    if not circular:
        xe = torch.cat([xe, xe.flip(-2)], dim=-2)
        xe = torch.cat([xe, xe.flip(-1)], dim=-1)
    fy = torch.fft.fftfreq(xe.shape[-2], dtype=torch.float64, device=x.device)[:, None]
    fx = torch.fft.fftfreq(xe.shape[-1], dtype=torch.float64, device=x.device)[None]
    phase = torch.exp(-2j * torch.pi * (fy * dy + fx * dx))
    # the real part: an even size's Nyquist term, which has no sign to shift, is kept symmetric (× cos)
    out = torch.fft.ifft2(torch.fft.fft2(xe) * phase).real
    return out[..., :h, :w].to(x.dtype)


class BlurOperator:
    """A: x (B, C, H+kh−1, W+kw−1) ↦ valid(k ⊗ x) (B, C, H, W), and Aᵀ, via a cached OTF.

    Args:
        kernel: (kh, kw) blur kernel (convolution, not correlation; any shape, asymmetric fine).
        image_hw: (H, W) of the observed image.

    Example:
        >>> A = BlurOperator(torch.ones(3, 5) / 15, (32, 32))
        >>> A(torch.rand(1, 1, 34, 36)).shape
        torch.Size([1, 1, 32, 32])
    """

    def __init__(self, kernel: torch.Tensor, image_hw: tuple[int, int]):
        if kernel.dim() != 2:
            raise ValueError(f"kernel must be 2-D (kh, kw), got shape {tuple(kernel.shape)}")
        self.kernel = kernel
        self.kh, self.kw = kernel.shape
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        self.ext_hw = extended_shape(self.image_hw, (self.kh, self.kw))
        # kernel at the origin: a circular conv on a grid ≥ ext is the linear conv on the valid part (no wrap
        # reaches it), and the adjoint's correlation reads zeros beyond y
        self.fft_hw = fast_fft_shape(self.ext_hw)
        self.otf = torch.fft.rfft2(kernel, s=self.fft_hw)

    def to(self, device: torch.device | str) -> "BlurOperator":
        return BlurOperator(self.kernel.to(device), self.image_hw)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """valid(k ⊗ x): (B, C, *ext_hw) → (B, C, *image_hw)."""
        if tuple(x.shape[-2:]) != self.ext_hw:
            raise ValueError(f"x must be (B, C, {self.ext_hw[0]}, {self.ext_hw[1]}), got {tuple(x.shape)}")
        full = torch.fft.irfft2(torch.fft.rfft2(x, s=self.fft_hw) * self.otf, s=self.fft_hw)
        return full[..., self.kh - 1 : self.ext_hw[0], self.kw - 1 : self.ext_hw[1]]

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Aᵀ: full correlation, (B, C, *image_hw) → (B, C, *ext_hw)."""
        if tuple(y.shape[-2:]) != self.image_hw:
            raise ValueError(f"y must be (B, C, {self.image_hw[0]}, {self.image_hw[1]}), got {tuple(y.shape)}")
        ypad = F.pad(y, (self.kw - 1, 0, self.kh - 1, 0))
        full = torch.fft.irfft2(torch.fft.rfft2(ypad, s=self.fft_hw) * self.otf.conj(), s=self.fft_hw)
        return full[..., : self.ext_hw[0], : self.ext_hw[1]]

    def pad_image(self, y: torch.Tensor, mode: str = "replicate") -> torch.Tensor:
        """Extend an observed image to the latent domain (an initial guess; 'replicate' by default)."""
        top, left = (self.kh - 1) // 2, (self.kw - 1) // 2
        return F.pad(y, (left, self.kw - 1 - left, top, self.kh - 1 - top), mode=mode)

    def crop_latent(self, x: torch.Tensor) -> torch.Tensor:
        """The part of a latent image aligned with the observed frame (inverse of :meth:`pad_image`)."""
        top, left = (self.kh - 1) // 2, (self.kw - 1) // 2
        return x[..., top : top + self.image_hw[0], left : left + self.image_hw[1]]
