"""Image I/O and conversion between the kinds of image users hand us.

Every public entry point of the toolkit that takes "an image" accepts a path, a PIL image, a
numpy array (H×W or H×W×C, uint8 or float in [0, 1]) or a tensor ((C,H,W) or (B,C,H,W), float in
[0, 1]), and gives back the same kind. :func:`to_tensor` records the kind in an
:class:`ImageKind`; :func:`from_tensor` turns a result back into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageKind", "read_image", "write_image", "to_tensor", "from_tensor", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | Path, channels: int | None = None) -> torch.Tensor:
    """Read an image file into a float tensor (C, H, W) in [0, 1].

    Args:
        path: image file.
        channels: 1 or 3 to convert (gray ↔ RGB); ``None`` keeps gray as 1 channel and anything
            else as RGB (alpha dropped).

    Raises:
        FileNotFoundError: the file does not exist.
        OSError: the file is unreadable or truncated; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()  # force decoding now so a truncated file fails here, naming the file
            mode = img.mode
            if channels == 1 or (channels is None and mode in ("L", "I", "I;16", "F", "1")):
                arr = _gray_array(img)
            else:
                arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise OSError(f"Cannot read image {path}: {err}") from err
    return torch.from_numpy(np.ascontiguousarray(arr if arr.ndim == 3 else arr[..., None])).permute(2, 0, 1)


def _gray_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I"):
        arr = np.asarray(img, dtype=np.float32)
        return arr / (65535.0 if arr.max() > 255 else 255.0)
    if img.mode == "F":
        return np.clip(np.asarray(img, dtype=np.float32), 0, 1)
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def write_image(tensor: torch.Tensor, path: str | Path) -> Path:
    """Write a (C, H, W) or (1, C, H, W) tensor in [0, 1] as an 8-bit image (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tensor.dim() == 4:
        tensor = tensor[0]
    arr = (tensor.detach().float().clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    Image.fromarray(arr).save(path)
    return path


@dataclass(frozen=True)
class ImageKind:
    """What the caller handed in, so a result can be handed back in the same form."""

    kind: str  # "path" | "pil" | "numpy" | "tensor"
    batched: bool = False  # tensor given as (B, C, H, W)
    channels_last: bool = True  # numpy H×W×C (False: H×W)
    dtype: Any = None  # numpy / tensor dtype given
    pil_mode: str | None = None
    device: Any = None


def to_tensor(image: Any, channels: int | None = None) -> tuple[torch.Tensor, ImageKind]:
    """Any supported image → (float tensor (1, C, H, W) in [0, 1], its :class:`ImageKind`).

    Raises:
        TypeError: unsupported type.
        ValueError: wrong number of dimensions or channels, or NaN/Inf values.
    """
    if isinstance(image, (str, Path)):
        return read_image(image, channels)[None], ImageKind("path")
    if isinstance(image, Image.Image):
        mode = image.mode
        arr = _gray_array(image) if mode in ("L", "I", "I;16", "F", "1") else (
            np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
        t = torch.from_numpy(np.ascontiguousarray(arr if arr.ndim == 3 else arr[..., None])).permute(2, 0, 1)
        return t[None], ImageKind("pil", pil_mode="L" if arr.ndim == 2 else "RGB")
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ValueError(f"numpy image must be H×W or H×W×C with C in (1, 3, 4), got shape {image.shape}")
        arr = image.astype(np.float32)
        if image.dtype == np.uint8:
            arr = arr / 255.0
        elif image.dtype == np.uint16:
            arr = arr / 65535.0
        if image.ndim == 3 and image.shape[2] == 4:
            arr = arr[..., :3]
        _check_finite(arr)
        t = torch.from_numpy(np.ascontiguousarray(arr if arr.ndim == 3 else arr[..., None])).permute(2, 0, 1)
        return t[None], ImageKind("numpy", channels_last=image.ndim == 3, dtype=image.dtype)
    if isinstance(image, torch.Tensor):
        if image.dim() not in (3, 4):
            raise ValueError(f"tensor image must be (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}")
        t = image if image.dim() == 4 else image[None]
        if not torch.isfinite(t).all():
            raise ValueError("image tensor contains NaN or Inf values")
        kind = ImageKind("tensor", batched=image.dim() == 4, dtype=image.dtype, device=image.device)
        return t.float(), kind
    raise TypeError(f"unsupported image type {type(image).__name__}: give a path, PIL image, numpy array or tensor")


def _check_finite(arr: np.ndarray) -> None:
    if not np.isfinite(arr).all():
        raise ValueError("image array contains NaN or Inf values")


def from_tensor(tensor: torch.Tensor, kind: ImageKind) -> Any:
    """(1, C, H, W) or (B, C, H, W) result → the caller's kind (paths come back as PIL images)."""
    if kind.kind == "tensor":
        out = tensor if kind.batched else tensor[0]
        return out.to(device=kind.device, dtype=kind.dtype if kind.dtype.is_floating_point else torch.float32)
    arr = tensor[0].detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    if kind.kind in ("pil", "path"):
        u8 = (arr * 255.0).round().astype(np.uint8)
        return Image.fromarray(u8[..., 0] if u8.shape[2] == 1 else u8)
    if not kind.channels_last:
        arr = arr[..., 0]
    if kind.dtype == np.uint8:
        return (arr * 255.0).round().astype(np.uint8)
    if kind.dtype == np.uint16:
        return (arr * 65535.0).round().astype(np.uint16)
    return arr.astype(kind.dtype if np.issubdtype(kind.dtype, np.floating) else np.float32)
