"""U-shaped encoder–decoder skeleton shared by every restoration network of the toolkit.

The layout follows NAFNet / Restormer (Chen et al., ECCV 2022, https://arxiv.org/abs/2204.04676):
3×3 intro conv → encoder levels (blocks, then a 2×2 stride-2 conv doubling the width) → middle
blocks → decoder levels (1×1 conv + PixelShuffle(2) halving the width, skip fusion, blocks) →
3×3 outro conv, plus a global residual. The block type is a constructor argument: a callable
``block(dim=…, kernel_size=…, drop_path=…)``, in configs a Hydra ``_partial_`` block, so a backbone
is a config choice and every block option (``deploy``, ``conv_impl``…) is a key of that block::

    _target_: restore.models.unet.RestorationUNet
    block: {_target_: restore.models.unireplknet.UniRepLKNetBlock, _partial_: true, deploy: false}
    width: 16
    enc_blocks: [1, 1, 1]

Heads and estimators compose with any backbone through its parts rather than a copy of it:
:meth:`RestorationUNet.encode` gives the latent between encoder and decoder and the skips (where the
all-in-one heads sit), :meth:`RestorationUNet.decode` the decoder features (at every level with
``return_levels=True``, what a kernel estimator reads), :meth:`RestorationUNet.reconstruct` the image;
:meth:`RestorationUNet.new_decoder` builds a second decoder of the same shape (a residual decoder).

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

__all__ = ["RestorationUNet", "UNetEncoder", "UNetDecoder", "pad_to_multiple"]

BlockFactory = Callable[..., nn.Module]


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> torch.Tensor:
    """Pad (B, C, H, W) on the bottom/right so H and W are multiples of ``multiple``.

    Reflect padding needs the pad to be smaller than the side; tiny inputs fall back to replicate.
    While tracing (``torch.jit.trace``, ONNX export) the pad is always applied, zero or not, and
    reflect kept, so the traced graph computes it from the input's size instead of baking in the
    branch taken at the example size (an exported graph then needs H, W ≥ ``multiple``).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if torch.jit.is_tracing():
        return F.pad(x, (0, pw, 0, ph), mode=mode)
    if ph == 0 and pw == 0:
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _stage(block: BlockFactory, dim: int, kernel_size: int | None, drop_paths: Sequence[float]) -> nn.Sequential:
    """``len(drop_paths)`` blocks of width ``dim`` (``kernel_size`` passed only when given)."""
    extra = {} if kernel_size is None else {"kernel_size": int(kernel_size)}
    return nn.Sequential(*[block(dim=dim, drop_path=float(p), **extra) for p in drop_paths])


class UNetEncoder(nn.Module):
    """Encoder levels, full resolution first: blocks, then a 2×2 stride-2 conv doubling the width.

    Args:
        block: block factory (see :class:`RestorationUNet`).
        width: channels at full resolution.
        drop_paths: per level, the drop-path rate of each of its blocks (its length = blocks per level).
        kernel_sizes: kernel size per level, or ``None`` for the block's default.

    Shapes: (B, width, H, W) → ((B, width·2^L, H/2^L, W/2^L), [skip of each level, full resolution first]).
    """

    def __init__(self, block: BlockFactory, width: int, drop_paths: Sequence[Sequence[float]],
                 kernel_sizes: Sequence[int | None]) -> None:
        super().__init__()
        self.levels, self.downs = nn.ModuleList(), nn.ModuleList()
        dim = width
        for rates, k in zip(drop_paths, kernel_sizes):
            self.levels.append(_stage(block, dim, k, rates))
            self.downs.append(nn.Conv2d(dim, dim * 2, 2, stride=2))
            dim *= 2

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for level, down in zip(self.levels, self.downs):
            feat = level(feat)
            skips.append(feat)
            feat = down(feat)
        return feat, skips


class UNetDecoder(nn.Module):
    """Decoder levels, deepest first: 1×1 conv + PixelShuffle(2) halving the width, skip fusion, blocks.

    Args:
        block: block factory.
        width: channels at full resolution (the output width).
        drop_paths: per level, deepest first, the drop-path rate of each of its blocks.
        kernel_sizes: kernel size per level, deepest first, or ``None`` entries.
        skip: ``"add"`` (NAFNet) or ``"concat"`` (concatenate, then a 1×1 conv back to the width).

    Shapes: ((B, width·2^L, H/2^L, W/2^L), skips full resolution first) → (B, width, H, W), or with
    ``return_levels=True`` the output of every level, deepest first (the last is full resolution).
    """

    def __init__(self, block: BlockFactory, width: int, drop_paths: Sequence[Sequence[float]],
                 kernel_sizes: Sequence[int | None], skip: str = "add") -> None:
        super().__init__()
        if skip not in ("add", "concat"):
            raise ValueError(f"skip must be 'add' or 'concat', got {skip!r}")
        self.skip = skip
        self.ups, self.fuses, self.levels = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        dim = width * 2 ** len(drop_paths)
        for rates, k in zip(drop_paths, kernel_sizes):
            self.ups.append(nn.Sequential(nn.Conv2d(dim, dim * 2, 1, bias=False), nn.PixelShuffle(2)))
            dim //= 2
            self.fuses.append(nn.Conv2d(dim * 2, dim, 1) if skip == "concat" else nn.Identity())
            self.levels.append(_stage(block, dim, k, rates))

    def forward(self, feat: torch.Tensor, skips: Sequence[torch.Tensor],
                return_levels: bool = False) -> torch.Tensor | list[torch.Tensor]:
        if len(skips) != len(self.levels):
            raise ValueError(f"the decoder has {len(self.levels)} levels but got {len(skips)} skips")
        outputs = []
        for up, fuse, level, skip in zip(self.ups, self.fuses, self.levels, list(skips)[::-1]):
            feat = up(feat)
            feat = feat + skip if self.skip == "add" else fuse(torch.cat([feat, skip], dim=1))
            feat = level(feat)
            outputs.append(feat)
        return outputs if return_levels else feat


class RestorationUNet(nn.Module):
    """U-Net with a configurable block.

    Args:
        block: callable building one block, called as ``block(dim=C, kernel_size=k, drop_path=p)``
            (a Hydra ``_partial_`` config or ``functools.partial(UniRepLKNetBlock, deploy=True)``).
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

    Shapes: (B, C_in, H, W) → (B, C_out, H, W), any H and W.
    """

    def __init__(
        self,
        block: BlockFactory,
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
        enc_blocks = [int(n) for n in enc_blocks]
        dec_blocks = [int(n) for n in dec_blocks] if dec_blocks is not None else enc_blocks[::-1]
        levels = len(enc_blocks)
        if levels < 1:
            raise ValueError("enc_blocks needs at least one level")
        if len(dec_blocks) != levels:
            raise ValueError(f"dec_blocks has {len(dec_blocks)} levels, enc_blocks has {levels}")
        if kernel_sizes is not None and len(kernel_sizes) != levels + 1:
            raise ValueError(f"kernel_sizes needs {levels + 1} values (levels + middle), got {list(kernel_sizes)}")
        if skip not in ("add", "concat"):
            raise ValueError(f"skip must be 'add' or 'concat', got {skip!r}")
        if in_channels != out_channels and global_residual:
            raise ValueError("global_residual needs in_channels == out_channels")
        self.in_channels, self.out_channels, self.width = in_channels, out_channels, width
        self.size_multiple = 2**levels
        self.global_residual = global_residual
        self.channels_last = channels_last

        ks = list(kernel_sizes) if kernel_sizes is not None else [None] * (levels + 1)
        n_down = sum(enc_blocks) + middle_blocks
        rates = torch.linspace(0, drop_path_rate, n_down, device="cpu").tolist() if n_down else []
        enc_rates, start = [], 0
        for n in enc_blocks:
            enc_rates.append(rates[start:start + n])
            start += n
        # decoder: the encoder's rates mirrored (deepest level first), zero where it has more blocks
        mirrored = rates[: sum(enc_blocks)][::-1]
        dec_rates, start = [], 0
        for n in dec_blocks:
            dec_rates.append((mirrored[start:start + n] + [0.0] * n)[:n])
            start += n
        self._decoder_args = (block, width, dec_rates, ks[:levels][::-1], skip)

        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoder = UNetEncoder(block, width, enc_rates, ks[:levels])
        self.middle = _stage(block, width * 2**levels, ks[levels], rates[sum(enc_blocks):])
        self.decoder = UNetDecoder(*self._decoder_args)
        self.outro = nn.Conv2d(width, out_channels, 3, padding=1)

    @property
    def latent_channels(self) -> int:
        """Channels of the latent :meth:`encode` returns (``width · 2^levels``)."""
        return self.width * self.size_multiple

    def new_decoder(self) -> UNetDecoder:
        """A freshly initialised decoder of the same shape as this network's (e.g. a residual decoder)."""
        return UNetDecoder(*self._decoder_args)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Padded input (B, C_in, H, W), H and W multiples of :attr:`size_multiple` → (latent, skips)."""
        latent, skips = self.encoder(self.intro(x))
        return self.middle(latent), skips

    def decode(self, latent: torch.Tensor, skips: Sequence[torch.Tensor],
               return_levels: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """(latent, skips) → full-resolution features (B, width, H, W), or every level's, deepest first."""
        return self.decoder(latent, skips, return_levels=return_levels)

    def reconstruct(self, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Full-resolution features and the padded input → the image (outro conv + global residual)."""
        out = self.outro(features)
        return out + x if self.global_residual else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, H, W), any H and W."""
        h, w = x.shape[-2:]
        inp = pad_to_multiple(x, self.size_multiple)
        if self.channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        latent, skips = self.encode(inp)
        out = self.reconstruct(self.decode(latent, skips), inp)[..., :h, :w]
        return out.contiguous() if self.channels_last else out
