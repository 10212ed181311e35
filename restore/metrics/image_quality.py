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
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image import LearnedPerceptualImagePatchSimilarity, PeakSignalNoiseRatio

__all__ = ["ImageQualityMetrics", "rgb_to_y_bt601", "check_lpips_weights", "PROTOCOLS"]

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


def build_lpips(net_type: str) -> LearnedPerceptualImagePatchSimilarity:
    """torchmetrics' LPIPS (inputs in [0, 1]), once :func:`check_lpips_weights` passes."""
    check_lpips_weights(net_type)
    return LearnedPerceptualImagePatchSimilarity(net_type=net_type, normalize=True)


def rgb_to_y_bt601(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] → (B, 1, H, W) BT.601 luma in [16/255, 235/255].

    Hand-written because kornia's ``rgb_to_ycbcr`` is the full-range JPEG variant, which gives
    different PSNRs than the studio-swing formula BasicSR and MATLAB use.
    """
    weights = rgb.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255.0
    return (rgb * weights).sum(dim=1, keepdim=True) + 16.0 / 255.0


class ImageQualityMetrics(nn.Module):
    """PSNR (dB) and SSIM accumulated over images under one protocol.

    Args:
        protocol: ``"rgb"`` or ``"y"`` (see the module docstring).
        crop_border: pixels removed from each side before measuring.
        quantize: round to 8 bits before measuring; defaults to True for ``"y"``, False for ``"rgb"``.
        lpips: also measure LPIPS with this backbone (``"alex"``, ``"vgg"``, ``"squeeze"``); see the
            module docstring for the weights it needs.

    PSNR and SSIM are higher-is-better, LPIPS lower-is-better (``higher_is_better``). Gray inputs
    (C = 1) are measured as they are under either protocol.

    Example:
        >>> m = ImageQualityMetrics("y", crop_border=4)
        >>> m.update(pred, target)  # (B, C, H, W) in [0, 1]
        >>> m.compute()  # {"psnr": tensor(..), "ssim": tensor(..)}
    """

    higher_is_better = {"psnr": True, "ssim": True, "lpips": False}

    def __init__(self, protocol: str = "rgb", crop_border: int = 0, quantize: bool | None = None,
                 lpips: str | None = None) -> None:
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        self.crop_border = int(crop_border)
        self.quantize = (protocol == "y") if quantize is None else quantize
        self.psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3), reduction="elementwise_mean")
        self.ssim = MeanMetric()  # of per-image SSIMs
        self.lpips_net = lpips
        self.lpips = build_lpips(lpips) if lpips else None

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
        image = image.detach().float().clamp(0, 1)
        if self.quantize:
            image = (image * 255.0).round() / 255.0
        if self.protocol == "y" and image.shape[1] == 3:
            image = rgb_to_y_bt601(image)
        return self._crop(image)

    def _crop(self, image: torch.Tensor) -> torch.Tensor:
        c = self.crop_border
        return image[..., c:-c, c:-c] if c else image

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        if self.lpips is not None:
            rgb_pred, rgb_target = (self._crop(x.detach().float().clamp(0, 1)) for x in (pred, target))
            if rgb_pred.shape[1] == 1:
                rgb_pred, rgb_target = rgb_pred.expand(-1, 3, -1, -1), rgb_target.expand(-1, 3, -1, -1)
            self.lpips.update(rgb_pred, rgb_target)
        pred, target = self.prepare(pred), self.prepare(target)
        self.psnr.update(pred, target)
        _, ssim_map = structural_similarity_index_measure(
            pred, target, data_range=1.0, sigma=1.5, kernel_size=11, reduction="none", return_full_image=True)
        border = 5  # (11 - 1) // 2: the map there depends on padding
        ssim_map = ssim_map[..., border:-border, border:-border]
        self.ssim.update(ssim_map.reshape(ssim_map.shape[0], -1).mean(dim=1))

    def compute(self) -> dict[str, torch.Tensor]:
        out = {"psnr": self.psnr.compute(), "ssim": self.ssim.compute()}
        if self.lpips is not None:
            out["lpips"] = self.lpips.compute()
        return out

    def reset(self) -> None:
        self.psnr.reset()
        self.ssim.reset()
        if self.lpips is not None:
            self.lpips.reset()

    @property
    def count(self) -> int:
        """Images seen since the last reset (on this rank)."""
        return int(self.ssim.weight.item())
