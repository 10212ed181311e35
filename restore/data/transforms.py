"""Paired geometric augmentation: the same crop, flip and 90° rotation on lq and gt.

Small functions rather than ``kornia.augmentation.AugmentationSequential(data_keys=...)``:
kornia draws its parameters from the global RNG, while every random choice here comes from an
explicit ``torch.Generator``, so a validation sample seeded by (seed, index) is identical on
every pass and in every worker. Crops are integer slices and flips/rotations are exact
permutations of pixels (no resampling), so lq and gt stay aligned to the pixel.

All functions take (C, H, W) tensors.
"""

from __future__ import annotations

import torch

__all__ = ["pad_to_size", "random_crop_pair", "center_crop", "random_flip_rot_pair", "random_channel_permutation_pair"]


def pad_to_size(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Reflect-pad a (C, H, W) image on the bottom/right to at least ``height`` × ``width``.

    Reflection keeps image statistics near the border (zeros would teach the network black
    frames); when the image is too small to reflect once, the padding is repeated reflection (a
    1-pixel side is replicated). Done by gathering rows and columns (what ``F.pad(mode="reflect")``
    does, pixel for pixel), so it works on uint8 crops as on float ones.
    """
    rows, cols = _padded_indices(image.shape[-2], height), _padded_indices(image.shape[-1], width)
    if rows is not None:
        image = image.index_select(-2, rows)
    if cols is not None:
        image = image.index_select(-1, cols)
    return image


def _padded_indices(size: int, target: int) -> torch.Tensor | None:
    """Source index of each position along an axis of ``size`` reflect-padded at the end to ``target``
    (repeated reflection while one reflection is not enough; replicate for a 1-pixel axis); None: no padding."""
    if size >= target:
        return None
    index = torch.arange(size)
    while len(index) < target:
        if len(index) == 1:
            return index.repeat(target)
        extra = min(target - len(index), len(index) - 1)
        index = torch.cat([index, index.flip(0)[1:1 + extra]])
    return index


def _random_int(high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [0, high]."""
    return int(torch.randint(0, high + 1, (), generator=generator))


def random_crop_pair(
    lq: torch.Tensor, gt: torch.Tensor, size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop the same random ``size``² window from lq and gt (C, H, W), reflect-padding smaller images.

    Returns:
        (lq, gt) patches of shape (C, size, size).
    """
    if lq.shape[-2:] != gt.shape[-2:]:
        raise ValueError(f"lq {tuple(lq.shape)} and gt {tuple(gt.shape)} differ in size; cannot crop them together")
    lq, gt = pad_to_size(lq, size, size), pad_to_size(gt, size, size)
    h, w = gt.shape[-2:]
    top, left = _random_int(h - size, generator), _random_int(w - size, generator)
    return lq[..., top:top + size, left:left + size], gt[..., top:top + size, left:left + size]


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Central ``size``² window of a (C, H, W) image (reflect-padded first if smaller)."""
    image = pad_to_size(image, size, size)
    h, w = image.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return image[..., top:top + size, left:left + size]


def random_flip_rot_pair(
    lq: torch.Tensor, gt: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one of the 8 dihedral transforms (flip × 90° rotations), the same to lq and gt.

    Returns:
        (lq, gt), each (C, H, W) or (C, W, H) after an odd rotation.
    """
    choice = _random_int(7, generator)
    flip, turns = bool(choice & 4), choice & 3
    if flip:
        lq, gt = lq.flip(-1), gt.flip(-1)
    if turns:
        lq, gt = torch.rot90(lq, turns, (-2, -1)), torch.rot90(gt, turns, (-2, -1))
    # rot90 / flip return views with negative strides: make them contiguous for collation
    return lq.contiguous(), gt.contiguous()


def random_channel_permutation_pair(
    lq: torch.Tensor, gt: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder the colour channels of lq and gt by one random permutation (the same for both).

    The "RGB permute" augmentation of Yoo et al., *Rethinking Data Augmentation for Image Super-resolution*
    (CVPR 2020, Sec. 3.1): six times the colours of a small training set, for degradations that treat the
    channels alike (AWGN, blur, rain…).

    Returns:
        (lq, gt), each (C, H, W) with its channels reordered.
    """
    order = torch.randperm(gt.shape[0], generator=generator)
    return lq[order], gt[order]
