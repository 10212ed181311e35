"""Image I/O and conversion between the kinds of image users hand us.

Every public entry point of the toolkit that takes "an image" accepts a path, a PIL image, a
numpy array (H×W or H×W×C) or a tensor ((C, H, W) or (B, C, H, W)), and gives back the same
kind, with the dtype (or PIL mode) it came in. :func:`to_tensor` records the kind in an
:class:`ImageKind`; :func:`from_tensor` turns a result back into it.

Scale per dtype (the network works on float in [0, 1]):

* uint8 (numpy, tensor; 8-bit PIL modes and files): divided by 255;
* uint16 (numpy, tensor; PIL ``I;16``, 16-bit PNG/TIFF; 16-bit PGM, which Pillow opens in mode
  ``I`` scaled to 0–65535): divided by 65535;
* float16/32/64 (numpy, tensor; PIL ``F``): used as is, on the [0, 1] scale but not clipped to it:
  unclipped noisy input (AWGN added to a [0, 1] image, as ``eval.py`` scores CBSD68) is taken
  unchanged. A float image whose maximum exceeds :data:`FLOAT_MAX_UNIT_SCALE` reads as 0–255 data
  and is refused (divide it by 255 first, or give it as uint8);
* bool, int8/16/32/64, uint32/64, complex, other PIL ``I`` (32-bit int) images: refused
  (TypeError), no scale is implied.

Empty images (a zero height, width or channel count) and NaN/Inf values are refused
(ValueError naming the shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageKind", "read_image", "write_image", "to_tensor", "from_tensor", "IMAGE_EXTENSIONS",
           "FLOAT_MAX_UNIT_SCALE"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Largest value a float image may hold and still be read on the [0, 1] scale; above it, it reads as 0–255 data.
#: Unclipped AWGN at σ = 50 (0–255 scale) on CBSD68 peaks at 1.98, σ = 75 at 2.43 (seed 0); 0–255 data
#: stays under 4 only when it is nearly black (every value below 1.6 % of full scale).
FLOAT_MAX_UNIT_SCALE = 4.0

# PIL modes read as one channel: 1-bit, 8-bit (with alpha), 16-bit, 32-bit int and float gray
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def read_image(path: str | Path, channels: int | None = None, keep_uint8: bool = False) -> torch.Tensor:
    """Read an image file into a float tensor (C, H, W) in [0, 1].

    8-bit files are divided by 255, 16-bit ones (``I;16`` PNG/TIFF, PGM) by 65535, float TIFFs
    are taken as they are (0–255 floats refused). (Pillow reads 16-bit RGB PNGs at 8 bits.)

    Args:
        path: image file.
        channels: 1 or 3 to convert (RGB → gray by ITU-R 601-2 luma, gray → 3 equal channels);
            ``None`` keeps gray as 1 channel and anything else as RGB (alpha dropped).
        keep_uint8: 8-bit files come back as uint8 (C, H, W) 0–255, exactly 255 × the float image (a quarter
            of the memory, for caches); other files as float in [0, 1] all the same.

    Raises:
        FileNotFoundError: the file does not exist.
        OSError: the file is unreadable or truncated; the message names the file.
        ValueError: values outside the range of its mode (named with the file).
    """
    return torch.from_numpy(np.ascontiguousarray(_read_array(path, channels, keep_uint8)[0])).permute(2, 0, 1)


def _read_array(path: str | Path, channels: int | None, keep_uint8: bool = False) -> tuple[np.ndarray, str]:
    """→ (float32 H×W×C in [0, 1] — uint8 0–255 for 8-bit files with ``keep_uint8`` —, the file's PIL mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()  # force decoding now so a truncated file fails here, naming the file
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise OSError(f"Cannot read image {path}: {err}") from err
    arr = _pil_to_array(img, channels, what=f"image {path}", keep_uint8=keep_uint8)  # usable after the file closes
    _check_not_empty(arr.shape, f"image {path}")
    return arr, img.mode


def _pil_to_array(img: Image.Image, channels: int | None = None, what: str = "PIL image",
                  keep_uint8: bool = False) -> np.ndarray:
    """PIL image → float32 H×W×C in [0, 1] (C = 1 for gray modes, else 3), ``channels`` applied; 8-bit modes as
    uint8 0–255 with ``keep_uint8``."""
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    mode = img.mode
    if mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.float32) / 65535.0
    elif mode == "I":
        if img.format != "PPM":  # 32-bit int TIFFs, images built from int32 arrays: no implied scale
            raise TypeError(f"{what}: 32-bit integer (PIL mode 'I') images have no implied scale: give uint16 "
                            "(0–65535), uint8 or float in [0, 1]")
        arr = np.asarray(img).astype(np.float32) / 65535.0  # Pillow scales 16-bit PGM/PPM samples to 0–65535
    elif mode == "F":
        arr = np.array(img, dtype=np.float32)  # a copy: PIL's buffer is read-only
        _check_float_range(arr, what)
    else:  # 8 bits per sample; RGB → gray by PIL's ITU-R 601-2 luma, as before
        arr = np.asarray(img.convert("L" if mode in _GRAY_MODES or channels == 1 else "RGB"))
        arr = arr.copy() if keep_uint8 else arr.astype(np.float32) / 255.0  # a copy: PIL's buffer is read-only
    if arr.ndim == 2:
        arr = arr[..., None]
    if channels == 3 and arr.shape[2] == 1:  # not PIL's convert("RGB"): it clips 16-bit gray to white
        arr = np.repeat(arr, 3, axis=2)
    return arr


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
    pil_mode: str | None = None  # mode to give back for "pil" and "path": L, RGB, I;16 or F
    device: Any = None


_TENSOR_SCALES = {torch.uint8: 255.0, torch.uint16: 65535.0}
_NUMPY_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_tensor(image: Any, channels: int | None = None) -> tuple[torch.Tensor, ImageKind]:
    """Any supported image → (float tensor (1, C, H, W) or (B, C, H, W) on the [0, 1] scale, its :class:`ImageKind`).

    Scales per dtype as in the module docstring; ``channels`` (1 or 3) converts paths and PIL images.

    Raises:
        TypeError: unsupported type or dtype (bool, signed or 32/64-bit unsigned integers, complex).
        ValueError: wrong number of dimensions or channels, an empty image, float values that read as
            0–255 data (maximum above :data:`FLOAT_MAX_UNIT_SCALE`), or NaN/Inf values.
    """
    if isinstance(image, (str, Path)):
        arr, mode = _read_array(image, channels)
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
        return t[None], ImageKind("path", pil_mode=_pil_mode_back(mode, arr.shape[2]))
    if isinstance(image, Image.Image):
        arr = _pil_to_array(image, channels)
        _check_not_empty(arr.shape, "PIL image")
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
        return t[None], ImageKind("pil", pil_mode=_pil_mode_back(image.mode, arr.shape[2]))
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ValueError(f"numpy image must be H×W or H×W×C with C in (1, 3, 4), got shape {image.shape}")
        _check_not_empty(image.shape, "numpy image")
        arr = _numpy_to_unit_float(image)
        if image.ndim == 3 and image.shape[2] == 4:
            arr = arr[..., :3]
        t = torch.from_numpy(np.ascontiguousarray(arr if arr.ndim == 3 else arr[..., None])).permute(2, 0, 1)
        return t[None], ImageKind("numpy", channels_last=image.ndim == 3, dtype=image.dtype)
    if isinstance(image, torch.Tensor):
        if image.dim() not in (3, 4):
            raise ValueError(f"tensor image must be (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}")
        _check_not_empty(tuple(image.shape), "tensor image")
        t = image if image.dim() == 4 else image[None]
        kind = ImageKind("tensor", batched=image.dim() == 4, dtype=image.dtype, device=image.device)
        if image.dtype in _TENSOR_SCALES:
            return t.float() / _TENSOR_SCALES[image.dtype], kind
        if not image.is_floating_point():
            raise TypeError(f"tensor image of dtype {image.dtype} is not supported: give float on the [0, 1] scale, "
                            "uint8 (0–255) or uint16 (0–65535)")
        if not torch.isfinite(t).all():
            raise ValueError("image tensor contains NaN or Inf values")
        _check_float_range(t, f"tensor image of dtype {image.dtype}")
        return t.float(), kind
    raise TypeError(f"unsupported image type {type(image).__name__}: give a path, PIL image, numpy array or tensor")


def _numpy_to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float numpy image → float32 on the [0, 1] scale (refusing what has no implied scale)."""
    if image.dtype in _NUMPY_SCALES:
        return image.astype(np.float32) / _NUMPY_SCALES[image.dtype]
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"numpy image of dtype {image.dtype} is not supported: give float on the [0, 1] scale, "
                        "uint8 (0–255) or uint16 (0–65535)")
    arr = image.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("image array contains NaN or Inf values")
    _check_float_range(arr, f"numpy image of dtype {image.dtype}")
    return arr


def _check_float_range(values: np.ndarray | torch.Tensor, what: str) -> None:
    """Refuse a float image whose maximum says it is 0–255 data; anything else finite is taken as it is."""
    if (values.size if isinstance(values, np.ndarray) else values.numel()) == 0:
        return
    high = float(values.max())
    if high > FLOAT_MAX_UNIT_SCALE:
        raise ValueError(f"{what} has max {high:g} > {FLOAT_MAX_UNIT_SCALE:g}: looks like 0–255 data (float images "
                         "are read on the [0, 1] scale); divide it by 255 or give it as uint8")


def _check_not_empty(shape: tuple, what: str) -> None:
    if 0 in tuple(shape):
        raise ValueError(f"{what} is empty: shape {tuple(shape)} (every side and the channel count must be > 0)")


def _pil_mode_back(mode: str, channels: int) -> str:
    if channels == 1 and (mode.startswith("I;16") or mode == "I"):
        return "I;16"
    if channels == 1 and mode == "F":
        return "F"
    return "L" if channels == 1 else "RGB"


def from_tensor(tensor: torch.Tensor, kind: ImageKind) -> Any:
    """(1, C, H, W) or (B, C, H, W) result in [0, 1] → the caller's kind and dtype (paths come back as PIL images)."""
    if kind.kind == "tensor":
        out = tensor if kind.batched else tensor[0]
        if kind.dtype in _TENSOR_SCALES:
            out = (out.float().clamp(0, 1) * _TENSOR_SCALES[kind.dtype]).round().to(kind.dtype)
            return out.to(kind.device)
        return out.to(device=kind.device, dtype=kind.dtype)
    arr = tensor[0].detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    if kind.kind in ("pil", "path"):
        gray = arr[..., 0] if arr.shape[2] == 1 else None
        if gray is not None and kind.pil_mode == "I;16":
            return Image.fromarray((gray * 65535.0).round().astype(np.uint16))
        if gray is not None and kind.pil_mode == "F":
            return Image.fromarray(gray.astype(np.float32))
        u8 = (arr * 255.0).round().astype(np.uint8)
        return Image.fromarray(u8[..., 0] if u8.shape[2] == 1 else u8)
    if not kind.channels_last:
        arr = arr[..., 0]
    if kind.dtype in _NUMPY_SCALES:
        return (arr * _NUMPY_SCALES[kind.dtype]).round().astype(kind.dtype)
    return arr.astype(kind.dtype)
