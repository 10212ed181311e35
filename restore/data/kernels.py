"""Blur-kernel synthesis: camera-shake motion kernels and (an)isotropic Gaussian kernels.

Motion kernels follow the random camera-shake trajectories of Boracchi & Foi, "Modeling the
performance of image restoration from motion blur", IEEE TIP 2012, as used to synthesise
training blur in DeblurGAN (``motion_blur/generate_trajectory.py``) and KAIR
(``utils_deblur``): a 2-D random walk with inertia, a pull back towards the start, Gaussian
jitter and rare abrupt shakes, rasterised with sub-pixel (bilinear) weights. kornia only has
straight-line motion kernels (``kornia.filters.get_motion_kernel2d``), so the trajectory model is
written here. Axis-aligned Gaussian kernels come from ``kornia.filters.get_gaussian_kernel2d``;
only the rotated anisotropic case is computed here.

Every kernel is a float32 (size, size) tensor that sums to 1, for ``kornia.filters.filter2d``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from kornia.filters import get_gaussian_kernel2d

__all__ = ["random_motion_trajectory", "random_motion_kernel", "gaussian_kernel", "load_kernel", "center_kernel"]


def _uniform(generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def random_motion_trajectory(
    length: float,
    num_steps: int = 500,
    anxiety: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random camera-shake trajectory (Boracchi & Foi 2012, Sec. II-A).

    At each step the velocity is pushed by Gaussian jitter and pulled back towards the origin
    (centripetal term); with a small probability it reverses abruptly (a "shake"). The speed is
    renormalised so the path has exactly ``length`` pixels of arc length.

    Args:
        length: arc length of the path in pixels.
        num_steps: samples along the path (more = smoother rasterisation).
        anxiety: jitter strength; ``None`` draws it in [0, 0.1) like DeblurGAN.
        generator: source of randomness (seeded for reproducible kernels).

    Returns:
        (num_steps, 2) float64 positions (x, y) in pixels, starting at (0, 0).
    """
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    expl = _uniform(generator, 0.0, 0.1) if anxiety is None else float(anxiety)
    centripetal = _uniform(generator, 0.0, 0.7)
    prob_big_shake = _uniform(generator, 0.0, 0.2)
    gaussian_shake = _uniform(generator, 0.0, 10.0)
    angle = _uniform(generator, 0.0, 2 * math.pi)
    # all per-step draws at once, then a plain Python loop over complex numbers: the recurrence is
    # sequential, and scalar complex arithmetic is far faster than per-step tensor ops
    shake_draw = torch.rand(num_steps, generator=generator).tolist()
    shake_angle = torch.rand(num_steps, generator=generator).tolist()
    jitter = torch.randn(num_steps, 2, generator=generator).tolist()

    step = length / (num_steps - 1)
    v0 = complex(math.cos(angle), math.sin(angle))
    v = v0 * (expl if expl > 0 else step)
    x = [0j] * num_steps
    for t in range(num_steps - 1):
        turn = 0j
        if shake_draw[t] < prob_big_shake * expl:  # abrupt shake: reverse, give or take 0.5 rad
            turn = 2 * v * complex(math.cos(math.pi + shake_angle[t] - 0.5), math.sin(math.pi + shake_angle[t] - 0.5))
        dv = turn + expl * (gaussian_shake * complex(*jitter[t]) - centripetal * x[t]) * step
        v = v + dv
        v = v / (abs(v) or 1.0) * step  # constant speed: the path length is exactly `length`
        x[t + 1] = x[t] + v
    return torch.from_numpy(np.array(x, dtype=np.complex128).view(np.float64).reshape(num_steps, 2))


def random_motion_kernel(
    size: int,
    generator: torch.Generator | None = None,
    extent: float | None = None,
    num_steps: int = 500,
) -> torch.Tensor:
    """Random camera-shake blur kernel: a :func:`random_motion_trajectory` rasterised on a grid.

    The path (Boracchi & Foi's 60-pixel default length) is centred on its centre of mass, so
    blurring with the kernel does not shift the image (lq stays aligned with gt), then scaled so
    its farthest point lies ``extent`` × the kernel's radius from the centre: how curly a path is
    and how large the blur is are drawn independently.

    Args:
        size: kernel side in pixels (odd keeps the centre on a pixel).
        generator: source of randomness.
        extent: blur size as a fraction of the kernel radius, in (0, 1]; ``None`` draws it in [0.25, 1].
        num_steps: trajectory samples.

    Returns:
        (size, size) float32 kernel summing to 1.

    Example:
        >>> k = random_motion_kernel(21, torch.Generator().manual_seed(0))
        >>> k.shape, round(float(k.sum()), 4)
        (torch.Size([21, 21]), 1.0)
    """
    if size < 5:
        raise ValueError(f"motion kernel size must be >= 5, got {size}")
    if extent is None:
        extent = _uniform(generator, 0.25, 1.0)
    if not 0 < extent <= 1:
        raise ValueError(f"extent must be in (0, 1], got {extent}")
    path = random_motion_trajectory(60.0, num_steps, generator=generator)
    path = path - path.mean(0)  # centre of mass at the kernel centre: no global shift
    radius = path.norm(dim=1).max().item()
    limit = (size - 1) / 2 - 1.0  # keep one pixel for the bilinear footprint
    path = path * (extent * limit / max(radius, 1e-6)) + (size - 1) / 2

    # bilinear splatting: each sample spreads its weight over the four surrounding pixels
    x0, y0 = path[:, 0].floor(), path[:, 1].floor()
    fx, fy = path[:, 0] - x0, path[:, 1] - y0
    x0, y0 = x0.long(), y0.long()
    kernel = torch.zeros(size, size, dtype=torch.float64)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        kernel.index_put_((y0 + dy, x0 + dx), w, accumulate=True)
    return (kernel / kernel.sum()).float()


def gaussian_kernel(size: int, sigma: float, sigma_y: float | None = None, angle: float = 0.0) -> torch.Tensor:
    """Gaussian blur kernel, isotropic or anisotropic (rotated).

    Args:
        size: kernel side (odd).
        sigma: standard deviation along the (rotated) x axis, in pixels.
        sigma_y: standard deviation along the rotated y axis; ``None`` = ``sigma`` (isotropic).
        angle: rotation of the x axis in radians (anisotropic kernels only).

    Returns:
        (size, size) float32 kernel summing to 1.
    """
    if size % 2 == 0 or size < 1:
        raise ValueError(f"Gaussian kernel size must be odd and positive, got {size}")
    sigma_y = sigma if sigma_y is None else sigma_y
    if sigma <= 0 or sigma_y <= 0:
        raise ValueError(f"Gaussian sigmas must be > 0, got {sigma}, {sigma_y}")
    if angle == 0.0 or sigma == sigma_y:  # axis-aligned: kornia has it (takes (sigma_y, sigma_x))
        return get_gaussian_kernel2d((size, size), (float(sigma_y), float(sigma)))[0].float()
    # rotated covariance Σ = R diag(σx², σy²) Rᵀ, as in BasicSR's bivariate_Gaussian
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    cov = rot @ torch.diag(torch.tensor([sigma**2, sigma_y**2], dtype=torch.float64)) @ rot.T
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    grid = torch.stack(torch.meshgrid(r, r, indexing="xy"), -1)  # (size, size, 2) as (x, y)
    expo = -0.5 * torch.einsum("hwi,ij,hwj->hw", grid, torch.linalg.inv(cov), grid)
    kernel = torch.exp(expo)
    return (kernel / kernel.sum()).float()


def load_kernel(path: str | Path) -> torch.Tensor:
    """Load a blur kernel from ``.txt`` (``numpy.loadtxt``), ``.npy`` or an image, normalised to sum 1.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the kernel is not 2-D or sums to zero; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Kernel file not found: {path}")
    if path.suffix == ".txt":
        arr = np.loadtxt(path, dtype=np.float64)
    elif path.suffix == ".npy":
        arr = np.load(path).astype(np.float64)
    else:
        from restore.utils.image import read_image

        arr = read_image(path, channels=1)[0].double().numpy()
    if arr.ndim == 1:  # a one-row text kernel (numpy.loadtxt drops the row axis)
        arr = arr[None]
    if arr.ndim != 2 or arr.sum() <= 0:
        raise ValueError(f"Kernel {path} must be a 2-D array with a positive sum, got shape {arr.shape}")
    return torch.from_numpy(arr / arr.sum()).float()


def center_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """Shift a kernel so that its centre of mass lies on the centre pixel of an odd square canvas.

    Blurring with the result does not shift the image, as with :func:`random_motion_kernel`'s kernels, so a
    network trained on those is not scored on a global shift it cannot know (file kernels such as
    kernels12_k09–k12 sit 1–2 px off-centre; no method recovers that shift from the blurry image alone).
    Integer part by placement, the sub-pixel rest by a bilinear ``kornia.geometry.transform.translate``
    (which keeps the centroid exact but spreads each tap over at most 2×2 pixels).

    Args:
        kernel: (kh, kw) non-negative kernel with a positive sum.

    Returns:
        (s, s) float32 kernel summing to 1, s odd and large enough to hold the shifted kernel.
    """
    from kornia.geometry.transform import translate

    k = kernel.detach().double()
    h, w = k.shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=k.dtype), torch.arange(w, dtype=k.dtype), indexing="ij")
    cy, cx = float((k * yy).sum() / k.sum()), float((k * xx).sum() / k.sum())
    reach = max(cy, h - 1 - cy, cx, w - 1 - cx)  # farthest tap from the centroid, per axis
    side = 2 * math.ceil(reach) + 3  # odd, one free pixel beyond the reach on each side
    oy, ox = side // 2 - round(cy), side // 2 - round(cx)
    canvas = torch.zeros(side, side, dtype=k.dtype)
    canvas[oy : oy + h, ox : ox + w] = k
    shift = torch.tensor([[side // 2 - (ox + cx), side // 2 - (oy + cy)]], dtype=k.dtype)  # (x, y) pixels
    out = translate(canvas[None, None], shift, mode="bilinear", align_corners=True)[0, 0].clamp_min(0)
    return (out / out.sum()).float()
