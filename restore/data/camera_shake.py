"""Camera-shake blur: Boracchi & Foi's random hand-shake trajectories, integrated over an exposure time.

Boracchi & Foi, "Modeling the performance of image restoration from motion blur", IEEE TIP 2012, Sec. II
(the trajectory and PSF model DeblurGAN's ``motion_blur`` uses): the camera follows a 2-D random walk with
inertia — Gaussian jitter scaled by an *anxiety* parameter, a pull back towards the start, rare abrupt shakes
that reverse the motion — at constant speed along a path of ``max_length`` px sampled at ``num_samples``
instants (:func:`restore.data.kernels.random_motion_trajectory`, the one copy of that recurrence). The PSF of
an exposure T ∈ (0, 1] is the path's first fraction T, integrated in time with sub-pixel (bilinear) weights;
a short exposure gives a short blur, a long one the whole shake. Here the PSF is then moved so that its centre
of mass is the kernel's centre pixel (no global shift between the blurry and the sharp image, as the test
protocol centres kernels12 k09–k12) on the smallest odd canvas of ``size`` that holds it.

What it models: blur from camera rotation about the optical axis' perpendiculars of a hand-held camera
(in-plane translation of the image), uniform over the image, integrated over the exposure; additive Gaussian
noise and 8-bit rounding of the blurry image. What it does not: spatially varying blur (rotation about the
optical axis, depth parallax, moving objects), GoPro-style averaging of a real frame sequence (no clean video
exists here), the camera response curve (blur is applied to gamma-encoded values, not linear light),
saturated highlights, lens blur, rolling shutter, Poisson noise and JPEG compression.

kornia has straight-line motion kernels only (``kornia.filters.get_motion_kernel2d``), so the exposure
integration and centring are written here; the blur itself is ``kornia.filters.filter2d`` with the kernel
flipped (a convolution with the PSF), reflect borders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from kornia.filters import filter2d

from restore.data.degradations import AddGaussianNoise, _draw, _range
from restore.data.kernels import random_motion_trajectory

__all__ = ["CameraShakeBlur", "camera_shake_kernel", "exposure_psf"]


def exposure_psf(path: torch.Tensor, exposure: float, min_size: int = 7, max_size: int = 41) -> torch.Tensor:
    """The PSF of a trajectory over the first fraction ``exposure`` of its samples, centred by centre of mass.

    Time integration with sub-pixel weights (Boracchi & Foi's ``createPSFs``): every sample up to T·(n − 1)
    spreads unit weight over its four neighbouring pixels bilinearly, the sample at the fractional end time
    (interpolated on the path) its fractional weight. The path is moved so that the weights' centre of mass
    falls on the centre pixel of the smallest odd square (at least ``min_size``) that holds every tap; a path
    that would need more than ``max_size`` is shrunk about its centroid to fit (its shape kept).

    Args:
        path: (n, 2) positions (x, y) in px, one per time sample.
        exposure: T ∈ (0, 1], the fraction of the trajectory's duration the shutter is open.
        min_size, max_size: odd bounds on the kernel's side.

    Returns:
        (s, s) float32 kernel summing to 1, s odd in [min_size, max_size], its centroid on pixel (s//2, s//2).
    """
    if not 0 < exposure <= 1:
        raise ValueError(f"exposure must be in (0, 1], got {exposure}")
    if min_size % 2 == 0 or max_size % 2 == 0 or not 3 <= min_size <= max_size:
        raise ValueError(f"kernel sizes must be odd with 3 <= min_size <= max_size, got {min_size}, {max_size}")
    path = path.double()
    end = exposure * (len(path) - 1)
    last = int(math.floor(end))
    points, weights = path[: last + 1], torch.ones(last + 1, dtype=torch.float64)
    if end > last:  # the fractional last instant, on the segment towards the next sample
        frac = end - last
        points = torch.cat([points, (path[last] + frac * (path[last + 1] - path[last]))[None]])
        weights = torch.cat([weights, torch.tensor([frac], dtype=torch.float64)])
    centroid = (weights[:, None] * points).sum(0) / weights.sum()  # bilinear splats keep it exactly
    offsets = points - centroid
    reach = float(offsets.abs().max())
    half = max(min_size // 2, math.ceil(reach - 1e-9) + 1)  # one pixel beyond the farthest tap (bilinear)
    if half > max_size // 2:
        offsets = offsets * ((max_size // 2 - 1) / reach)
        half = max_size // 2
    size = 2 * half + 1
    pos = offsets + half
    corner = pos.floor()
    fx, fy = (pos - corner).unbind(1)
    x0, y0 = corner.long().unbind(1)
    kernel = torch.zeros(size, size, dtype=torch.float64)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        kernel.index_put_((y0 + dy, x0 + dx), weights * w, accumulate=True)
    return (kernel / kernel.sum()).float()


def camera_shake_kernel(generator: torch.Generator | None = None, max_length: float = 64.0,
                        anxiety: float | Sequence[float] = (0.0, 0.01),
                        exposure: float | Sequence[float] = (1 / 16, 1.0), size: Sequence[int] = (7, 41),
                        num_samples: int = 2000) -> torch.Tensor:
    """One random camera-shake PSF (Boracchi & Foi 2012): a trajectory, an exposure, the centred PSF.

    Args:
        generator: source of randomness.
        max_length: the whole trajectory's path length in px (B&F's ``MaxTotalLength``, their default 64; the
            rare paths that then exceed the largest kernel are shrunk to fit).
        anxiety: the trajectory's shake strength (0: a straight line), fixed or a [low, high] range drawn
            uniformly (B&F's demo uses 0.005).
        exposure: T, fixed or a [low, high] range drawn log-uniformly (B&F's ladder 1/16, 1/4, 1/2, 1 is
            log-spaced).
        size: [min, max] odd kernel side.
        num_samples: time samples of the trajectory (B&F: 2000).

    Returns:
        (s, s) float32 kernel summing to 1, centred by centre of mass.

    Example:
        >>> k = camera_shake_kernel(torch.Generator().manual_seed(0))
        >>> k.shape[0] % 2 == 1 and 7 <= k.shape[0] <= 41, round(float(k.sum()), 4)
        (True, 1.0)
    """
    low, high = _range(exposure, "exposure")
    t = math.exp(_draw((math.log(low), math.log(high)), generator))
    path = random_motion_trajectory(max_length, num_samples, _draw(_range(anxiety, "anxiety"), generator), generator)
    return exposure_psf(path, t, int(size[0]), int(size[1]))


class CameraShakeBlur:
    """Degradation: blur with a random camera-shake PSF (:func:`camera_shake_kernel`), then optional noise
    and 8-bit rounding, clipped to [0, 1].

    Args:
        max_length, anxiety, exposure, size, num_samples: of :func:`camera_shake_kernel`.
        sigma: AWGN σ on the 0–255 scale, fixed or a [low, high] range (``0``: none).
        quantize: round the blurry image to 8 bits (what a saved PNG holds).
        task: task name of the samples.

    Shapes: (C, H, W) in [0, 1] → (C, H, W) in [0, 1].
    """

    def __init__(self, max_length: float = 64.0, anxiety: float | Sequence[float] = (0.0, 0.01),
                 exposure: float | Sequence[float] = (1 / 16, 1.0), size: Sequence[int] = (7, 41),
                 num_samples: int = 2000, sigma: float | Sequence[float] = (0.0, 2.55), quantize: bool = True,
                 task: str = "deblur") -> None:
        if max_length <= 0:
            raise ValueError(f"max_length must be > 0 px, got {max_length}")
        self.anxiety = _range(anxiety, "anxiety")
        self.exposure = _range(exposure, "exposure")
        if self.anxiety[0] < 0:
            raise ValueError(f"anxiety must be >= 0, got {anxiety}")
        if not 0 < self.exposure[0] <= self.exposure[1] <= 1:
            raise ValueError(f"exposure must lie in (0, 1], got {exposure}")
        size = tuple(int(s) for s in size)
        if len(size) != 2 or size[0] % 2 == 0 or size[1] % 2 == 0 or not 3 <= size[0] <= size[1]:
            raise ValueError(f"size must be [min, max] odd kernel sides, 3 <= min <= max, got {list(size)}")
        self.max_length, self.size, self.num_samples = float(max_length), size, int(num_samples)
        self.noise = AddGaussianNoise(sigma=sigma, clip=True, task=task)
        self.quantize = quantize
        self.task = task

    def kernel(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A PSF drawn as the degradation draws it."""
        return camera_shake_kernel(generator, self.max_length, self.anxiety, self.exposure, self.size,
                                   self.num_samples)

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        kernel = self.kernel(generator)
        pad = kernel.shape[-1] // 2
        border = "reflect" if min(image.shape[-2:]) > pad else "replicate"
        # filter2d correlates: the flipped PSF makes it a convolution with the PSF
        out = filter2d(image[None], kernel.flip(-2, -1)[None].to(image), border_type=border)[0].clamp(0, 1)
        if self.noise.sigma[1] > 0:
            out = self.noise(out, generator)
        return (out * 255).round() / 255 if self.quantize else out

    def __repr__(self) -> str:
        return (f"CameraShakeBlur(max_length={self.max_length}, anxiety={self.anxiety}, exposure={self.exposure}, "
                f"size={self.size}, sigma={self.noise.sigma}, quantize={self.quantize}, task={self.task!r})")
