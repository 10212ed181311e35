import pytest
import torch

from restore.losses import CharbonnierLoss, FFTLoss, RestorationLoss


def test_charbonnier_is_l1_away_from_zero_and_smooth_at_zero():
    pred, gt = torch.full((1, 1, 4, 4), 0.5), torch.zeros(1, 1, 4, 4)
    assert CharbonnierLoss()(pred, gt).item() == pytest.approx(0.5, abs=1e-5)
    assert CharbonnierLoss()(gt, gt).item() == pytest.approx(1e-3)
    x = torch.zeros(1, 1, 4, 4, requires_grad=True)
    CharbonnierLoss()(x, gt).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() == 0


def test_fft_loss_zero_on_equal_positive_otherwise_and_differentiable():
    a = torch.rand(2, 3, 15, 17, requires_grad=True)
    assert FFTLoss()(a, a.detach()).item() == pytest.approx(0.0, abs=1e-6)
    loss = FFTLoss()(a, torch.rand(2, 3, 15, 17))
    loss.backward()
    assert loss.item() > 0 and a.grad.abs().sum() > 0


def test_restoration_loss_adds_weighted_fft_term():
    pred, gt = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    plain = RestorationLoss(torch.nn.L1Loss())(pred, gt)
    with_fft = RestorationLoss(torch.nn.L1Loss(), fft_weight=0.01)(pred, gt)
    assert with_fft.item() == pytest.approx(plain.item() + 0.01 * FFTLoss()(pred, gt).item(), rel=1e-5)
