"""Paired augmentation keeps lq and gt aligned; small images are reflect-padded."""

from __future__ import annotations

import pytest
import torch

from restore.data.transforms import (
    center_crop,
    pad_to_size,
    random_channel_permutation_pair,
    random_crop_pair,
    random_flip_rot_pair,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_crop_and_flip_rot_keep_pairs_aligned():
    gt = torch.rand(3, 40, 30)
    for seed in range(16):
        # lq = gt + 1 everywhere: any misalignment would break lq - gt == 1
        lq, out = random_crop_pair(gt + 1, gt, 16, _gen(seed))
        lq, out = random_flip_rot_pair(lq, out, _gen(seed))
        assert out.shape == (3, 16, 16)
        assert torch.allclose(lq - out, torch.ones_like(out))
        same_a, same_b = random_flip_rot_pair(*random_crop_pair(gt, gt.clone(), 16, _gen(seed)), _gen(seed))
        assert torch.equal(same_a, same_b)


def test_crop_is_deterministic_for_a_generator_and_covers_the_image():
    gt = torch.arange(20 * 20, dtype=torch.float32).view(1, 20, 20)
    a = random_crop_pair(gt, gt, 8, _gen(0))[1]
    b = random_crop_pair(gt, gt, 8, _gen(0))[1]
    assert torch.equal(a, b)
    corners = {float(random_crop_pair(gt, gt, 8, _gen(s))[1][0, 0, 0]) for s in range(50)}
    assert len(corners) > 10


def test_all_eight_dihedral_transforms_occur():
    img = torch.arange(6.0).view(1, 2, 3)
    seen = {tuple(random_flip_rot_pair(img, img, _gen(s))[0].flatten().tolist()) +
            tuple(random_flip_rot_pair(img, img, _gen(s))[0].shape) for s in range(200)}
    assert len(seen) == 8


def test_smaller_images_are_reflect_padded():
    img = torch.rand(3, 10, 6)
    padded = pad_to_size(img, 16, 16)
    assert padded.shape == (3, 16, 16)
    assert torch.equal(padded[:, :10, :6], img)
    assert torch.equal(padded[:, 10, :6], img[:, 8, :])  # reflection, not zeros
    lq, gt = random_crop_pair(img, img.clone(), 32, _gen(0))  # needs repeated reflection
    assert lq.shape == gt.shape == (3, 32, 32) and torch.equal(lq, gt)
    assert pad_to_size(torch.rand(1, 1, 1), 4, 4).shape == (1, 4, 4)  # 1-pixel image: replicate


def test_center_crop_and_size_mismatch():
    img = torch.arange(100.0).view(1, 10, 10)
    assert torch.equal(center_crop(img, 4), img[:, 3:7, 3:7])
    with pytest.raises(ValueError, match="differ in size"):
        random_crop_pair(torch.rand(3, 10, 10), torch.rand(3, 12, 10), 8)


def test_channel_permutation_reorders_lq_and_gt_alike():
    gt = torch.rand(3, 8, 8)
    orders = set()
    for seed in range(24):
        lq, out = random_channel_permutation_pair(gt + 1, gt, _gen(seed))
        assert torch.equal(lq, out + 1)  # the same order for both
        order = tuple(int((gt == c).all(dim=(1, 2)).nonzero()) for c in out)
        assert sorted(order) == [0, 1, 2]  # a permutation: every channel kept once
        orders.add(order)
    assert len(orders) == 6  # all six orders of three channels
