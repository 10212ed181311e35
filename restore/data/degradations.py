"""On-the-fly degradations: clean (C, H, W) image in [0, 1] → degraded image.

Each degradation is a small callable ``degradation(image, generator) -> image`` that draws all of
its randomness from the ``torch.Generator`` it is given, so a dataset controls reproducibility:
validation/test samples get a generator seeded from (seed, index) and are identical on every
pass; training samples get a freshly seeded one per sample in each worker. A list of them is
applied in order (e.g. motion blur, then noise) by :func:`apply_degradations`; Hydra builds the
list from ``_target_`` entries. Each has a ``task`` name (``"denoise"``, ``"deblur"``, …) that
names the task of the samples it makes.

kornia supplies the operations it has (``filter2d``, ``get_gaussian_kernel2d``,
``gaussian_blur2d``, ``adjust_gamma``, ``RandomRain`` for streak placement); what it lacks is
written here and marked so in each docstring. Outputs are clipped to [0, 1], except AWGN which by
default is not (DnCNN-style benchmarks feed the unclipped noisy image).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from kornia.augmentation import RandomRain
from kornia.enhance import adjust_gamma, jpeg_codec_differentiable
from kornia.filters import filter2d, gaussian_blur2d
from PIL import Image

from restore.data.kernels import center_kernel, gaussian_kernel, load_kernel, random_motion_kernel

__all__ = [
    "Degradation",
    "AddGaussianNoise",
    "MotionBlur",
    "GaussianBlur",
    "KernelBlur",
    "JPEGCompression",
    "RainStreaks",
    "Haze",
    "LowLight",
    "apply_degradations",
    "task_name_of",
]


class Degradation(Protocol):
    """What a dataset needs from a degradation."""

    task: str

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(C, H, W) clean image in [0, 1] → (C, H, W) degraded image."""
        ...


def _range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """A fixed value or a [low, high] range (lists come from YAML) → (low, high)."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    values = [float(v) for v in value]
    if len(values) != 2 or values[0] > values[1]:
        raise ValueError(f"{name} must be a number or a [low, high] range, got {list(value)}")
    return values[0], values[1]


def _draw(bounds: tuple[float, float], generator: torch.Generator) -> float:
    """Uniform draw in [low, high] (a fixed value when low == high, consuming no randomness)."""
    low, high = bounds
    return low if low == high else low + (high - low) * float(torch.rand((), generator=generator))


@contextmanager
def _seeded_global_rng(generator: torch.Generator) -> Iterator[None]:
    """Run kornia's samplers (which use the global CPU RNG) under a seed drawn from ``generator``.

    The global state is restored afterwards, so the caller's other random streams are unaffected.
    """
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def _describe(obj: object, **fields: object) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return f"{type(obj).__name__}({args})"


class AddGaussianNoise:
    """Additive white Gaussian noise, σ on the 0–255 scale (σ = 15, 25, 50 in benchmarks).

    Written with ``torch.randn`` rather than ``kornia.augmentation.RandomGaussianNoise``: that one
    takes a single fixed σ and the global RNG, while blind denoising draws σ per image from a
    range and needs the sample's generator.

    Args:
        sigma: fixed σ, or a [low, high] range drawn uniformly per image (e.g. [0, 50]).
        sigma_choices: instead of ``sigma``, σ drawn per image from these levels with equal
            probability (e.g. [15, 25, 50], the all-in-one papers' three noise levels).
        clip: clip the noisy image to [0, 1]; off by default, as DnCNN-style benchmarks are.
        task: task name of the samples.
    """

    def __init__(self, sigma: float | Sequence[float] | None = None, sigma_choices: Sequence[float] | None = None,
                 clip: bool = False, task: str = "denoise") -> None:
        if sigma is not None and sigma_choices is not None:
            raise ValueError(f"give sigma or sigma_choices, not both (got sigma={sigma}, "
                             f"sigma_choices={sigma_choices})")
        if sigma_choices is not None:
            self.sigma_choices = tuple(float(v) for v in sigma_choices)
            if not self.sigma_choices:
                raise ValueError("sigma_choices must list at least one σ")
            self.sigma = (min(self.sigma_choices), max(self.sigma_choices))
        else:
            self.sigma_choices = None
            self.sigma = _range(25.0 if sigma is None else sigma, "sigma")
        if self.sigma[0] < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma if sigma_choices is None else sigma_choices}")
        self.clip = clip
        self.task = task

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.sigma_choices is not None:
            sigma = self.sigma_choices[int(torch.randint(len(self.sigma_choices), (), generator=generator))] / 255.0
        else:
            sigma = _draw(self.sigma, generator) / 255.0
        noisy = image + sigma * torch.randn(image.shape, generator=generator, dtype=image.dtype)
        return noisy.clamp(0, 1) if self.clip else noisy

    def __repr__(self) -> str:
        if self.sigma_choices is not None:
            return _describe(self, sigma_choices=self.sigma_choices, clip=self.clip, task=self.task)
        return _describe(self, sigma=self.sigma, clip=self.clip, task=self.task)


class MotionBlur:
    """Camera-shake motion blur: a random trajectory kernel (:func:`restore.data.kernels.random_motion_kernel`,
    KAIR/DeblurGAN-style) applied with ``kornia.filters.filter2d`` (reflect border).

    Args:
        kernel_size: kernel side in pixels (odd); the blur spans up to this size.
        extent: blur size as a fraction of the kernel radius, fixed or a [low, high] range.
        task: task name of the samples.
    """

    def __init__(
        self, kernel_size: int = 21, extent: float | Sequence[float] = (0.25, 1.0), task: str = "deblur"
    ) -> None:
        if kernel_size < 5 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 5, got {kernel_size}")
        self.kernel_size = kernel_size
        self.extent = _range(extent, "extent")
        self.task = task

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        kernel = random_motion_kernel(self.kernel_size, generator, extent=_draw(self.extent, generator))
        return _convolve(image, kernel)

    def __repr__(self) -> str:
        return _describe(self, kernel_size=self.kernel_size, extent=self.extent, task=self.task)


class GaussianBlur:
    """Gaussian blur with σ drawn per image (``kornia.filters.get_gaussian_kernel2d`` + ``filter2d``).

    Args:
        sigma: fixed σ in pixels, or a [low, high] range.
        kernel_size: kernel side (odd); ``None`` = 2·⌈3·σ_max⌉ + 1.
        anisotropic: draw σ_x and σ_y independently from ``sigma`` and a random rotation
            (BasicSR/USRNet-style anisotropic kernels).
        task: task name of the samples.
    """

    def __init__(
        self,
        sigma: float | Sequence[float] = (0.5, 3.0),
        kernel_size: int | None = None,
        anisotropic: bool = False,
        task: str = "gaussian_deblur",
    ) -> None:
        self.sigma = _range(sigma, "sigma")
        if self.sigma[0] <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.kernel_size = kernel_size or 2 * math.ceil(3 * self.sigma[1]) + 1
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.anisotropic = anisotropic
        self.task = task

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        sigma = _draw(self.sigma, generator)
        if self.anisotropic:
            kernel = gaussian_kernel(self.kernel_size, sigma, _draw(self.sigma, generator),
                                     angle=_draw((0.0, math.pi), generator))
        else:
            kernel = gaussian_kernel(self.kernel_size, sigma)
        return _convolve(image, kernel)

    def __repr__(self) -> str:
        return _describe(self, sigma=self.sigma, kernel_size=self.kernel_size, anisotropic=self.anisotropic,
                         task=self.task)


class KernelBlur:
    """Blur with one fixed kernel: the benchmark sets' recipe (e.g. CBSD68 × kernels12_k09–k12), applied like
    the random blurs (``kornia.filters.filter2d``, reflect borders, clipped to [0, 1]).

    Args:
        kernel: a kernel file (``.txt``, ``.npy`` or an image; :func:`restore.data.load_kernel`) or a 2-D tensor;
            normalised to sum 1.
        center: move the kernel's centre of mass to its centre first (:func:`restore.data.center_kernel`), so
            the blurry image is not shifted against its target: the protocol for networks trained on centred
            kernels. False keeps the file's kernel as is (non-blind methods that are given the kernel).
        task: task name of the samples.

    Raises:
        FileNotFoundError: the kernel file does not exist.
        ValueError: the kernel is not 2-D, has a non-finite or negative entry, or sums to zero (named).
    """

    def __init__(self, kernel: str | torch.Tensor, center: bool = False, task: str = "deblur") -> None:
        if isinstance(kernel, torch.Tensor):
            self.source = f"tensor of shape {tuple(kernel.shape)}"
            kernel = kernel.detach().float()
        else:
            self.source = str(kernel)
            kernel = load_kernel(kernel)
        if kernel.ndim != 2 or not torch.isfinite(kernel).all() or (kernel < 0).any() or kernel.sum() <= 0:
            raise ValueError(f"KernelBlur needs a 2-D, finite, non-negative kernel with a positive sum; "
                             f"{self.source} is not")
        self.kernel = center_kernel(kernel) if center else kernel / kernel.sum()
        self.center = center
        self.task = task

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return _convolve(image, self.kernel)

    def __repr__(self) -> str:
        return _describe(self, kernel=self.source, center=self.center, task=self.task)


def _convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """(C, H, W) ⊛ (k, k) with reflect borders; reflect needs the pad smaller than the image."""
    pad = kernel.shape[-1] // 2
    border = "reflect" if min(image.shape[-2:]) > pad else "replicate"
    out = filter2d(image[None], kernel[None].to(image), border_type=border)[0]
    return out.clamp(0, 1)


class JPEGCompression:
    """JPEG compression artefacts at a quality drawn per image.

    ``backend="pillow"`` (default) runs the real libjpeg codec, as the JPEG benchmarks (Classic5,
    LIVE1) were made, with 4:2:0 chroma subsampling for colour and a true single-channel JPEG for
    gray. ``backend="kornia"`` uses ``kornia.enhance.jpeg_codec_differentiable``, a differentiable
    approximation of the codec (polynomial rounding; ~40 dB from libjpeg's output, RGB only) that
    can run on the GPU.

    Args:
        quality: JPEG quality 1–100, fixed or a [low, high] range (integers drawn for pillow).
        backend: ``"pillow"`` or ``"kornia"``.
        task: task name of the samples.
    """

    def __init__(
        self, quality: float | Sequence[float] = (10, 50), backend: str = "pillow", task: str = "dejpeg"
    ) -> None:
        self.quality = _range(quality, "quality")
        if not 1 <= self.quality[0] <= self.quality[1] <= 100:
            raise ValueError(f"quality must be within [1, 100], got {quality}")
        if backend not in ("pillow", "kornia"):
            raise ValueError(f"backend must be 'pillow' or 'kornia', got {backend!r}")
        self.backend = backend
        self.task = task

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        quality = _draw(self.quality, generator)
        if self.backend == "kornia":
            rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
            out = jpeg_codec_differentiable(rgb[None].clamp(0, 1), torch.tensor([quality], dtype=image.dtype))[0]
            return (out.mean(0, keepdim=True) if image.shape[0] == 1 else out).clamp(0, 1)
        arr = (image.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        pil = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        pil.save(buffer, format="JPEG", quality=int(round(quality)))
        buffer.seek(0)
        decoded = np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
        decoded = decoded[..., None] if decoded.ndim == 2 else decoded
        return torch.from_numpy(decoded.copy()).permute(2, 0, 1).to(image.dtype)

    def __repr__(self) -> str:
        return _describe(self, quality=self.quality, backend=self.backend, task=self.task)


class RainStreaks:
    """Synthetic rain: bright, slanted streaks added on top of the image (Rain100-style O = B + S).

    Streak placement comes from ``kornia.augmentation.RandomRain`` (parallel line drops of one
    length and slant per image). kornia writes its drops as a fixed gray value, which would darken
    bright pixels; here its drop mask becomes a streak layer S, softened with
    ``kornia.filters.gaussian_blur2d`` and screen-blended, 1 − (1 − B)(1 − a·S), so streaks only
    brighten and the result stays in [0, 1].

    Args:
        density: drops per pixel, fixed or a [low, high] range.
        length: streak length in pixels, [low, high] (clipped to the image height).
        slant: horizontal run of a streak in pixels, [low, high] (negative slants left).
        intensity: streak opacity a, fixed or a [low, high] range.
        task: task name of the samples.
    """

    def __init__(
        self,
        density: float | Sequence[float] = (0.002, 0.01),
        length: Sequence[int] = (8, 24),
        slant: Sequence[int] = (-6, 6),
        intensity: float | Sequence[float] = (0.5, 0.9),
        task: str = "derain",
    ) -> None:
        self.density = _range(density, "density")
        self.length = tuple(int(v) for v in _range(length, "length"))
        self.slant = tuple(int(v) for v in _range(slant, "slant"))
        self.intensity = _range(intensity, "intensity")
        if self.length[0] < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.task = task

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _, h, w = image.shape
        drops = max(1, int(round(_draw(self.density, generator) * h * w)))
        # kornia requires drops strictly shorter/narrower than the image
        length = (min(self.length[0], h - 1), min(self.length[1], h - 1))
        slant = (max(self.slant[0], -(w - 1)), min(self.slant[1], w - 1))
        rain = RandomRain(number_of_drops=(drops, drops), drop_height=length, drop_width=slant, p=1.0)
        with _seeded_global_rng(generator):
            mask = rain(torch.zeros(1, 1, h, w, dtype=image.dtype)) > 0
        streaks = gaussian_blur2d(mask.to(image.dtype), (3, 3), (0.6, 0.6))
        streaks = streaks / streaks.amax().clamp_min(1e-6)
        alpha = _draw(self.intensity, generator)
        return (1 - (1 - image) * (1 - alpha * streaks[0])).clamp(0, 1)

    def __repr__(self) -> str:
        return _describe(self, density=self.density, length=self.length, slant=self.slant,
                         intensity=self.intensity, task=self.task)


class Haze:
    """Haze by the atmospheric scattering model I = J·t + A·(1 − t), t = exp(−β·d) (Koschmieder;
    RESIDE's synthesis, Li et al. 2019), with a smooth random depth map d.

    kornia has no haze model; this is written here. d is low-resolution uniform noise upsampled
    bicubically (a smooth scene-depth stand-in, normalised to [0, 1]) plus a vertical ramp (far at
    the top, as in most outdoor photos).

    Args:
        beta: scattering coefficient β, fixed or a [low, high] range (larger = denser haze).
        airlight: atmospheric light A (gray), fixed or a [low, high] range.
        smoothness: grid cells of the depth noise per image side (fewer = smoother).
        task: task name of the samples.
    """

    def __init__(
        self,
        beta: float | Sequence[float] = (0.6, 1.8),
        airlight: float | Sequence[float] = (0.7, 1.0),
        smoothness: int = 4,
        task: str = "dehaze",
    ) -> None:
        self.beta = _range(beta, "beta")
        self.airlight = _range(airlight, "airlight")
        self.smoothness = smoothness
        self.task = task

    def transmission(self, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """A random smooth transmission map t ∈ (0, 1], shape (1, height, width)."""
        coarse = torch.rand(1, 1, self.smoothness, self.smoothness, generator=generator)
        depth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
        ramp = torch.linspace(1.0, 0.0, height).view(1, height, 1)
        mix = _draw((0.3, 0.7), generator)
        depth = mix * depth + (1 - mix) * ramp
        depth = (depth - depth.amin()) / (depth.amax() - depth.amin()).clamp_min(1e-6)
        return torch.exp(-_draw(self.beta, generator) * depth)

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        t = self.transmission(*image.shape[-2:], generator).to(image.dtype)
        airlight = _draw(self.airlight, generator)
        return (image * t + airlight * (1 - t)).clamp(0, 1)

    def __repr__(self) -> str:
        return _describe(self, beta=self.beta, airlight=self.airlight, smoothness=self.smoothness, task=self.task)


class LowLight:
    """Low-light synthesis: darkening I_low = g·I^γ (``kornia.enhance.adjust_gamma``), then sensor
    noise, Poisson-like shot noise of variance k·I_low plus Gaussian read noise (written here:
    kornia has no heteroscedastic noise model), as in Lv et al., IJCV 2021 / LLNet.

    Args:
        gamma: γ ≥ 1, fixed or a [low, high] range.
        gain: brightness gain g, fixed or a [low, high] range.
        shot_noise: shot-noise factor k, fixed or a [low, high] range.
        read_noise: read-noise σ on the 0–1 scale, fixed or a [low, high] range.
        task: task name of the samples.
    """

    def __init__(
        self,
        gamma: float | Sequence[float] = (1.5, 3.0),
        gain: float | Sequence[float] = (0.2, 0.6),
        shot_noise: float | Sequence[float] = (0.0, 0.01),
        read_noise: float | Sequence[float] = (0.0, 0.02),
        task: str = "lowlight",
    ) -> None:
        self.gamma = _range(gamma, "gamma")
        self.gain = _range(gain, "gain")
        self.shot_noise = _range(shot_noise, "shot_noise")
        self.read_noise = _range(read_noise, "read_noise")
        self.task = task

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        dark = adjust_gamma(image.clamp(0, 1), _draw(self.gamma, generator), _draw(self.gain, generator))
        variance = _draw(self.shot_noise, generator) * dark + _draw(self.read_noise, generator) ** 2
        noise = torch.randn(image.shape, generator=generator, dtype=image.dtype) * variance.sqrt()
        return (dark + noise).clamp(0, 1)

    def __repr__(self) -> str:
        return _describe(self, gamma=self.gamma, gain=self.gain, shot_noise=self.shot_noise,
                         read_noise=self.read_noise, task=self.task)


def apply_degradations(
    image: torch.Tensor, degradations: Sequence[Degradation], generator: torch.Generator
) -> torch.Tensor:
    """Apply each degradation in order to a (C, H, W) image."""
    for degrade in degradations:
        image = degrade(image, generator)
    return image


def task_name_of(degradations: Sequence[Degradation]) -> str:
    """Task name of a list of degradations: their distinct task names joined by ``+``
    (``[MotionBlur(), AddGaussianNoise()]`` → ``"deblur+denoise"``)."""
    names = list(dict.fromkeys(getattr(d, "task", type(d).__name__) for d in degradations))
    return "+".join(names) if names else "identity"
