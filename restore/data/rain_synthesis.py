"""Rain streaks as Rain100L / Rain100H were made: motion-blurred noise layers, screen-blended.

Yang et al., "Deep Joint Rain Detection and Removal from a Single Image" (JORDER), CVPR 2017, built Rain100L
(one type of streaks) and Rain100H (streaks in several directions and sizes, heavy) with the Photoshop rain
recipe their paper and later derain papers cite (photoshopessentials.com, "Photoshop Rain Effect"): on a black
layer, add monochrome noise; soften it (Gaussian blur); raise its levels so only sparse bright specks remain;
motion-blur the layer along the rain direction; set it to *Screen* over the photo at some opacity. JORDER's
model is O = B + Σ_t S_t (one streak layer S_t per direction): several layers for heavy rain.

:class:`LayeredRainStreaks` renders that recipe on tensors, one layer at a time (per layer l):

    seeds_l   = levels(U(0, 1)): a fraction ``density`` of pixels keeps a brightness in (0, 1], the rest 0
    drops_l   = seeds_l ⊛ Gaussian(σ = width) / g_σ(0)                (kornia ``gaussian_blur2d``; drop width)
    S_l       = min(1, drops_l ⊛ line(length, angle_l) · length)      (kornia ``get_motion_kernel2d``: a streak
                                                                        of its drop's brightness, not 1/length)
    O         = 1 − (1 − B) · Π_l (1 − α_l S_l)                       (Screen at opacity α_l, layer after layer)

One dominant direction per image (drawn once, ``angle`` degrees from vertical); each layer deviates from it by
at most ``angle_jitter`` degrees, as the streaks of one storm fall nearly parallel. ``preset="light"`` (one
layer, thin, sparse: Rain100L's kind) and ``preset="heavy"`` (3–5 layers, longer, wider, brighter: Rain100H's)
give the recipe's two settings; any argument overrides its preset value. The values are the recipe's ranges
(opacities, 1–2 px drops, streaks tens of pixels long on ~480×320 images), not fitted to the test sets.

Batched: :meth:`LayeredRainStreaks.sample` draws one image's parameters (layer count, directions, densities,
lengths, widths, opacities, padded to the most layers) and :meth:`LayeredRainStreaks.apply` renders a batch of
images with theirs, each image's noise layers drawn from its own generator after its parameters; ``__call__`` is
``apply`` on a batch of one — the protocol of the toolkit's batched on-device degradations.

kornia supplies the Gaussian and line kernels and the convolutions; the layer stack and the screen blend are
written here (kornia's ``RandomRain`` draws single-width gray segments and has neither). The older, simpler
streaks (:class:`restore.data.RainStreaks`, kornia's drops softened and screen-blended) stay available.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from kornia.filters import fft_conv, gaussian_blur2d, get_gaussian_kernel2d, get_motion_kernel2d

from restore.data.degradations import _describe, _draw, _range

__all__ = ["LayeredRainStreaks", "RAIN_PRESETS", "streak_layers", "screen_blend"]

Params = dict[str, torch.Tensor]

#: the recipe's two settings (Rain100L: light, Rain100H: heavy); ranges are drawn per image (per layer for the
#: per-layer values). density: fraction of seed pixels; length: streak length in px; width: drop σ in px;
#: angle: dominant direction, degrees from vertical; angle_jitter: per-layer deviation from it; opacity: α.
RAIN_PRESETS: dict[str, dict] = {
    "light": {"layers": (1, 1), "density": (0.002, 0.006), "length": (10, 40), "width": (0.3, 0.6),
              "angle": (-30.0, 30.0), "angle_jitter": 0.0, "brightness": (0.0, 1.0), "opacity": (0.6, 0.9)},
    "heavy": {"layers": (3, 5), "density": (0.001, 0.003), "length": (20, 60), "width": (0.4, 0.9),
              "angle": (-30.0, 30.0), "angle_jitter": 8.0, "brightness": (0.0, 1.0), "opacity": (0.5, 0.9)},
}


def screen_blend(base: torch.Tensor, layer: torch.Tensor, opacity: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Photoshop's *Screen* at an opacity: 1 − (1 − base)(1 − opacity·layer); never darker than ``base``.

    Computed as base + opacity·layer·(1 − base), the same value, so a zero layer returns ``base`` bit for bit and
    rounding never darkens a pixel.

    Args:
        base: (…, C, H, W) in [0, 1].
        layer: broadcastable to ``base`` (a gray (…, 1, H, W) streak layer), in [0, 1].
        opacity: α ∈ [0, 1].
    """
    return base + opacity * layer * (1 - base)


def streak_layers(uniform: torch.Tensor, density: Sequence[float] | torch.Tensor, length: Sequence[int] | torch.Tensor,
                  drop_width: Sequence[float] | torch.Tensor, angle: Sequence[float] | torch.Tensor,
                  brightness: tuple[float, float]) -> torch.Tensor:
    """Streak layers S_l ∈ [0, 1]: sparse seeds → drops → motion-blurred streaks, on ``uniform``'s device.

    Args:
        uniform: (L, 1, H, W) U(0, 1) noise, one field per layer (the noise layer of the recipe).
        density: (L,) fraction of pixels that seed a drop.
        length: (L,) streak length in pixels (rounded up to an odd kernel side ≥ 3).
        drop_width: (L,) σ (px) of the Gaussian that gives a drop its width.
        angle: (L,) streak direction in degrees from vertical (positive: the top leans right).
        brightness: (low, high) range of the drops' brightness.

    Returns:
        (L, 1, H, W) layers in [0, 1].
    """
    count, device = uniform.shape[0], uniform.device
    density, length, drop_width, angle = ([float(v) for v in torch.as_tensor(values).tolist()]
                                          for values in (density, length, drop_width, angle))
    # levels: only the top `density` of the noise survives, rescaled to a brightness in `brightness`
    d = torch.tensor(density, dtype=uniform.dtype, device=device).view(count, 1, 1, 1)
    seeds = torch.where(uniform > 1 - d, brightness[0] + (brightness[1] - brightness[0]) * (uniform - (1 - d)) / d,
                        0.0)
    sigmas = [max(s, 0.05) for s in drop_width]
    side = 2 * int(3 * max(sigmas) + 0.5) + 1
    sigma = torch.tensor([[s, s] for s in sigmas], device=device)
    # divided by the Gaussian's 1-D centre tap (its 2-D kernel's central row sum): once drawn into a streak, the
    # drop's profile across the streak peaks at the seed's brightness, whatever its width
    centre = get_gaussian_kernel2d((side, side), sigma)[:, side // 2, :].sum(-1).view(count, 1, 1, 1)
    drops = gaussian_blur2d(seeds, (side, side), sigma, border_type="constant") / centre
    sides = [max(3, int(v) | 1) for v in length]
    big = max(sides)
    kernels = torch.zeros(count, big, big)
    for i, (k, a) in enumerate(zip(sides, angle)):
        # kornia's angle is anticlockwise from the +x axis; streaks are measured from vertical, leaning right.
        # × k: a streak carries its drop's brightness along its length (Photoshop's levels after the blur)
        line = get_motion_kernel2d(k, torch.tensor([90.0 - a]), torch.zeros(1), mode="bilinear")[0] * k
        pad = (big - k) // 2
        kernels[i, pad:pad + k, pad:pad + k] = line
    # FFT convolution: its cost does not grow with the 10–60 px kernels (filter2d's does, ~10× slower here)
    return fft_conv(drops, kernels.to(device=device, dtype=uniform.dtype), border_type="constant").clamp(0, 1)


class LayeredRainStreaks:
    """Rain100L / Rain100H-style rain (module docstring): layers of motion-blurred noise, screen-blended.

    Args:
        preset: ``"light"`` (Rain100L-like) or ``"heavy"`` (Rain100H-like): the defaults of every other argument.
        layers: number of streak layers, fixed or an integer [low, high] range.
        density: fraction of seed pixels per layer, fixed or a [low, high] range.
        length: streak length in pixels, fixed or a [low, high] range (per layer).
        width: drop width σ in pixels, fixed or a [low, high] range (per layer).
        angle: dominant direction in degrees from vertical, fixed or a [low, high] range (per image).
        angle_jitter: each layer's deviation from the dominant direction, at most this many degrees.
        brightness: [low, high] brightness of the drops.
        opacity: screen opacity α per layer, fixed or a [low, high] range.
        task: task name of the samples.

    Shapes: (C, H, W) in [0, 1] → (C, H, W) in [0, 1], every pixel ≥ the input's (the streaks are gray).

    Example::

        rainy = LayeredRainStreaks("heavy")(clean, torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        preset: str = "light",
        layers: int | Sequence[int] | None = None,
        density: float | Sequence[float] | None = None,
        length: float | Sequence[float] | None = None,
        width: float | Sequence[float] | None = None,
        angle: float | Sequence[float] | None = None,
        angle_jitter: float | None = None,
        brightness: Sequence[float] | None = None,
        opacity: float | Sequence[float] | None = None,
        task: str = "derain",
    ) -> None:
        if preset not in RAIN_PRESETS:
            raise ValueError(f"preset must be one of {sorted(RAIN_PRESETS)}, got {preset!r}")
        given = {"layers": layers, "density": density, "length": length, "width": width, "angle": angle,
                 "angle_jitter": angle_jitter, "brightness": brightness, "opacity": opacity}
        values = {k: RAIN_PRESETS[preset][k] if v is None else v for k, v in given.items()}
        self.preset = preset
        self.layers = tuple(int(v) for v in _range(values["layers"], "layers"))
        self.density = _range(values["density"], "density")
        self.length = _range(values["length"], "length")
        self.width = _range(values["width"], "width")
        self.angle = _range(values["angle"], "angle")
        self.angle_jitter = float(values["angle_jitter"])
        self.brightness = _range(values["brightness"], "brightness")
        self.opacity = _range(values["opacity"], "opacity")
        checks = {"layers": self.layers[0] >= 1, "density": 0 < self.density[0] and self.density[1] <= 1,
                  "length": self.length[0] >= 1, "width": self.width[0] >= 0, "angle_jitter": self.angle_jitter >= 0,
                  "brightness": 0 <= self.brightness[0] and self.brightness[1] <= 1,
                  "opacity": 0 <= self.opacity[0] and self.opacity[1] <= 1}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            shown = ", ".join(f"{n}={values[n]}" for n in bad)
            raise ValueError(f"LayeredRainStreaks: {shown} "
                             "out of range (layers ≥ 1, density in (0, 1], length ≥ 1, width ≥ 0, angle_jitter ≥ 0, "
                             "brightness and opacity in [0, 1])")
        self.task = task

    def sample(self, generator: torch.Generator, image_hw: tuple[int, int]) -> Params:
        """Every random choice of one image but the noise layers: ``count`` (layers), and per layer (padded to the
        most layers) ``angle``, ``density``, ``length``, ``width``, ``opacity``; float64, as drawn."""
        low, high = self.layers
        count = low if low == high else int(torch.randint(low, high + 1, (), generator=generator))
        dominant = _draw(self.angle, generator)
        jitter = self.angle_jitter * (2 * torch.rand(count, generator=generator) - 1)
        draws = [[_draw(bounds, generator) for _ in range(count)]
                 for bounds in (self.density, self.length, self.width, self.opacity)]
        density, length, drop_width, opacity = draws

        def padded(values: Sequence[float]) -> torch.Tensor:
            out = torch.zeros(high, dtype=torch.float64)
            out[:count] = torch.tensor(values, dtype=torch.float64)
            return out

        return {"count": torch.tensor(count), "angle": padded((dominant + jitter).tolist()),
                "density": padded(density), "length": padded([round(v) for v in length]),
                "width": padded(drop_width), "opacity": padded(opacity)}

    def rain_layers(self, params: Params, generators: Sequence[torch.Generator], height: int,
                    width: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The combined streak layers 1 − Π_l (1 − α_l S_l) of a batch's ``params``, (B, 1, height, width) in [0, 1].

        Each image's noise layers are drawn from its own generator (on ``device``), after its parameters.
        """
        counts = [int(c) for c in params["count"].tolist()]
        if len(generators) != len(counts):
            raise ValueError(f"one generator per image is needed: {len(generators)} for {len(counts)} images")
        uniform = torch.cat([torch.rand(c, 1, height, width, generator=g, device=device)
                             for c, g in zip(counts, generators)])
        valid = torch.arange(params["angle"].shape[1])[None] < torch.tensor(counts)[:, None]
        per_layer = {key: params[key][valid] for key in ("density", "length", "width", "angle", "opacity")}
        layers = streak_layers(uniform, per_layer["density"], per_layer["length"], per_layer["width"],
                               per_layer["angle"], self.brightness)
        alpha = per_layer["opacity"].to(device=device, dtype=layers.dtype).view(-1, 1, 1, 1)
        transmitted = [part.prod(0) for part in (1 - alpha * layers).split(counts)]
        return 1 - torch.stack(transmitted)

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator]
              ) -> torch.Tensor:
        """(B, C, H, W) clean images, the collated :meth:`sample` params and one generator per image → rainy images."""
        rain = self.rain_layers(params, generators, *images.shape[-2:], device=images.device).to(images.dtype)
        return screen_blend(images.clamp(0, 1), rain).clamp(0, 1)

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(C, H, W) → (C, H, W): :meth:`apply` on a batch of one."""
        if image.dim() != 3:
            raise ValueError(f"LayeredRainStreaks takes a (C, H, W) image, got shape {tuple(image.shape)}")
        params = {k: v[None] for k, v in self.sample(generator, tuple(image.shape[-2:])).items()}
        return self.apply(image[None], params, [generator])[0]

    def __repr__(self) -> str:
        return _describe(self, preset=self.preset, layers=self.layers, density=self.density, length=self.length,
                         width=self.width, angle=self.angle, angle_jitter=self.angle_jitter,
                         brightness=self.brightness, opacity=self.opacity, task=self.task)
