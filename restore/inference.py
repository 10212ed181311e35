"""Restore users' images of any size with a trained network: padding, tiling, self-ensemble.

Tiled inference with overlapping tiles and linear blending is written here (as in KAIR / NAFNet's
test scripts); no library we depend on offers it for arbitrary networks.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn

from restore.errors import NonFiniteOutputError
from restore.models.unet import pad_to_multiple
from restore.utils.image import from_tensor, to_tensor

__all__ = ["restore_image", "restore_tensor", "check_tile", "input_channels", "NonFiniteOutputError"]


def restore_image(model: nn.Module, image: Any, tile: int | None = None, tile_overlap: int = 32,
                  ensemble: bool = False, device: Any = None) -> Any:
    """Restore one image and give it back in the kind it came in.

    Args:
        model: a network from :func:`restore.load_model` (any ``nn.Module`` mapping (B, C, H, W)
            to the same shape works).
        image: path, PIL image, numpy array (H×W or H×W×C) or tensor ((C, H, W) or (B, C, H, W)).
            Scale per dtype: uint8 → /255, uint16 → /65535, float16/32/64 → used as is on the
            [0, 1] scale, not clipped (unclipped noisy input such as ``clean + σ/255 · N(0, 1)``
            reaches the network unchanged, as in ``eval.py``); a float image with a maximum above
            :data:`restore.utils.image.FLOAT_MAX_UNIT_SCALE` (4) reads as 0–255 data and is refused.
            Other dtypes (bool, signed or wider integers) are refused (see
            :mod:`restore.utils.image`). Gray images go through an RGB network as three equal
            channels; RGB images through a gray network channel by channel.
        tile: restore in ``tile``×``tile`` tiles (memory stays bounded for large images), at least
            the network's ``size_multiple``; None restores the whole image at once.
        tile_overlap: overlap between neighbouring tiles, blended linearly.
        ensemble: average the 8 flips/rotations (×8 self-ensemble; 8× slower).
        device: where to run; defaults to the model's device.

    Returns:
        the restored image, same kind, dtype (PIL mode), size and channel count as ``image``
        (paths come back as PIL images; a numpy alpha channel is dropped), clipped to [0, 1]
        (0–255 / 0–65535 for integer dtypes): a restored image is a clean image, and the clipped
        output is what ``eval.py``'s metrics score.

    Raises:
        TypeError / ValueError: an unsupported dtype, float values that read as 0–255 data, NaN/Inf
            or an empty image (named with its shape), or a ``tile`` / ``tile_overlap`` out of
            range (:func:`check_tile`), before the network runs.
        NonFiniteOutputError: the network's output holds NaN or Inf.
    """
    x, kind = to_tensor(image)
    out = restore_tensor(model, x, tile=tile, tile_overlap=tile_overlap, ensemble=ensemble, device=device)
    return from_tensor(out, kind)


@torch.inference_mode()
def restore_tensor(model: nn.Module, x: torch.Tensor, tile: int | None = None, tile_overlap: int = 32,
                   ensemble: bool = False, device: Any = None) -> torch.Tensor:
    """(B, C, H, W) on the [0, 1] scale (unclipped values welcome) → restored (B, C, H, W) clipped to [0, 1],
    on ``x``'s device.

    Raises:
        ValueError: ``x`` is not 4-D, is empty (a zero batch, channel count, height or width) or
            holds NaN/Inf; ``tile`` / ``tile_overlap`` out of range (:func:`check_tile`).
        NonFiniteOutputError: the network's output holds NaN or Inf (the model's file is named
            when it came from :func:`restore.load_model`).
    """
    check_tile(model, tile, tile_overlap)
    if x.dim() != 4:
        raise ValueError(f"expected (B, C, H, W), got shape {tuple(x.shape)}")
    if 0 in x.shape:
        raise ValueError(f"empty image: shape {tuple(x.shape)} (batch, channels, height and width must be > 0)")
    if not torch.isfinite(x).all():  # else a NaN input would be blamed on the network below
        raise ValueError("image tensor contains NaN or Inf values")
    param = next(model.parameters(), None)
    device = torch.device(device) if device is not None else (param.device if param is not None else x.device)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    model_channels = input_channels(model)
    b, c, h, w = x.shape
    inp = x.to(device=device, dtype=dtype)
    if model_channels == 3 and c == 1:
        inp = inp.expand(-1, 3, -1, -1)
    elif model_channels == 1 and c == 3:
        inp = inp.reshape(b * 3, 1, h, w)
    elif model_channels is not None and model_channels != c:
        raise ValueError(f"the model takes {model_channels} channels, the image has {c}")

    def run(t: torch.Tensor) -> torch.Tensor:
        return _run_padded(model, t) if tile is None else _run_tiled(model, t, tile, tile_overlap)

    out = _self_ensemble(run, inp) if ensemble else run(inp)
    if not torch.isfinite(out).all():
        source = getattr(model, "checkpoint_path", None)
        name = f"{type(model).__name__}" + (f" loaded from {source}" if source else "")
        raise NonFiniteOutputError(f"{name} produced NaN or Inf values on an input of shape {tuple(x.shape)} "
                                   "(non-finite or diverged weights?)")
    if model_channels == 3 and c == 1:
        out = out.mean(dim=1, keepdim=True)
    elif model_channels == 1 and c == 3:
        out = out.reshape(b, 3, h, w)
    return out.clamp(0, 1).to(device=x.device, dtype=torch.float32)


def check_tile(model: nn.Module, tile: int | None, tile_overlap: int = 32) -> None:
    """Refuse a tiling that cannot run as asked: ``tile`` must be None (whole image) or an integer
    ≥ the network's ``size_multiple`` (0 does not mean "no tiling"), ``tile_overlap`` in [0, ``tile``).

    Raises:
        ValueError / TypeError: naming the value, the network's multiple and the fix.
    """
    if tile is None:
        return
    multiple = int(getattr(model, "size_multiple", 1))
    if isinstance(tile, bool) or not isinstance(tile, numbers.Integral):
        raise TypeError(f"tile size must be an integer (pixels) or None, got {tile!r}")
    if tile < max(multiple, 1):
        raise ValueError(f"tile size {tile!r} is below {type(model).__name__}'s size multiple ({multiple}): use "
                         f"at least {max(multiple, 1)} (e.g. 512), or no tiling (None) to restore the whole image")
    overlap = tile_overlap
    if isinstance(overlap, bool) or not isinstance(overlap, numbers.Integral) or not 0 <= overlap < tile:
        raise ValueError(f"tile overlap {overlap!r} must be in [0, {tile}) for tile size {tile}, e.g. "
                         f"{min(32, tile // 4)}")


def input_channels(model: nn.Module) -> int | None:
    """Channels ``model`` takes: its ``in_channels``, else its first ``Conv2d``'s; None when it has neither."""
    channels = getattr(model, "in_channels", None)
    if channels is None:
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = first.in_channels if first is not None else None
    return channels


def _run_padded(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    return model(pad_to_multiple(x, getattr(model, "size_multiple", 1)))[..., :h, :w]


def _run_tiled(model: nn.Module, x: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Overlapping tiles, each weighted by a ramp that falls linearly over the overlap."""
    b, c, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    out = torch.zeros_like(x)
    weight = torch.zeros((1, 1, h, w), device=x.device, dtype=x.dtype)
    ramp = _blend_window(th, tw, overlap, x)
    for top in _tile_starts(h, th, overlap):
        for left in _tile_starts(w, tw, overlap):
            patch = x[..., top:top + th, left:left + tw]
            out[..., top:top + th, left:left + tw] += _run_padded(model, patch) * ramp
            weight[..., top:top + th, left:left + tw] += ramp
    return out / weight


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    stride = max(1, tile - overlap)
    starts = list(range(0, max(size - tile, 0) + 1, stride))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def _blend_window(th: int, tw: int, overlap: int, like: torch.Tensor) -> torch.Tensor:
    """Separable window: 1 inside, a linear ramp (never 0) over ``overlap`` pixels at each edge."""

    def ramp(n: int) -> torch.Tensor:
        i = torch.arange(n, device=like.device, dtype=like.dtype)
        if overlap == 0:
            return torch.ones_like(i)
        return torch.minimum(torch.ones_like(i), torch.minimum(i + 1, n - i) / (overlap + 1))

    return (ramp(th)[:, None] * ramp(tw)[None, :])[None, None]


def _self_ensemble(run, x: torch.Tensor) -> torch.Tensor:
    """Average of ``run`` over the 8 dihedral transforms, each undone on the output."""
    total = torch.zeros_like(x)
    for k in range(4):
        for flip in (False, True):
            t = torch.rot90(x, k, dims=(-2, -1))
            t = t.flip(-1) if flip else t
            y = run(t)
            y = y.flip(-1) if flip else y
            total += torch.rot90(y, -k, dims=(-2, -1))
    return total / 8
