"""Shift-aligned PSNR/SSIM (Levin et al. 2009 protocol) on top of restore.metrics."""

from __future__ import annotations

import pytest
import torch

from restore.metrics.shift_aligned import image_quality, shift_aligned_quality


def test_finds_the_integer_shift_and_matches_the_plain_metric_when_aligned():
    gt = torch.rand(1, 1, 40, 44, generator=torch.Generator().manual_seed(0))
    shifted = torch.roll(gt, shifts=(2, -3), dims=(-2, -1))
    res = shift_aligned_quality(shifted, gt, max_shift=4)
    assert (res["dy"], res["dx"]) == (2, -3) and res["psnr"] > 60  # identical pixels once aligned
    assert image_quality(shifted, gt)["psnr"] < 15
    same = shift_aligned_quality(gt * 0.9, gt, max_shift=2)
    assert (same["dy"], same["dx"]) == (0, 0)
    assert same["psnr"] == pytest.approx(image_quality(gt[..., 2:-2, 2:-2] * 0.9, gt[..., 2:-2, 2:-2])["psnr"])


def test_rejects_mismatched_or_too_small_images():
    with pytest.raises(ValueError, match="shapes differ"):
        shift_aligned_quality(torch.rand(1, 1, 20, 20), torch.rand(1, 1, 20, 21))
    with pytest.raises(ValueError, match="too small"):
        shift_aligned_quality(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), max_shift=4)
