"""U-shaped encoder–decoder skeleton shared by every restoration network of the toolkit.

The layout follows NAFNet / Restormer (Chen et al., ECCV 2022, https://arxiv.org/abs/2204.04676):
3×3 intro conv → encoder levels (blocks, then a 2×2 stride-2 conv doubling the width) → middle
blocks → decoder levels (1×1 conv + PixelShuffle(2) halving the width, skip fusion, blocks) →
3×3 outro conv, plus a global residual. The block type is a constructor argument (a callable
``block(dim=…, kernel_size=…, drop_path=…)``, e.g. a Hydra ``_partial_`` config), so a backbone
is a one-line config choice.

Any input size works: the input is reflect-padded to a multiple of ``2**levels`` and the output is
cropped back. ``channels_last=True`` runs the whole network in the channels-last memory format
(same weights, same result up to float rounding): on CPU, PyTorch's depthwise convolutions with
large kernels are several times faster in that layout (see ``benchmarks/backbones.py``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RestorationUNet", "pad_to_multiple"]


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> torch.Tensor:
    """Pad (B, C, H, W) on the bottom/right so H and W are multiples of ``multiple``.

    Reflect padding needs the pad to be smaller than the side; tiny inputs fall back to replicate.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class RestorationUNet(nn.Module):
    """U-Net with a configurable block.

    Args:
        block: callable building one block, called as ``block(dim=C, kernel_size=k, drop_path=p)``.
        in_channels: input channels (1 gray, 3 RGB).
        out_channels: output channels; defaults to ``in_channels``.
        width: channels at full resolution; doubled at each level down.
        enc_blocks: blocks per encoder level (its length is the number of levels).
        middle_blocks: blocks at the bottleneck.
        dec_blocks: blocks per decoder level, from the deepest up; defaults to ``enc_blocks`` reversed.
        kernel_sizes: kernel size per level, ``len(enc_blocks) + 1`` values (the last is the
            middle's); decoder levels reuse their encoder level's size. ``None``: each block's default.
        skip: ``"add"`` (NAFNet) or ``"concat"`` (concatenate, then a 1×1 conv back to the width).
        drop_path_rate: stochastic-depth rate, increasing linearly over encoder+middle blocks and
            mirrored in the decoder.
        global_residual: add the input to the output (the network predicts the residual).
        channels_last: run in the channels-last memory format (the output is returned contiguous).
    """

    def __init__(
        self,
        block: Callable[..., nn.Module],
        in_channels: int = 3,
        out_channels: int | None = None,
        width: int = 16,
        enc_blocks: Sequence[int] = (1, 1, 1),
        middle_blocks: int = 1,
        dec_blocks: Sequence[int] | None = None,
        kernel_sizes: Sequence[int] | None = None,
        skip: str = "add",
        drop_path_rate: float = 0.0,
        global_residual: bool = True,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        enc_blocks = list(enc_blocks)
        dec_blocks = list(dec_blocks) if dec_blocks is not None else enc_blocks[::-1]
        levels = len(enc_blocks)
        if len(dec_blocks) != levels:
            raise ValueError(f"dec_blocks has {len(dec_blocks)} levels, enc_blocks has {levels}")
        if kernel_sizes is not None and len(kernel_sizes) != levels + 1:
            raise ValueError(f"kernel_sizes needs {levels + 1} values (levels + middle), got {list(kernel_sizes)}")
        if skip not in ("add", "concat"):
            raise ValueError(f"skip must be 'add' or 'concat', got {skip!r}")
        if in_channels != out_channels and global_residual:
            raise ValueError("global_residual needs in_channels == out_channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.size_multiple = 2**levels
        self.skip = skip
        self.global_residual = global_residual
        self.channels_last = channels_last

        def kwargs(level: int, dp: float) -> dict:
            kw = {"drop_path": dp}
            if kernel_sizes is not None:
                kw["kernel_size"] = int(kernel_sizes[level])
            return kw

        n_down = sum(enc_blocks) + middle_blocks
        rates = torch.linspace(0, drop_path_rate, n_down, device="cpu").tolist() if n_down else []
        it = iter(rates)

        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        dim = width
        for level, n in enumerate(enc_blocks):
            self.encoders.append(nn.Sequential(*[block(dim=dim, **kwargs(level, next(it))) for _ in range(n)]))
            self.downs.append(nn.Conv2d(dim, dim * 2, 2, stride=2))
            dim *= 2
        self.middle = nn.Sequential(*[block(dim=dim, **kwargs(levels, next(it))) for _ in range(middle_blocks)])

        self.ups, self.fuses, self.decoders = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        rates_up = rates[: sum(enc_blocks)][::-1]
        it_up = iter(rates_up + [0.0] * max(0, sum(dec_blocks) - len(rates_up)))
        for i, n in enumerate(dec_blocks):
            level = levels - 1 - i
            self.ups.append(nn.Sequential(nn.Conv2d(dim, dim * 2, 1, bias=False), nn.PixelShuffle(2)))
            dim //= 2
            self.fuses.append(nn.Conv2d(dim * 2, dim, 1) if skip == "concat" else nn.Identity())
            self.decoders.append(nn.Sequential(*[block(dim=dim, **kwargs(level, next(it_up))) for _ in range(n)]))
        self.outro = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, H, W), any H and W."""
        h, w = x.shape[-2:]
        inp = pad_to_multiple(x, self.size_multiple)
        if self.channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        feat = self.intro(inp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            feat = enc(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.middle(feat)
        for up, fuse, dec, skip in zip(self.ups, self.fuses, self.decoders, skips[::-1]):
            feat = up(feat)
            feat = feat + skip if self.skip == "add" else fuse(torch.cat([feat, skip], dim=1))
            feat = dec(feat)
        out = self.outro(feat)
        if self.global_residual:
            out = out + inp
        out = out[..., :h, :w]
        return out.contiguous() if self.channels_last else out
