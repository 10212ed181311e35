"""Semi-blind deblurring (deep residual prior): operator, baselines, solver, API, Lightning run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restore.semiblind import (BlurOperator, DeepResidualPrior, config_from, deblur_semiblind, line_motion_kernel,
                               perturb_kernel, richardson_lucy, wiener_deconvolution)
from restore.semiblind.solver import psnr

TINY = dict(preset="fast", image_channels=(8, 8, 8, 8, 8), image_skip=2, residual_channels=(8, 8, 8, 8, 8),
            residual_skip=2, device="cpu")


def _scene(size: int = 48, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Piecewise-constant blocks: sharp edges that blur visibly."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, channels, size // 6, size // 6, generator=g)
    return F.interpolate(base, size=(size, size), mode="nearest")


def _asym_kernel() -> torch.Tensor:
    k = torch.zeros(5, 7, dtype=torch.float64)
    k[1, 0:5] = torch.tensor([0.3, 0.2, 0.1, 0.05, 0.05])
    k[3, 4], k[4, 6] = 0.2, 0.1
    return k


def _blur(x_ext: torch.Tensor, k: torch.Tensor, noise: float = 0.0, seed: int = 0):
    op = BlurOperator(k.float(), (x_ext.shape[-2] - k.shape[0] + 1, x_ext.shape[-1] - k.shape[1] + 1))
    y = op(x_ext)
    if noise:
        y = y + noise * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))
    return y, op.crop_latent(x_ext), op


def test_operator_is_true_convolution_and_adjoint():
    from scipy.signal import convolve2d

    k = _asym_kernel()
    x = torch.rand(1, 2, 20, 23, dtype=torch.float64)
    op = BlurOperator(k, (16, 17))
    ref = np.stack([convolve2d(x[0, c].numpy(), k.numpy(), mode="valid") for c in range(2)])
    assert np.allclose(op(x)[0].numpy(), ref, atol=1e-10)
    y = torch.rand(1, 2, 16, 17, dtype=torch.float64)
    assert torch.allclose((op(x) * y).sum(), (x * op.adjoint(y)).sum(), rtol=1e-10)


def test_baselines_beat_blurry_with_exact_kernel():
    k = torch.from_numpy(line_motion_kernel(7, 30.0))
    x_ext = _scene(72)
    y, gt, _ = _blur(x_ext, k, noise=0.005)
    base = psnr(y, gt)
    assert psnr(wiener_deconvolution(y, k.float(), reg=1e-2), gt) > base + 1
    assert psnr(richardson_lucy(y, k.float(), iterations=30), gt) > base + 1


def test_kernel_perturbation_keeps_a_valid_kernel():
    k = line_motion_kernel(11, 0.0)
    for kw in (dict(length=6), dict(angle=30), dict(gaussian_sigma=1.5), dict(disk_radius=2), dict(shift=2, noise=0.1)):
        kp = perturb_kernel(k, **kw)
        assert kp.shape[0] % 2 == 1 and abs(kp.sum() - 1) < 1e-9 and kp.min() >= 0
        assert not np.allclose(np.pad(k, (kp.shape[0] - k.shape[0]) // 2), kp)


def test_exact_kernel_fits_and_wrong_kernel_uses_residual():
    k = _asym_kernel()
    x_ext = _scene(40 + 6)
    y, gt, _ = _blur(x_ext, k)
    cfg = config_from("fast", **{k_: v for k_, v in TINY.items() if k_ not in ("preset", "device")}, iterations=150)
    exact = DeepResidualPrior(y, k.float(), cfg, seed=0)
    hist = exact.run(log_every=150)
    assert hist[-1]["data"] < 5e-4
    wrong = torch.from_numpy(perturb_kernel(k, angle=90, length=3)).float()
    model = DeepResidualPrior(y, wrong, cfg, seed=0)
    model.run(log_every=150)
    assert float(model.residual().abs().mean()) > 1e-3


def test_seeded_runs_are_bitwise_reproducible_and_kinds_round_trip():
    k = np.ones((3, 3)) / 9
    img = (_scene(32, 3)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    a = deblur_semiblind(img, k, seed=3, iterations=4, **TINY)
    b = deblur_semiblind(img, k, seed=3, iterations=4, **TINY)
    assert a.dtype == np.uint8 and a.shape == img.shape and np.array_equal(a, b)
    t, r = deblur_semiblind(torch.from_numpy(img[..., 0] / 255.0).float()[None], k, iterations=2,
                            return_residual=True, **TINY)
    assert t.shape == (1, 32, 32) and r.shape == (1, 1, 32, 32)


@pytest.mark.parametrize("image, kernel, match", [
    (np.zeros((32, 32)), np.ones((3, 3)), "sum to ~1"),
    (np.zeros((16, 16)), np.ones((20, 20)) / 400, "larger than the image"),
    (np.zeros((16, 16, 2)), np.ones((3, 3)) / 9, "shape"),
    (torch.zeros(2, 16, 16), np.ones((3, 3)) / 9, "1 \\(gray\\) or 3"),
    (np.full((16, 16), np.nan), np.ones((3, 3)) / 9, "NaN"),
    (np.zeros((16, 16)), np.full((3, 3), np.nan), "NaN"),
])
def test_bad_inputs_name_the_problem(image, kernel, match):
    with pytest.raises(ValueError, match=match):
        deblur_semiblind(image, kernel, iterations=1, **TINY)


def test_lightning_run_writes_outputs(tmp_path):
    import lightning as L
    from PIL import Image

    from restore.semiblind.lightning import SemiBlindDRPModule, SingleImageDataModule

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(tmp_path / "blurry.png")
    Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(tmp_path / "gt.png")
    np.savetxt(tmp_path / "k.txt", np.ones((1, 5)) / 5)
    dm = SingleImageDataModule(tmp_path / "blurry.png", tmp_path / "k.txt", gt=tmp_path / "gt.png")
    tiny = {k: v for k, v in TINY.items() if k not in ("preset", "device")}
    model = SemiBlindDRPModule(output_dir=str(tmp_path / "run"), log_every=1, **tiny)
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, accelerator="cpu",
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, dm)
    for name in ("restored.png", "residual.png", "residual.pt", "history.json", "curves.png"):
        assert (tmp_path / "run" / name).is_file(), name


def test_residual_lr_sets_its_own_param_group():
    cfg = config_from("fast", **{k_: v for k_, v in TINY.items() if k_ not in ("preset", "device")},
                      residual_lr=1e-4, iterations=1)
    model = DeepResidualPrior(torch.rand(1, 1, 32, 32), torch.ones(3, 3) / 9, cfg, seed=0)
    opt = torch.optim.Adam(model.parameters_groups(), lr=cfg.lr)
    assert [g["lr"] for g in opt.param_groups] == [cfg.lr, 1e-4]
