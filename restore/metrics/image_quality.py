"""PSNR and SSIM under a stated evaluation protocol (torchmetrics, synced across DDP ranks).

Numbers are only comparable under the same protocol, so every reported number carries one:

* ``"rgb"`` — PromptIR / AirNet / BaryIR / MIR-L: RGB in [0, 1], clipped, no border crop, no
  8-bit rounding.
* ``"y"`` — BasicSR / NAFNet / DeepRFT: the Y channel of BT.601 YCbCr (studio swing, as MATLAB's
  ``rgb2ycbcr``), ``crop_border`` pixels removed on each side, images rounded to 8 bits first.

PSNR is the mean of per-image PSNRs (torchmetrics' default would pool the squared error of all
images, which papers do not do). SSIM is the Gaussian-window (11×11, σ = 1.5) form of Wang et al.
2004, the MATLAB-compatible one, averaged over the map without its 5-pixel border (as MATLAB,
scikit-image and BasicSR do; torchmetrics' SSIM class averages the reflect-padded border in too,
so we take its full map and crop). ``tests/metrics`` checks both against scikit-image.

LPIPS (optional, ``lpips="alex" | "vgg" | "squeeze"``, lower is better) is torchmetrics'; it is
measured on the clipped RGB images (gray repeated to 3 channels) with the border crop, whatever the
protocol, since its networks see RGB. Its backbone needs torchvision's ImageNet weights, which this
toolkit never downloads: they must already be in torch's hub cache.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchmetrics.image import LearnedPerceptualImagePatchSimilarity

__all__ = ["ImageQualityMetrics", "ProtocolPSNR", "ProtocolSSIM", "ProtocolLPIPS", "prepare_images", "rgb_to_y_bt601",
           "check_lpips_weights", "PROTOCOLS"]

PROTOCOLS = ("rgb", "y")
LPIPS_BACKBONES = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}  # LPIPS name → torchvision


def check_lpips_weights(net_type: str) -> Path:
    """Path of the ImageNet weights LPIPS' backbone loads; raises, naming it, when it is not in torch's
    hub cache (nothing is downloaded at run time)."""
    from torchvision.models import get_model_weights

    if net_type not in LPIPS_BACKBONES:
        raise ValueError(f"lpips must be one of {sorted(LPIPS_BACKBONES)} (or None), got {net_type!r}")
    url = get_model_weights(LPIPS_BACKBONES[net_type]).DEFAULT.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not path.is_file():
        raise FileNotFoundError(
            f"LPIPS ({net_type}) needs torchvision's ImageNet weights at {path}; nothing is downloaded at run "
            f"time: fetch {url} into that folder once (or set TORCH_HOME), or drop `lpips` from the metrics")
    return path


def rgb_to_y_bt601(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] → (B, 1, H, W) BT.601 luma in [16/255, 235/255].

    Hand-written because kornia's ``rgb_to_ycbcr`` is the full-range JPEG variant, which gives
    different PSNRs than the studio-swing formula BasicSR and MATLAB use.
    """
    weights = rgb.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255.0
    return (rgb * weights).sum(dim=1, keepdim=True) + 16.0 / 255.0


def prepare_images(image: torch.Tensor, protocol: str = "rgb", crop_border: int = 0,
                   quantize: bool = False) -> torch.Tensor:
    """Apply a protocol: clip, 8-bit rounding, Y channel, border crop; (B, C, H, W) → float32 (B, C', H', W')."""
    image = image.detach().float().clamp(0, 1)
    if quantize:
        image = (image * 255.0).round() / 255.0
    if protocol == "y" and image.shape[1] == 3:
        image = rgb_to_y_bt601(image)
    return _crop(image, crop_border)


def _crop(image: torch.Tensor, crop_border: int) -> torch.Tensor:
    c = crop_border
    return image[..., c:-c, c:-c] if c else image


def _check_shapes(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")


class _PerImageMean(Metric):
    """Mean over images of a per-image score under one protocol (sum and count, summed across DDP ranks)."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, protocol: str, crop_border: int, quantize: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.protocol, self.crop_border, self.quantize = protocol, crop_border, quantize
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("images", default=torch.tensor(0), dist_reduce_fx="sum")
        self.images_seen = 0  # on all ranks, as of the last compute()

    def score(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) prepared images → (B,) scores."""
        raise NotImplementedError

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        _check_shapes(pred, target)
        prepare = dict(protocol=self.protocol, crop_border=self.crop_border, quantize=self.quantize)
        # validation runs under the trainer's autocast: SSIM's Gaussian convolutions in bf16 lose its variance
        # terms to cancellation (0.48 instead of 0.85 on a blurred photograph), so measure in float32
        with torch.autocast(pred.device.type, enabled=False):
            scores = self.score(prepare_images(pred, **prepare), prepare_images(target, **prepare))
        self.total += scores.sum()
        self.images += scores.numel()

    def compute(self) -> torch.Tensor:
        self.images_seen = int(self.images)  # states are synced across ranks here
        return self.total / self.images


class ProtocolPSNR(_PerImageMean):
    """Mean of per-image PSNRs (dB), data range 1 (torchmetrics' ``PeakSignalNoiseRatio`` would pool the squared
    error of all images first, which papers do not do)."""

    higher_is_better = True

    def score(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return peak_signal_noise_ratio(pred, target, data_range=1.0, dim=(1, 2, 3), reduction="none")


class ProtocolSSIM(_PerImageMean):
    """Mean of per-image SSIMs: Gaussian window 11×11, σ = 1.5, map averaged without its 5-pixel border."""

    higher_is_better = True

    def score(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _, ssim_map = structural_similarity_index_measure(
            pred, target, data_range=1.0, sigma=1.5, kernel_size=11, reduction="none", return_full_image=True)
        border = 5  # (11 - 1) // 2: the map there depends on padding
        ssim_map = ssim_map[..., border:-border, border:-border]
        return ssim_map.reshape(ssim_map.shape[0], -1).mean(dim=1)


class ProtocolLPIPS(LearnedPerceptualImagePatchSimilarity):
    """torchmetrics' LPIPS on the clipped RGB images with the protocol's border crop (gray repeated to RGB)."""

    def __init__(self, net_type: str, crop_border: int = 0) -> None:
        check_lpips_weights(net_type)
        super().__init__(net_type=net_type, normalize=True)
        self.crop_border = crop_border
        self.images_seen = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        _check_shapes(pred, target)
        pred, target = (_crop(x.detach().float().clamp(0, 1), self.crop_border) for x in (pred, target))
        if pred.shape[1] == 1:
            pred, target = pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
        with torch.autocast(pred.device.type, enabled=False):  # float32 under the trainer's autocast too
            super().update(pred, target)

    def compute(self) -> torch.Tensor:
        self.images_seen = sum(int(s.numel()) for s in self.all_scores) if isinstance(self.all_scores, list) \
            else int(self.all_scores.numel())
        return super().compute()


class ImageQualityMetrics(MetricCollection):
    """PSNR (dB) and SSIM (and optionally LPIPS) accumulated over images under one protocol.

    A torchmetrics ``MetricCollection``: ``compute()`` returns ``{prefix + name + postfix: value}``
    for name in ``psnr``, ``ssim`` (, ``lpips``), ready for ``LightningModule.log_dict``.

    Args:
        protocol: ``"rgb"`` or ``"y"`` (see the module docstring).
        crop_border: pixels removed from each side before measuring.
        quantize: round to 8 bits before measuring; defaults to True for ``"y"``, False for ``"rgb"``.
        lpips: also measure LPIPS with this backbone (``"alex"``, ``"vgg"``, ``"squeeze"``); see the
            module docstring for the weights it needs.
        prefix: put before the metric names (e.g. ``"val/"``).
        postfix: put after them (e.g. ``"_input_y4"``).

    PSNR and SSIM are higher-is-better, LPIPS lower-is-better (``higher_is_better``). Gray inputs
    (C = 1) are measured as they are under either protocol.

    Example:
        >>> m = ImageQualityMetrics("y", crop_border=4)
        >>> m.update(pred, target)  # (B, C, H, W) in [0, 1]
        >>> m.compute()  # {"psnr": tensor(..), "ssim": tensor(..)}
    """

    def __init__(self, protocol: str = "rgb", crop_border: int = 0, quantize: bool | None = None,
                 lpips: str | None = None, prefix: str | None = None, postfix: str | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        crop_border = int(crop_border)
        quantize = (protocol == "y") if quantize is None else bool(quantize)
        metrics = {"psnr": ProtocolPSNR(protocol, crop_border, quantize),
                   "ssim": ProtocolSSIM(protocol, crop_border, quantize)}
        if lpips:
            if lpips not in LPIPS_BACKBONES:
                raise ValueError(f"lpips must be one of {sorted(LPIPS_BACKBONES)} (or None), got {lpips!r}")
            metrics["lpips"] = ProtocolLPIPS(lpips, crop_border)
        super().__init__(metrics, prefix=prefix, postfix=postfix, compute_groups=False)
        self.protocol, self.crop_border, self.quantize, self.lpips_net = protocol, crop_border, quantize, lpips
        self.higher_is_better = {"psnr": True, "ssim": True, "lpips": False}

    @property
    def names(self) -> list[str]:
        """The metrics measured, in reporting order (``psnr``, ``ssim``, then ``lpips`` when enabled)."""
        return [n for n in ("psnr", "ssim", "lpips") if n in self.keys(keep_base=True)]

    def tag(self, name: str) -> str:
        """The key ``compute()`` gives metric ``name``: prefix + name + postfix."""
        return f"{self.prefix or ''}{name}{self.postfix or ''}"

    @staticmethod
    def describe(protocol: str = "rgb", crop_border: int = 0, quantize: bool | None = None,
                 lpips: str | None = None) -> str:
        """The protocol in words, to print beside every number (without building any metric)."""
        space = "RGB [0,1]" if protocol == "rgb" else "Y (BT.601)"
        crop = f"crop {crop_border}" if crop_border else "no crop"
        quantize = (protocol == "y") if quantize is None else quantize
        return f"{space}, {crop}{', 8-bit' if quantize else ''}{f', LPIPS-{lpips} on RGB' if lpips else ''}"

    @property
    def description(self) -> str:
        return self.describe(self.protocol, self.crop_border, self.quantize, self.lpips_net)

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """Apply the protocol: clip, 8-bit rounding, Y channel, border crop; float32 (B, C', H', W')."""
        return prepare_images(image, self.protocol, self.crop_border, self.quantize)

    @property
    def count(self) -> int:
        """Images seen since the last reset (on this rank)."""
        return int(self["psnr"].images.item())

    @property
    def images_seen(self) -> int:
        """Images measured on all ranks together, as of the last ``compute()``."""
        return self["psnr"].images_seen
