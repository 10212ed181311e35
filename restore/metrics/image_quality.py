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
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio

__all__ = ["ImageQualityMetrics", "rgb_to_y_bt601", "PROTOCOLS"]

PROTOCOLS = ("rgb", "y")


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

    Both metrics are higher-is-better (``higher_is_better``). Gray inputs (C = 1) are measured
    as they are under either protocol.

    Example:
        >>> m = ImageQualityMetrics("y", crop_border=4)
        >>> m.update(pred, target)  # (B, C, H, W) in [0, 1]
        >>> m.compute()  # {"psnr": tensor(..), "ssim": tensor(..)}
    """

    higher_is_better = {"psnr": True, "ssim": True}

    def __init__(self, protocol: str = "rgb", crop_border: int = 0, quantize: bool | None = None) -> None:
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        self.crop_border = int(crop_border)
        self.quantize = (protocol == "y") if quantize is None else quantize
        self.psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3), reduction="elementwise_mean")
        self.ssim = MeanMetric()  # of per-image SSIMs

    @property
    def description(self) -> str:
        """The protocol in words, to print beside every number."""
        space = "RGB [0,1]" if self.protocol == "rgb" else "Y (BT.601)"
        crop = f"crop {self.crop_border}" if self.crop_border else "no crop"
        return f"{space}, {crop}{', 8-bit' if self.quantize else ''}"

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """Apply the protocol: clip, 8-bit rounding, Y channel, border crop; float32 (B, C', H', W')."""
        image = image.detach().float().clamp(0, 1)
        if self.quantize:
            image = (image * 255.0).round() / 255.0
        if self.protocol == "y" and image.shape[1] == 3:
            image = rgb_to_y_bt601(image)
        if self.crop_border:
            c = self.crop_border
            image = image[..., c:-c, c:-c]
        return image

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        pred, target = self.prepare(pred), self.prepare(target)
        self.psnr.update(pred, target)
        _, ssim_map = structural_similarity_index_measure(
            pred, target, data_range=1.0, sigma=1.5, kernel_size=11, reduction="none", return_full_image=True)
        border = 5  # (11 - 1) // 2: the map there depends on padding
        ssim_map = ssim_map[..., border:-border, border:-border]
        self.ssim.update(ssim_map.reshape(ssim_map.shape[0], -1).mean(dim=1))

    def compute(self) -> dict[str, torch.Tensor]:
        return {"psnr": self.psnr.compute(), "ssim": self.ssim.compute()}

    def reset(self) -> None:
        self.psnr.reset()
        self.ssim.reset()

    @property
    def count(self) -> int:
        """Images seen since the last reset (on this rank)."""
        return int(self.ssim.weight.item())
