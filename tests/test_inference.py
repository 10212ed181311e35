import numpy as np
import pytest
import torch
from PIL import Image

import restore
from restore.checkpoint import build_net
from restore.inference import restore_tensor
from restore.models.nafnet import NAFBlock
from restore.models.unet import RestorationUNet


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = RestorationUNet(NAFBlock, width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1)).eval()
    for block in model.modules():  # non-zero residual scales so the net is not the identity
        if hasattr(block, "beta"):
            block.beta.data.fill_(0.2)
            block.gamma.data.fill_(0.2)
    return model


class LocalNet(torch.nn.Module):
    """Two 3×3 convs: a receptive field of 5 px, so tiles with a wide overlap agree with the whole."""

    in_channels = 3

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x):
        return x + 0.1 * self.body(x)


@pytest.mark.parametrize("size", [(17, 23), (64, 31), (5, 9)])
def test_any_size_comes_back_the_same_size(net, size):
    out = restore.restore_image(net, torch.rand(3, *size))
    assert out.shape == (3, *size)


def test_kinds_come_back_as_given(net, tmp_path):
    rgb_u8 = (np.random.default_rng(0).random((21, 30, 3)) * 255).astype(np.uint8)
    out = restore.restore_image(net, rgb_u8)
    assert out.dtype == np.uint8 and out.shape == rgb_u8.shape
    gray_f = np.random.default_rng(1).random((19, 27)).astype(np.float32)
    out = restore.restore_image(net, gray_f)
    assert out.dtype == np.float32 and out.shape == gray_f.shape
    pil = Image.fromarray(rgb_u8)
    assert restore.restore_image(net, pil).size == pil.size
    path = tmp_path / "x.png"
    Image.fromarray(rgb_u8[..., 0]).save(path)
    out = restore.restore_image(net, path)
    assert isinstance(out, Image.Image) and out.mode == "L" and out.size == (30, 21)
    batch = torch.rand(2, 3, 16, 20, dtype=torch.float64)
    out = restore.restore_image(net, batch)
    assert out.shape == batch.shape and out.dtype == torch.float64


def test_gray_image_through_rgb_net_equals_replicated_channels(net):
    gray = torch.rand(1, 1, 24, 24)
    via_gray = restore_tensor(net, gray)
    with torch.no_grad():
        via_rgb = net(gray.expand(-1, 3, -1, -1)).mean(1, keepdim=True).clamp(0, 1)
    torch.testing.assert_close(via_gray, via_rgb)


def test_tiled_equals_untiled_for_a_local_network():
    x = torch.rand(1, 3, 70, 90)
    model = LocalNet().eval()
    whole = restore_tensor(model, x)
    tiled = restore_tensor(model, x, tile=32, tile_overlap=16)
    # the ramp gives the few pixels next to a tile edge (where zero padding differs) tiny weights
    assert (tiled - whole).abs().mean() < 1e-3
    assert (tiled - whole).abs().max() < 2e-2


def test_tiled_close_to_untiled_for_nafnet(net):
    x = torch.rand(1, 3, 64, 80)
    whole = restore_tensor(net, x)
    tiled = restore_tensor(net, x, tile=48, tile_overlap=16)
    assert (tiled - whole).abs().mean() < 0.02  # NAFNet's channel attention pools over each tile


def test_self_ensemble_of_an_equivariant_net_is_the_net():
    identity_like = torch.nn.Conv2d(3, 3, 1)
    torch.nn.init.eye_(identity_like.weight.data[:, :, 0, 0])
    identity_like.bias.data.zero_()
    x = torch.rand(1, 3, 13, 18)
    torch.testing.assert_close(restore_tensor(identity_like, x, ensemble=True), x)


def test_bad_input_is_named(net):
    with pytest.raises(ValueError, match="NaN"):
        restore.restore_image(net, np.full((8, 8), np.nan, dtype=np.float32))
    with pytest.raises(TypeError, match="unsupported image type"):
        restore.restore_image(net, [[0.5]])
    with pytest.raises(ValueError, match="H×W or H×W×C"):
        restore.restore_image(net, np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="tile overlap 16 must be in \\[0, 16\\)"):
        restore.restore_image(net, torch.rand(3, 40, 40), tile=16, tile_overlap=16)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        restore.restore_image(net, "missing.png")


class CountingNet(torch.nn.Module):
    """A 1×1 conv that counts its calls."""

    in_channels = 3

    def __init__(self):
        super().__init__()
        self.conv, self.calls = torch.nn.Conv2d(3, 3, 1), 0

    def forward(self, x):
        self.calls += 1
        return self.conv(x)


@pytest.mark.parametrize("image", [np.zeros((0, 0), np.uint8), np.zeros((0, 7, 3), np.float32),
                                   np.zeros((7, 0), np.uint8), torch.zeros(3, 0, 0), torch.zeros(0, 6, 6),
                                   torch.zeros(2, 3, 0, 6)], ids=lambda a: str(tuple(a.shape)))
def test_empty_image_is_refused_naming_the_shape_before_any_conv(image):
    model = CountingNet()
    with pytest.raises(ValueError, match=r"shape \(") as err:
        restore.restore_image(model, image)
    assert str(tuple(image.shape)) in str(err.value)
    assert model.calls == 0
    with pytest.raises(ValueError, match=r"empty image: shape \(1, 3, 0, 5\)"):
        restore_tensor(model, torch.zeros(1, 3, 0, 5))
    assert model.calls == 0


def test_unclipped_awgn_input_reaches_the_network_unchanged_as_eval_scores_it(net):
    """The standard AWGN protocol: σ = 50 noise added to a [0, 1] image, not clipped (eval.py's input)."""
    rng = np.random.default_rng(0)
    clean = rng.random((20, 24, 3)).astype(np.float32)
    noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * 50 / 255
    noisy[0, 0] = (-0.9, 1.98, 0.5)  # the extremes σ = 50 reaches on CBSD68
    with torch.no_grad():
        expected = net(torch.from_numpy(noisy).permute(2, 0, 1)[None]).clamp(0, 1)[0]
    out = restore.restore_image(net, noisy)
    assert out.dtype == np.float32 and out.shape == noisy.shape
    torch.testing.assert_close(torch.from_numpy(out).permute(2, 0, 1), expected, atol=1e-5, rtol=0)
    out = restore.restore_image(net, torch.from_numpy(noisy).permute(2, 0, 1).double())
    assert out.dtype == torch.float64 and 0 <= out.min() and out.max() <= 1  # output clipped, as documented
    torch.testing.assert_close(out.float(), expected, atol=1e-5, rtol=0)


def test_float_image_in_0_255_is_refused_naming_the_rule(net):
    image = np.random.default_rng(0).integers(0, 254, (12, 13, 3)).astype(np.float32)
    image[0, 0, 0] = 254.0
    with pytest.raises(ValueError, match=r"max 254 > 4: looks like 0–255 data.*divide it by 255 or give it as uint8"):
        restore.restore_image(net, image)
    with pytest.raises(ValueError, match=r"tensor image .* max 254 > 4: looks like 0–255 data"):
        restore.restore_image(net, torch.from_numpy(image).permute(2, 0, 1))
    with pytest.raises(ValueError, match="NaN or Inf"):
        restore.restore_image(net, np.where(image > 100, np.inf, image / 255).astype(np.float32))


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint32])
def test_arrays_without_an_implied_scale_are_refused(net, dtype):
    with pytest.raises(TypeError, match="uint8 .*uint16"):
        restore.restore_image(net, np.ones((9, 10, 3), dtype=dtype))


def test_integer_tensors_are_scaled_and_keep_dtype_and_shape(net):
    u8 = torch.randint(0, 256, (3, 17, 19), dtype=torch.uint8)
    out = restore.restore_image(net, u8)
    assert out.dtype == torch.uint8 and out.shape == u8.shape
    expected = restore.restore_image(net, u8.float() / 255)  # the same image given as floats
    assert (out.float() - expected * 255).abs().max() <= 0.5 + 1e-3
    u16 = torch.randint(0, 65536, (2, 3, 16, 16), dtype=torch.int32).to(torch.uint16)
    out = restore.restore_image(net, u16)
    assert out.dtype == torch.uint16 and out.shape == u16.shape


def test_every_kind_comes_back_in_its_dtype(net):
    rng = np.random.default_rng(0)
    for arr in (rng.random((9, 11)).astype(np.float16), rng.random((9, 11, 3)),
                (rng.random((9, 11)) * 65535).astype(np.uint16)):
        out = restore.restore_image(net, arr)
        assert out.dtype == arr.dtype and out.shape == arr.shape
    for mode, arr in (("I;16", (rng.random((9, 11)) * 65535).astype(np.uint16)),
                      ("F", rng.random((9, 11)).astype(np.float32)),
                      ("L", (rng.random((9, 11)) * 255).astype(np.uint8))):
        out = restore.restore_image(net, Image.fromarray(arr))
        assert out.mode == mode and out.size == (11, 9)


def test_gray_16bit_png_through_rgb_net_is_not_white(net, tmp_path):
    gray = np.full((16, 16), 20000, np.uint16)  # ≈ 0.31 of full scale
    path = tmp_path / "g16.png"
    Image.fromarray(gray).save(path)
    out = np.asarray(restore.restore_image(net, path)).astype(np.float64) / 65535
    assert abs(out.mean() - 20000 / 65535) < 0.1


def test_non_finite_output_names_the_model_file(tmp_path):
    config = {"_target_": "restore.models.unet.RestorationUNet", "width": 8, "enc_blocks": [1], "middle_blocks": 1,
              "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True}}
    path = restore.export_model(build_net(config), tmp_path / "model.safetensors", net_config=config)
    model = restore.load_model(path)
    with torch.no_grad():
        model.outro.bias.fill_(float("nan"))  # corrupted after loading
    with pytest.raises(RuntimeError, match="model.safetensors.*NaN or Inf"):
        restore.restore_image(model, torch.rand(3, 16, 16))
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        restore.restore_image(model, torch.rand(3, 16, 16), tile=8, tile_overlap=2)


def test_non_finite_input_is_blamed_on_the_input(net):
    with pytest.raises(ValueError, match="image tensor contains NaN"):
        restore_tensor(net, torch.full((1, 3, 8, 8), float("nan")))


@pytest.mark.parametrize("tile", [0, 2, -8])
def test_tile_zero_or_below_the_size_multiple_is_refused(net, tile):
    """tile=0 used to mean "no tiling" silently; a tile below the multiple cannot be padded consistently."""
    assert net.size_multiple == 4
    with pytest.raises(ValueError, match=f"tile size {tile} is below RestorationUNet's size multiple \\(4\\): use "
                                         "at least 4 .* or no tiling \\(None\\)"):
        restore.restore_image(net, torch.rand(3, 24, 24), tile=tile, tile_overlap=0)
    for not_a_size in (16.0, True):
        with pytest.raises(TypeError, match=f"an integer .* or None, got {not_a_size}"):
            restore.restore_image(net, torch.rand(3, 24, 24), tile=not_a_size, tile_overlap=0)
    restore.restore_image(net, torch.rand(3, 24, 24), tile=4, tile_overlap=0)  # the multiple itself runs
