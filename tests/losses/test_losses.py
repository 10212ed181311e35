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


def test_multiscale_loss_sums_every_scale_against_the_resized_target():
    import torch.nn.functional as F

    from restore.losses import EdgeLoss, MultiScaleLoss

    gt = torch.rand(2, 3, 17, 23)
    coarse, fine = torch.rand(2, 3, 9, 12), torch.rand(2, 3, 17, 23)
    small = F.interpolate(gt, size=(9, 12), mode="bilinear", align_corners=False, antialias=True)
    loss = MultiScaleLoss(fft_weight=0.01)
    expected = sum(F.l1_loss(p, g) + 0.01 * FFTLoss()(p, g) for p, g in ((coarse, small), (fine, gt)))
    assert loss([coarse, fine], gt).item() == pytest.approx(expected.item(), rel=1e-5)
    # a single tensor is one scale; DeepRFT v0's option adds the weighted edge term
    assert loss(fine, gt).item() == pytest.approx((F.l1_loss(fine, gt) + 0.01 * FFTLoss()(fine, gt)).item(), rel=1e-5)
    v0 = MultiScaleLoss(CharbonnierLoss(), fft_weight=0.01, edge_weight=0.05)
    assert v0(fine, gt).item() == pytest.approx(
        (CharbonnierLoss()(fine, gt) + 0.01 * FFTLoss()(fine, gt) + 0.05 * EdgeLoss()(fine, gt)).item(), rel=1e-5)
    assert EdgeLoss()(gt, gt).item() == pytest.approx(1e-3)  # Charbonnier ε at zero difference
    with pytest.raises(ValueError, match="2 scale_weights but got 1 outputs"):
        MultiScaleLoss(scale_weights=[1, 1])(fine, gt)
    with pytest.raises(ValueError, match="does not match the target"):
        loss(torch.rand(2, 1, 17, 23), gt)
