"""The per-sample degradation code as it was before the batched protocol (main at ac36240), frozen: the
reference that the validation/test sets must still match bit for bit, so every published number stays
comparable. Each function is the former ``__call__`` body of its class, reading the settings from an
instance of today's class (their attributes are unchanged)."""

from __future__ import annotations

import io
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from kornia.augmentation import RandomRain
from kornia.enhance import adjust_gamma, jpeg_codec_differentiable
from kornia.filters import filter2d, gaussian_blur2d
from PIL import Image

from restore.data import (
    AddGaussianNoise,
    GaussianBlur,
    Haze,
    JPEGCompression,
    KernelBlur,
    LowLight,
    MotionBlur,
    RainStreaks,
)
from restore.data.kernels import gaussian_kernel, random_motion_kernel


def _draw(bounds, generator):
    low, high = bounds
    return low if low == high else low + (high - low) * float(torch.rand((), generator=generator))


@contextmanager
def _seeded_global_rng(generator):
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def _convolve(image, kernel):
    pad = kernel.shape[-1] // 2
    border = "reflect" if min(image.shape[-2:]) > pad else "replicate"
    out = filter2d(image[None], kernel[None].to(image), border_type=border)[0]
    return out.clamp(0, 1)


def awgn(d: AddGaussianNoise, image, generator):
    if d.sigma_choices is not None:
        sigma = d.sigma_choices[int(torch.randint(len(d.sigma_choices), (), generator=generator))] / 255.0
    else:
        sigma = _draw(d.sigma, generator) / 255.0
    noisy = image + sigma * torch.randn(image.shape, generator=generator, dtype=image.dtype)
    return noisy.clamp(0, 1) if d.clip else noisy


def motion_blur(d: MotionBlur, image, generator):
    kernel = random_motion_kernel(d.kernel_size, generator, extent=_draw(d.extent, generator))
    return _convolve(image, kernel)


def gaussian_blur(d: GaussianBlur, image, generator):
    sigma = _draw(d.sigma, generator)
    if d.anisotropic:
        kernel = gaussian_kernel(d.kernel_size, sigma, _draw(d.sigma, generator),
                                 angle=_draw((0.0, 3.141592653589793), generator))
    else:
        kernel = gaussian_kernel(d.kernel_size, sigma)
    return _convolve(image, kernel)


def kernel_blur(d: KernelBlur, image, generator):
    return _convolve(image, d.kernel)


def jpeg(d: JPEGCompression, image, generator):
    quality = _draw(d.quality, generator)
    if d.backend == "kornia":
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


def rain(d: RainStreaks, image, generator):
    _, h, w = image.shape
    drops = max(1, int(round(_draw(d.density, generator) * h * w)))
    length = (min(d.length[0], h - 1), min(d.length[1], h - 1))
    slant = (max(d.slant[0], -(w - 1)), min(d.slant[1], w - 1))
    augmentation = RandomRain(number_of_drops=(drops, drops), drop_height=length, drop_width=slant, p=1.0)
    with _seeded_global_rng(generator):
        mask = augmentation(torch.zeros(1, 1, h, w, dtype=image.dtype)) > 0
    streaks = gaussian_blur2d(mask.to(image.dtype), (3, 3), (0.6, 0.6))
    streaks = streaks / streaks.amax().clamp_min(1e-6)
    alpha = _draw(d.intensity, generator)
    return (1 - (1 - image) * (1 - alpha * streaks[0])).clamp(0, 1)


def haze(d: Haze, image, generator):
    height, width = image.shape[-2:]
    coarse = torch.rand(1, 1, d.smoothness, d.smoothness, generator=generator)
    depth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    ramp = torch.linspace(1.0, 0.0, height).view(1, height, 1)
    mix = _draw((0.3, 0.7), generator)
    depth = mix * depth + (1 - mix) * ramp
    depth = (depth - depth.amin()) / (depth.amax() - depth.amin()).clamp_min(1e-6)
    t = torch.exp(-_draw(d.beta, generator) * depth).to(image.dtype)
    airlight = _draw(d.airlight, generator)
    return (image * t + airlight * (1 - t)).clamp(0, 1)


def low_light(d: LowLight, image, generator):
    dark = adjust_gamma(image.clamp(0, 1), _draw(d.gamma, generator), _draw(d.gain, generator))
    variance = _draw(d.shot_noise, generator) * dark + _draw(d.read_noise, generator) ** 2
    noise = torch.randn(image.shape, generator=generator, dtype=image.dtype) * variance.sqrt()
    return (dark + noise).clamp(0, 1)


REFERENCE = {AddGaussianNoise: awgn, MotionBlur: motion_blur, GaussianBlur: gaussian_blur, KernelBlur: kernel_blur,
             JPEGCompression: jpeg, RainStreaks: rain, Haze: haze, LowLight: low_light}


def reference_degrade(image: torch.Tensor, degradations, generator: torch.Generator) -> torch.Tensor:
    """``apply_degradations`` as it was: each degradation's former per-sample code, in order. A degradation
    added after the batched protocol (no former code, no published number made with another) is its own
    per-sample call."""
    for d in degradations:
        image = REFERENCE[type(d)](d, image, generator) if type(d) in REFERENCE else d(image, generator)
    return image


def reference_pad_to_size(image, height, width):
    """``restore.data.transforms.pad_to_size`` as it was (``F.pad``, float images)."""
    while image.shape[-2] < height or image.shape[-1] < width:
        ph = min(height - image.shape[-2], image.shape[-2] - 1) if image.shape[-2] < height else 0
        pw = min(width - image.shape[-1], image.shape[-1] - 1) if image.shape[-1] < width else 0
        if ph <= 0 and pw <= 0:
            return F.pad(image[None], (0, max(width - image.shape[-1], 0), 0, max(height - image.shape[-2], 0)),
                         mode="replicate")[0]
        image = F.pad(image[None], (0, max(pw, 0), 0, max(ph, 0)), mode="reflect")[0]
    return image


def reference_center_crop(image, size):
    image = reference_pad_to_size(image, size, size)
    h, w = image.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return image[..., top:top + size, left:left + size]
