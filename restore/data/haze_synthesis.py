"""Haze with spatially varying transmission from a depth proxy: the atmospheric scattering model of RESIDE / SOTS.

RESIDE (Li et al., "Benchmarking Single-Image Dehazing and Beyond", IEEE TIP 2019), whose SOTS is the dehazing
test set, makes hazy images with the atmospheric scattering model (Koschmieder; McCartney 1976)::

    I(x) = J(x) · t(x) + A · (1 − t(x)),        t(x) = exp(−β · d(x))                        (RESIDE, Eq. 1–2)

from a clean image J, a scene depth d (NYU-Depth for indoor scenes, an estimated depth for outdoor ones), a
scattering coefficient β drawn per image (indoor: β ∈ [0.6, 1.8] on depth normalised to [0, 1]) and a global
atmospheric light A drawn per image (A ∈ [0.7, 1.0], gray). No depth ships with the training images here, so
:class:`DepthHaze` uses a depth proxy, one of:

- ``"random"``: a smooth random scene — a tilted ground plane (far at the top, the tilt drawn) plus fractal
  noise (bicubically upsampled uniform noise at 2, 4 and 8 cells per side, amplitudes 1, ½, ¼);
- ``"image"``: the colour attenuation prior (Zhu, Mai & Shao, "A Fast Single Image Haze Removal Algorithm Using
  Color Attenuation Prior", IEEE TIP 2015, Eq. 9 and 12): depth grows with brightness and falls with saturation,
  d = θ₀ + θ₁·v + θ₂·s with the paper's θ = (0.121779, 0.959710, −0.780245), then the paper's local minimum
  (a 15×15 neighbourhood, Eq. 17; ``kornia.morphology.erosion``) and a guided filter by the image
  (``kornia.filters.guided_blur``, as the paper refines its map) — bright, washed-out regions (sky, distant
  walls) are far;
- ``"mixed"`` (default): a convex mix of the two, the weight drawn per image.

The proxy is normalised to [0, 1] and mapped to [near, 1] (``near`` drawn per image: the nearest point need not
be haze-free), so t = exp(−β d) ∈ [e^{−β}, 1] ⊂ (0, 1]. Written here: kornia has no haze model (it supplies the
HSV conversion, the erosion, the guided filter and the bicubic upsampling). The older :class:`restore.data.Haze`
(vertical ramp + one octave of noise) stays available.

Batched: :meth:`DepthHaze.sample` draws one image's parameters (depth weight, the random depth's coarse grids, near,
β, A, tint) and :meth:`DepthHaze.apply` hazes a batch with theirs (the image-derived depth is computed on the batch);
``__call__`` is ``apply`` on a batch of one — the protocol of the toolkit's batched on-device degradations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_hsv
from kornia.filters import guided_blur
from kornia.morphology import erosion

from restore.data.degradations import _describe, _draw, _range

__all__ = ["DepthHaze", "color_attenuation_depth", "random_depth", "random_depth_maps", "random_depth_parameters",
           "scatter"]

#: Zhu et al. 2015's learned linear model of depth in brightness v and saturation s (Eq. 9's θ₀, θ₁, θ₂)
CAP_THETA = (0.121779, 0.959710, -0.780245)
DEPTH_PROXIES = ("random", "image", "mixed")


Params = dict[str, torch.Tensor]
#: the random depth's fractal noise: (cells per side, amplitude) of each octave
OCTAVES = ((2, 1.0), (4, 0.5), (8, 0.25))


def _normalise(depth: torch.Tensor) -> torch.Tensor:
    """Each map of a (B, 1, H, W) batch (or one (1, H, W) map) stretched to [0, 1]."""
    dims = tuple(range(1, depth.dim())) if depth.dim() == 4 else tuple(range(depth.dim()))
    low, high = depth.amin(dim=dims, keepdim=True), depth.amax(dim=dims, keepdim=True)
    return (depth - low) / (high - low).clamp_min(1e-6)


def random_depth_parameters(generator: torch.Generator, tilt: float = 30.0) -> Params:
    """The random choices of one :func:`random_depth` map: the plane's ``angle`` (radians, the far side at the top
    rotated by up to ±``tilt`` degrees), each octave's coarse noise ``octave<cells>`` and the noise's weight ``mix``."""
    angle = torch.deg2rad(tilt * (2 * torch.rand((), generator=generator) - 1))
    params = {"angle": angle.double()}
    for cells, _ in OCTAVES:
        params[f"octave{cells}"] = torch.rand(cells + 1, cells + 1, generator=generator)
    params["mix"] = torch.tensor(0.3 + 0.4 * float(torch.rand((), generator=generator)), dtype=torch.float64)
    return params


def random_depth_maps(params: Params, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Smooth random depth maps in [0, 1] from collated :func:`random_depth_parameters`, (B, 1, height, width):
    a tilted ground plane plus fractal noise (bicubically upsampled uniform noise), each normalised."""
    angle = params["angle"].to(device=device, dtype=torch.float32).view(-1, 1, 1, 1)
    ys = torch.linspace(1.0, 0.0, height, device=device).view(1, 1, height, 1)  # top far
    xs = torch.linspace(-0.5, 0.5, width, device=device).view(1, 1, 1, width)
    plane = _normalise(ys * torch.cos(angle) + xs * torch.sin(angle))
    noise = 0
    for cells, amplitude in OCTAVES:
        coarse = params[f"octave{cells}"].to(device)[:, None]
        noise = noise + amplitude * F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    mix = params["mix"].to(device=device, dtype=torch.float32).view(-1, 1, 1, 1)
    return _normalise(mix * _normalise(noise) + (1 - mix) * plane)


def random_depth(height: int, width: int, generator: torch.Generator, tilt: float = 30.0) -> torch.Tensor:
    """One smooth random depth map in [0, 1], shape (1, height, width): tilted ground plane + fractal noise.

    Args:
        height, width: map size.
        generator: source of randomness.
        tilt: the plane's far side is the top, rotated by up to ±``tilt`` degrees.
    """
    params = {k: v[None] for k, v in random_depth_parameters(generator, tilt).items()}
    return random_depth_maps(params, height, width)[0]


def color_attenuation_depth(image: torch.Tensor, window: int = 15, guided_radius: int = 7,
                            eps: float = 1e-3) -> torch.Tensor:
    """Depth from the colour attenuation prior (Zhu et al. 2015), normalised to [0, 1] per image.

    Args:
        image: (C, H, W) or a batch (B, C, H, W), in [0, 1], RGB or gray (gray: saturation 0).
        window: side of the local-minimum neighbourhood (the paper's 15×15; clipped to the image).
        guided_radius: radius of the guided filter that refines the map (guide: the image's brightness).
        eps: the guided filter's regulariser.

    Returns:
        (1, H, W) for one image, (B, 1, H, W) for a batch.
    """
    if image.dim() not in (3, 4) or image.shape[-3] not in (1, 3):
        raise ValueError(f"color_attenuation_depth takes a (1 or 3, H, W) image or a batch of them, got shape "
                         f"{tuple(image.shape)}")
    batch = image.clamp(0, 1) if image.dim() == 4 else image.clamp(0, 1)[None]
    if batch.shape[1] == 3:
        hsv = rgb_to_hsv(batch)
        saturation, value = hsv[:, 1:2], hsv[:, 2:3]
    else:
        saturation, value = torch.zeros_like(batch), batch
    theta0, theta1, theta2 = CAP_THETA
    depth = theta0 + theta1 * value + theta2 * saturation
    side = max(1, min(window, *batch.shape[-2:]))
    depth = erosion(depth, torch.ones(side, side, dtype=batch.dtype, device=batch.device))
    size = 2 * min(guided_radius, (min(batch.shape[-2:]) - 1) // 2) + 1
    depth = _normalise(guided_blur(value, depth, size, eps) if size > 1 else depth)
    return depth if image.dim() == 4 else depth[0]


def scatter(image: torch.Tensor, transmission: torch.Tensor, airlight: float | torch.Tensor) -> torch.Tensor:
    """The atmospheric scattering model I = J·t + A·(1 − t) (RESIDE Eq. 1).

    Args:
        image: clean J, (C, H, W) or (B, C, H, W), in [0, 1].
        transmission: t, (1, H, W) or (B, 1, H, W), in (0, 1].
        airlight: A, a scalar, (C, 1, 1) or (B, C, 1, 1).
    """
    return image * transmission + airlight * (1 - transmission)


class DepthHaze:
    """Haze by the scattering model with a depth proxy (module docstring), as SOTS / RESIDE were made.

    Args:
        beta: scattering coefficient β per image, fixed or a [low, high] range (RESIDE indoor: [0.6, 1.8]).
        airlight: atmospheric light A per image, fixed or a [low, high] range (RESIDE: [0.7, 1.0]).
        airlight_tint: each channel's A deviates from the gray A by up to this much (0: gray, as RESIDE).
        depth: ``"random"``, ``"image"`` (colour attenuation prior) or ``"mixed"``.
        near: the nearest point's depth after normalisation, fixed or a [low, high] range.
        task: task name of the samples.

    Shapes: (C, H, W) in [0, 1] → (C, H, W) in [0, 1]; :meth:`apply` takes batches.

    Example::

        hazy = DepthHaze(depth="image")(clean, torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        beta: float | Sequence[float] = (0.6, 1.8),
        airlight: float | Sequence[float] = (0.7, 1.0),
        airlight_tint: float = 0.0,
        depth: str = "mixed",
        near: float | Sequence[float] = (0.0, 0.2),
        task: str = "dehaze",
    ) -> None:
        if depth not in DEPTH_PROXIES:
            raise ValueError(f"depth must be one of {DEPTH_PROXIES}, got {depth!r}")
        self.beta = _range(beta, "beta")
        self.airlight = _range(airlight, "airlight")
        self.near = _range(near, "near")
        self.airlight_tint = float(airlight_tint)
        checks = {"beta": self.beta[0] >= 0, "airlight": 0 <= self.airlight[0] and self.airlight[1] <= 1,
                  "near": 0 <= self.near[0] and self.near[1] < 1, "airlight_tint": 0 <= self.airlight_tint <= 0.5}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"DepthHaze: {', '.join(bad)} out of range (beta ≥ 0, airlight in [0, 1], near in [0, 1), "
                             f"airlight_tint in [0, 0.5]); got beta={beta}, airlight={airlight}, near={near}, "
                             f"airlight_tint={airlight_tint}")
        self.depth = depth
        self.task = task

    def sample(self, generator: torch.Generator, image_hw: tuple[int, int]) -> Params:
        """Every random choice of one image: ``weight`` of the random depth against the image's (1 / 0 for
        ``"random"`` / ``"image"``), the random depth's parameters (drawn for ``"random"`` and ``"mixed"``, zeros
        otherwise), ``near``, ``beta``, the gray ``airlight`` and the per-channel ``tint`` (3 values; float64)."""
        params: Params = {}
        if self.depth == "mixed":
            params["weight"] = torch.tensor(float(torch.rand((), generator=generator)), dtype=torch.float64)
        else:
            params["weight"] = torch.tensor(1.0 if self.depth == "random" else 0.0, dtype=torch.float64)
        if self.depth == "image":
            params.update({"angle": torch.zeros((), dtype=torch.float64), "mix": torch.zeros((), dtype=torch.float64),
                           **{f"octave{c}": torch.zeros(c + 1, c + 1) for c, _ in OCTAVES}})
        else:
            params.update(random_depth_parameters(generator))
        for key, bounds in (("near", self.near), ("beta", self.beta), ("airlight", self.airlight)):
            params[key] = torch.tensor(_draw(bounds, generator), dtype=torch.float64)
        params["tint"] = (self.airlight_tint * (2 * torch.rand(3, generator=generator) - 1)).double()
        return params

    def depth_maps(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        """The depth proxies d ∈ [near, 1] of a batch, (B, 1, H, W)."""
        h, w = images.shape[-2:]
        if self.depth == "random":
            depth = random_depth_maps(params, h, w, images.device)
        elif self.depth == "image":
            depth = color_attenuation_depth(images)
        else:
            weight = params["weight"].to(device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)
            depth = _normalise(weight * random_depth_maps(params, h, w, images.device).to(images.dtype)
                               + (1 - weight) * color_attenuation_depth(images))
        near = params["near"].to(device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)
        return near + (1 - near) * depth.to(images.dtype)

    def transmissions(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        """t = exp(−β·d) ∈ (0, 1] of a batch, (B, 1, H, W)."""
        beta = params["beta"].to(device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)
        return torch.exp(-beta * self.depth_maps(images, params))

    def transmission(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """t ∈ (0, 1] of one (C, H, W) image, shape (1, H, W): what ``self(image, generator)`` uses."""
        params = {k: v[None] for k, v in self.sample(generator, tuple(image.shape[-2:])).items()}
        return self.transmissions(image[None].clamp(0, 1), params)[0]

    def apply(self, images: torch.Tensor, params: Params, generators: Sequence[torch.Generator] = ()) -> torch.Tensor:
        """(B, C, H, W) clean images and the collated :meth:`sample` params → hazy images (no noise fields: the
        generators are not used)."""
        images = images.clamp(0, 1)
        t = self.transmissions(images, params)
        gray = params["airlight"].to(device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)
        tint = params["tint"].to(device=images.device, dtype=images.dtype)[:, :images.shape[1], None, None]
        return scatter(images, t, (gray + tint).clamp(0, 1)).clamp(0, 1)

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(C, H, W) → (C, H, W): :meth:`apply` on a batch of one."""
        if image.dim() != 3:
            raise ValueError(f"DepthHaze takes a (C, H, W) image, got shape {tuple(image.shape)}")
        params = {k: v[None] for k, v in self.sample(generator, tuple(image.shape[-2:])).items()}
        return self.apply(image[None], params)[0]

    def __repr__(self) -> str:
        return _describe(self, beta=self.beta, airlight=self.airlight, airlight_tint=self.airlight_tint,
                         depth=self.depth, near=self.near, task=self.task)
