import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from restore.metrics import ImageQualityMetrics, rgb_to_y_bt601


def _pair(seed=0, shape=(3, 3, 48, 56), noise=0.05):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(shape, generator=g)
    return (gt + noise * torch.randn(shape, generator=g)).clamp(0, 1), gt


def test_rgb_protocol_matches_scikit_image_per_image_mean():
    pred, gt = _pair()
    metric = ImageQualityMetrics("rgb")
    metric.update(pred[:2], gt[:2])
    metric.update(pred[2:], gt[2:])
    got = metric.compute()
    psnr = np.mean([peak_signal_noise_ratio(gt[i].numpy(), pred[i].numpy(), data_range=1) for i in range(3)])
    ssim = np.mean([structural_similarity(gt[i].permute(1, 2, 0).numpy(), pred[i].permute(1, 2, 0).numpy(),
                                          data_range=1, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False) for i in range(3)])
    assert metric.count == 3
    assert got["psnr"].item() == pytest.approx(psnr, abs=1e-4)
    assert got["ssim"].item() == pytest.approx(ssim, abs=1e-5)


def test_y_protocol_matches_scikit_image_on_bt601_luma_with_crop():
    pred, gt = _pair(1, (1, 3, 40, 40))
    metric = ImageQualityMetrics("y", crop_border=4)
    metric.update(pred, gt)
    got = metric.compute()

    def y(t):  # BasicSR: 8-bit image → skimage's BT.601 Y (16–235) / 255, border cropped
        u8 = (t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        return (rgb2ycbcr(u8)[..., 0] / 255.0)[4:-4, 4:-4]

    assert got["psnr"].item() == pytest.approx(peak_signal_noise_ratio(y(gt), y(pred), data_range=1), abs=1e-3)
    ssim = structural_similarity(y(gt), y(pred), data_range=1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    assert got["ssim"].item() == pytest.approx(ssim, abs=1e-4)


def test_protocols_give_different_numbers_and_say_so():
    pred, gt = _pair(2)
    rgb, y = ImageQualityMetrics("rgb"), ImageQualityMetrics("y", crop_border=4)
    for m in (rgb, y):
        m.update(pred, gt)
    assert abs(rgb.compute()["psnr"] - y.compute()["psnr"]) > 0.1
    assert rgb.description == "RGB [0,1], no crop"
    assert y.description == "Y (BT.601), crop 4, 8-bit"


def test_luma_range_and_gray_passthrough():
    white, black = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    assert rgb_to_y_bt601(white).max().item() == pytest.approx(235 / 255, abs=1e-4)
    assert rgb_to_y_bt601(black).min().item() == pytest.approx(16 / 255, abs=1e-6)
    m = ImageQualityMetrics("y")
    assert m.prepare(torch.rand(1, 1, 8, 8)).shape == (1, 1, 8, 8)


def test_bad_input():
    with pytest.raises(ValueError, match="protocol"):
        ImageQualityMetrics("lab")
    with pytest.raises(ValueError, match="shapes differ"):
        ImageQualityMetrics().update(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


def test_lpips_without_cached_weights_names_the_file(torch_hub_dir):
    with pytest.raises(FileNotFoundError, match=rf"{torch_hub_dir / 'checkpoints' / 'alexnet-owt-7be5be79.pth'}"):
        ImageQualityMetrics("rgb", lpips="alex")
    with pytest.raises(ValueError, match="lpips must be one of"):
        ImageQualityMetrics("rgb", lpips="resnet")


def test_lpips_from_cached_weights_orders_distortions(lpips_weights):
    metric = ImageQualityMetrics("y", crop_border=2, lpips="alex")
    assert "LPIPS-alex" in metric.description and metric.higher_is_better["lpips"] is False
    _, gt = _pair(2, (2, 3, 64, 64), 0.0)
    scores = []
    for noise in (0.0, 0.05, 0.2):
        metric.reset()
        metric.update((gt + noise * torch.randn_like(gt)).clamp(0, 1), gt)
        scores.append(metric.compute()["lpips"].item())
    assert scores[0] == pytest.approx(0.0, abs=1e-6) and scores[0] < scores[1] < scores[2]
    metric.reset()
    metric.update(gt[:, :1] * 0.5, gt[:, :1])  # gray images are repeated to RGB
    assert metric.compute()["lpips"].item() > 0


def test_metrics_are_float32_under_the_trainers_bf16_autocast():
    """GPU validation runs under ``precision: bf16-mixed``: SSIM's convolutions must not run in bf16 (its
    variance terms cancel: 0.48 instead of 0.85 on this pair before the fix)."""
    import skimage.data

    gt = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float() / 255
    blurred = torch.nn.functional.avg_pool2d(gt, 5, stride=1, padding=2)
    plain = ImageQualityMetrics("rgb")
    plain.update(blurred, gt)
    mixed = ImageQualityMetrics("rgb")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed.update(blurred.bfloat16(), gt)
    expected, got = plain.compute(), mixed.compute()
    assert got["ssim"] == pytest.approx(float(expected["ssim"]), abs=1e-3)
    assert got["psnr"] == pytest.approx(float(expected["psnr"]), abs=0.05)  # bf16 input rounding only
