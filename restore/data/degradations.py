"""On-the-fly degradations: clean image(s) in [0, 1] → degraded image(s), per sample or batched on the device.

Each degradation draws all of its randomness from the ``torch.Generator`` it is given, so a dataset
controls reproducibility: validation/test samples get a generator seeded from (seed, index) and are
identical on every pass; training samples get a freshly seeded one per sample in each worker. A list of
them is applied in order (e.g. motion blur, then noise); Hydra builds the list from ``_target_``
entries. Each has a ``task`` name (``"denoise"``, ``"deblur"``, …) that names the task of its samples.

Two ways to run one (the :class:`BatchedDegradation` protocol, Real-ESRGAN's pattern of degrading
whole batches on the GPU):

- per sample: ``degradation(image, generator)`` on a (C, H, W) image (validation/test, and anything
  that cannot batch), via :func:`apply_degradations`;
- batched: ``params = degradation.sample(generator, (H, W))`` in the loader (small tensors, one dict
  per sample, collated into (B, …)), then ``degradation.apply(images, params, generators)`` on a
  (B, C, H, W) batch on the training device, each sample with its own parameters.
  ``__call__`` is ``apply(sample(...))`` on a batch of one, so the two paths are one code.

``sample`` draws exactly what the per-sample call draws, in the same order, except the *noise fields*
(AWGN, sensor noise: one value per pixel), which ``apply`` draws from ``generators`` (one per sample,
on the images' device): the sample's own generator on the per-sample path, a device generator seeded
from the sample on the batched path (:mod:`restore.data.deferred`).

kornia supplies the operations it has (``filter2d``, ``get_gaussian_kernel2d``,
``gaussian_blur2d``, ``adjust_gamma``, ``RandomRain`` for streak placement); what it lacks is
written here and marked so in each docstring. Outputs are clipped to [0, 1], except AWGN which by
default is not (DnCNN-style benchmarks feed the unclipped noisy image).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from kornia.augmentation import RandomRain
from kornia.augmentation.random_generator import RainGenerator
from kornia.enhance import adjust_gamma, jpeg_codec_differentiable
from kornia.filters import filter2d, gaussian_blur2d
from torchvision.io import decode_jpeg, encode_jpeg

from restore.data.kernels import center_kernel, gaussian_kernel, load_kernel, random_motion_kernel

__all__ = [
    "Degradation",
    "BatchedDegradation",
    "AddGaussianNoise",
    "MotionBlur",
    "GaussianBlur",
    "KernelBlur",
    "JPEGCompression",
    "RainStreaks",
    "Haze",
    "LowLight",
    "apply_degradations",
    "is_batched",
    "task_name_of",
]

Params = dict[str, torch.Tensor]


class Degradation(Protocol):
    """What a dataset needs from a degradation on the per-sample path."""

    task: str

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(C, H, W) clean image in [0, 1] → (C, H, W) degraded image."""
        ...


class BatchedDegradation:
    """Base of the degradations that also run batched on the training device.

    A subclass implements two methods; ``__call__`` (the per-sample path) is built from them:

    - ``sample(generator, image_hw) -> params``: every random choice of one sample (σ, kernel, quality,
      streak positions …) drawn from that sample's generator, in the order the per-sample path draws
      them, except noise fields. ``params`` is a dict of CPU tensors whose shapes depend only on the
      degradation's settings and ``image_hw`` (so samples collate into (B, …)); scalars are 0-d float64
      (a Python float, exactly), so arithmetic on them rounds as the per-sample code always has.
    - ``apply(images, params, generators) -> images``: (B, C, H, W) → (B, C, H, W) on ``images.device``
      with the collated (B, …) ``params`` (still on the CPU: apply moves what it uses) and one
      ``torch.Generator`` per sample on ``images.device`` for noise fields; sample i's output depends
      only on (image i, params i, generator i), whatever else is in the batch.

    Degradations that cannot batch (a CPU-only codec, a user's plain callable) simply do not subclass
    this: the deferred loader path runs them per sample in the loader, before the batched tail.
    """

    task: str

    def sample(self, generator: torch.Generator, image_hw: tuple[int, int]) -> Params:
        raise NotImplementedError

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator]) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(C, H, W) clean image in [0, 1] → (C, H, W) degraded image (a batch of one)."""
        params = {k: v[None] for k, v in self.sample(generator, tuple(image.shape[-2:])).items()}
        return self.apply(image[None], params, [generator])[0]


def is_batched(degradation: object) -> bool:
    """Whether ``degradation`` runs batched on the device (:class:`BatchedDegradation` and says so)."""
    return isinstance(degradation, BatchedDegradation) and getattr(degradation, "batched", True)


def _scalar(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) per-sample values → (B, 1, 1, 1) in ``like``'s dtype and device, for broadcasting over images."""
    return values.to(dtype=like.dtype).to(like.device, non_blocking=True).view(-1, *([1] * (like.dim() - 1)))


def _noise(images: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Standard normal noise shaped like ``images``, sample i's drawn from ``generators[i]`` (as the per-sample
    code drew it from the sample's generator)."""
    if len(generators) != images.shape[0]:
        raise ValueError(f"one generator per sample is needed: {len(generators)} for a batch of {images.shape[0]}")
    return torch.stack([torch.randn(images.shape[1:], generator=g, dtype=images.dtype, device=images.device)
                        for g in generators])


def _f64(value: float) -> torch.Tensor:
    """A Python float as a 0-d float64 tensor: exactly the same number."""
    return torch.tensor(value, dtype=torch.float64)


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


def _describe(obj: object, **fields: object) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return f"{type(obj).__name__}({args})"


class AddGaussianNoise(BatchedDegradation):
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

    def sample(self, generator: torch.Generator, image_hw: tuple[int, int]) -> Params:
        """``sigma``: σ / 255 (the noise itself is drawn in :meth:`apply`)."""
        if self.sigma_choices is not None:
            sigma = self.sigma_choices[int(torch.randint(len(self.sigma_choices), (), generator=generator))] / 255.0
        else:
            sigma = _draw(self.sigma, generator) / 255.0
        return {"sigma": _f64(sigma)}

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator]) -> torch.Tensor:
        noisy = images + _scalar(params["sigma"], images) * _noise(images, generators)
        return noisy.clamp(0, 1) if self.clip else noisy

    def __repr__(self) -> str:
        if self.sigma_choices is not None:
            return _describe(self, sigma_choices=self.sigma_choices, clip=self.clip, task=self.task)
        return _describe(self, sigma=self.sigma, clip=self.clip, task=self.task)


class MotionBlur(BatchedDegradation):
    """Camera-shake motion blur: a random trajectory kernel (:func:`restore.data.kernels.random_motion_kernel`,
    KAIR/DeblurGAN-style) applied with ``kornia.filters.filter2d`` (reflect border). The kernel is drawn in
    :meth:`sample` (on the CPU, in the loader: the trajectory is a sequential recurrence); the convolution runs
    batched, one kernel per sample (a grouped convolution).

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

    def sample(self, generator: torch.Generator, image_hw: tuple[int, int]) -> Params:
        """``kernel``: the (kernel_size, kernel_size) blur kernel."""
        return {"kernel": random_motion_kernel(self.kernel_size, generator, extent=_draw(self.extent, generator))}

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator]) -> torch.Tensor:
        return _convolve(images, params["kernel"])

    def __repr__(self) -> str:
        return _describe(self, kernel_size=self.kernel_size, extent=self.extent, task=self.task)


class GaussianBlur(BatchedDegradation):
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

    def sample(self, generator: torch.Generator, image_hw: tuple[int, int]) -> Params:
        """``kernel``: the (kernel_size, kernel_size) blur kernel."""
        sigma = _draw(self.sigma, generator)
        if self.anisotropic:
            kernel = gaussian_kernel(self.kernel_size, sigma, _draw(self.sigma, generator),
                                     angle=_draw((0.0, math.pi), generator))
        else:
            kernel = gaussian_kernel(self.kernel_size, sigma)
        return {"kernel": kernel}

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator]) -> torch.Tensor:
        return _convolve(images, params["kernel"])

    def __repr__(self) -> str:
        return _describe(self, sigma=self.sigma, kernel_size=self.kernel_size, anisotropic=self.anisotropic,
                         task=self.task)


class KernelBlur(BatchedDegradation):
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

    def sample(self, generator: torch.Generator | None, image_hw: tuple[int, int]) -> Params:
        return {}  # nothing random: the kernel is the same for every sample

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator]) -> torch.Tensor:
        return _convolve(images, self.kernel[None])

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return super().__call__(image, generator)

    def __repr__(self) -> str:
        return _describe(self, kernel=self.source, center=self.center, task=self.task)


def _convolve(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) ⊛ (B, k, k) (one kernel per sample, or (1, k, k) for all) with reflect borders, clipped to
    [0, 1]; reflect needs the pad smaller than the image. ``kornia.filters.filter2d`` runs one grouped conv."""
    pad = kernels.shape[-1] // 2
    border = "reflect" if min(images.shape[-2:]) > pad else "replicate"
    kernels = kernels.to(images.device, non_blocking=True).to(images.dtype)
    return filter2d(images, kernels, border_type=border).clamp(0, 1)


class JPEGCompression(BatchedDegradation):
    """JPEG compression artefacts at a quality drawn per image.

    ``backend="pillow"`` (default) runs the real libjpeg codec, as the JPEG benchmarks (Classic5,
    LIVE1) were made, with 4:2:0 chroma subsampling for colour and a true single-channel JPEG for
    gray (through ``torchvision.io.encode_jpeg``/``decode_jpeg``, which give Pillow's bytes exactly and
    skip its image objects). libjpeg is a CPU codec, one image at a time: this backend is not batched on the
    device (``batched = False``); the deferred loader path keeps it in the loader.
    ``backend="kornia"`` uses ``kornia.enhance.jpeg_codec_differentiable``, a differentiable
    approximation of the codec (polynomial rounding, RGB only) that runs batched on the device with a
    quality per sample. Measured against libjpeg on 128² crops of the embedded photographs
    (benchmarks/throughput.py --only jpeg): 41–45 dB from libjpeg's output at q 10–50, and its artefacts
    are weaker (0.6–0.8 dB higher PSNR to the clean image than libjpeg's at the same quality), so it is not
    the default: a network trained on it meets stronger artefacts in the JPEG benchmarks.

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

    @property
    def batched(self) -> bool:
        return self.backend == "kornia"

    def sample(self, generator: torch.Generator, image_hw: tuple[int, int]) -> Params:
        """``quality``: the JPEG quality (float64; libjpeg gets it rounded to an integer)."""
        return {"quality": _f64(_draw(self.quality, generator))}

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator]) -> torch.Tensor:
        if self.backend == "kornia":
            rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
            quality = params["quality"].to(images.dtype).to(images.device, non_blocking=True)
            out = jpeg_codec_differentiable(rgb.clamp(0, 1), quality)
            return (out.mean(1, keepdim=True) if images.shape[1] == 1 else out).clamp(0, 1)
        # libjpeg on the CPU: 8-bit samples in, 8-bit samples out
        codes = (images.detach().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8)
        decoded = torch.stack([decode_jpeg(encode_jpeg(code, quality=int(round(float(q)))))
                               for code, q in zip(codes, params["quality"])])
        return (decoded.float() / 255.0).to(images.dtype).to(images.device)

    def __repr__(self) -> str:
        return _describe(self, quality=self.quality, backend=self.backend, task=self.task)


# kornia's drop rasteriser (``apply_transform`` reads only the parameters it is given; the ranges are unused)
_RAIN_RASTERISER = RandomRain(p=1.0)


@functools.lru_cache(maxsize=1024)
def _rain_generator(number_of_drops: tuple[int, int], length: tuple[int, int], slant: tuple[int, int]) -> RainGenerator:
    """kornia's (stateless) drop sampler for these ranges, built once: building one costs more than drawing."""
    generator = RainGenerator(number_of_drops, length, slant)
    generator.make_samplers(torch.device("cpu"), torch.float32)
    return generator


def _rain_parameters(number_of_drops: tuple[int, int], length: tuple[int, int], slant: tuple[int, int],
                     shape: tuple[int, ...], seed: int) -> Params:
    """kornia ``RandomRain``'s drop parameters for ``shape``, drawn as ``RandomRain(...)(image)`` draws them (its
    ``RainGenerator`` on the global CPU RNG) under ``seed``; the caller's global RNG state is restored."""
    generator = _rain_generator(number_of_drops, length, slant)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return generator(shape, False)


class RainStreaks(BatchedDegradation):
    """Synthetic rain: bright, slanted streaks added on top of the image (Rain100-style O = B + S).

    Streak placement comes from ``kornia.augmentation.RandomRain`` (parallel line drops of one
    length and slant per image). kornia writes its drops as a fixed gray value, which would darken
    bright pixels; here its drop mask becomes a streak layer S, softened with
    ``kornia.filters.gaussian_blur2d`` and screen-blended, 1 − (1 − B)(1 − a·S), so streaks only
    brighten and the result stays in [0, 1]. Batched: :meth:`sample` draws kornia's drop parameters (its
    ``RainGenerator``, under a seed from the sample's generator, as the per-sample code always has) and
    :meth:`apply` rasterises every sample's drops at once with ``RandomRain.apply_transform``.

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

    def sample(self, generator: torch.Generator, image_hw: tuple[int, int]) -> Params:
        """``drops``, ``height``, ``width``: the drop count and the streaks' size; ``coordinates``: (N, 2) drop
        positions in [0, 1], N = the most drops this density range gives at ``image_hw`` (rows past ``drops``
        are padding); ``alpha``: the streak opacity."""
        h, w = image_hw
        drops = max(1, int(round(_draw(self.density, generator) * h * w)))
        # kornia requires drops strictly shorter/narrower than the image
        length = (min(self.length[0], h - 1), min(self.length[1], h - 1))
        slant = (max(self.slant[0], -(w - 1)), min(self.slant[1], w - 1))
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        drawn = _rain_parameters((drops, drops), length, slant, (1, 1, h, w), seed)
        coordinates = torch.zeros(max(1, int(round(self.density[1] * h * w))), 2, dtype=torch.float32)
        coordinates[:drops] = drawn["coordinates_factor"][0]
        return {"drops": drawn["number_of_drops_factor"][0], "height": drawn["drop_height_factor"][0],
                "width": drawn["drop_width_factor"][0], "coordinates": coordinates,
                "alpha": _f64(_draw(self.intensity, generator))}

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator]) -> torch.Tensor:
        b, _, h, w = images.shape
        kornia_params = {"number_of_drops_factor": params["drops"], "drop_height_factor": params["height"],
                         "drop_width_factor": params["width"],
                         "coordinates_factor": params["coordinates"].to(images.device, non_blocking=True)}
        canvas = torch.zeros(b, 1, h, w, dtype=images.dtype, device=images.device)
        mask = _RAIN_RASTERISER.apply_transform(canvas, kornia_params, flags={}) > 0
        streaks = gaussian_blur2d(mask.to(images.dtype), (3, 3), (0.6, 0.6))
        streaks = streaks / streaks.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        return (1 - (1 - images) * (1 - _scalar(params["alpha"], images) * streaks)).clamp(0, 1)

    def __repr__(self) -> str:
        return _describe(self, density=self.density, length=self.length, slant=self.slant,
                         intensity=self.intensity, task=self.task)


class Haze(BatchedDegradation):
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

    def sample(self, generator: torch.Generator, image_hw: tuple[int, int]) -> Params:
        """``coarse``: the (smoothness, smoothness) depth noise; ``mix``: its weight against the vertical ramp;
        ``beta``: the scattering coefficient; ``airlight``: A."""
        coarse = torch.rand(self.smoothness, self.smoothness, generator=generator)
        mix = _draw((0.3, 0.7), generator)
        return {"coarse": coarse, "mix": _f64(mix), "beta": _f64(_draw(self.beta, generator)),
                "airlight": _f64(_draw(self.airlight, generator))}

    def transmission(self, params: Params, height: int, width: int, device: torch.device | str = "cpu",
                     ) -> torch.Tensor:
        """The smooth transmission maps t ∈ (0, 1] of the collated ``params``, shape (B, 1, height, width)."""
        coarse = params["coarse"].to(device, non_blocking=True)[:, None]
        depth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
        ramp = torch.linspace(1.0, 0.0, height, device=device).view(1, 1, height, 1)
        depth = _scalar(params["mix"], depth) * depth + _scalar(1 - params["mix"], depth) * ramp
        low, high = depth.amin(dim=(1, 2, 3), keepdim=True), depth.amax(dim=(1, 2, 3), keepdim=True)
        depth = (depth - low) / (high - low).clamp_min(1e-6)
        return torch.exp(_scalar(-params["beta"], depth) * depth)

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator]) -> torch.Tensor:
        t = self.transmission(params, *images.shape[-2:], device=images.device).to(images.dtype)
        return (images * t + _scalar(params["airlight"], images) * (1 - t)).clamp(0, 1)

    def __repr__(self) -> str:
        return _describe(self, beta=self.beta, airlight=self.airlight, smoothness=self.smoothness, task=self.task)


class LowLight(BatchedDegradation):
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

    def sample(self, generator: torch.Generator, image_hw: tuple[int, int]) -> Params:
        """``gamma``, ``gain``, ``shot_noise``, ``read_variance`` (σ_read²); the noise is drawn in :meth:`apply`."""
        gamma, gain = _draw(self.gamma, generator), _draw(self.gain, generator)
        shot = _draw(self.shot_noise, generator)
        return {"gamma": _f64(gamma), "gain": _f64(gain), "shot_noise": _f64(shot),
                "read_variance": _f64(_draw(self.read_noise, generator) ** 2)}

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator]) -> torch.Tensor:
        if images.shape[0] == 1:  # kornia's Python-float branch, as the per-sample code has always run
            dark = adjust_gamma(images.clamp(0, 1), float(params["gamma"][0]), float(params["gain"][0]))
        else:  # its per-sample tensor branch (the same numbers but for integer γ: x³ vs pow(x, 3), 1 ulp)
            dark = adjust_gamma(images.clamp(0, 1), params["gamma"].to(images), params["gain"].to(images))
        variance = _scalar(params["shot_noise"], dark) * dark + _scalar(params["read_variance"], dark)
        return (dark + _noise(images, generators) * variance.sqrt()).clamp(0, 1)

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
