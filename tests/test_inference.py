import numpy as np
import pytest
import torch
from PIL import Image

import restore
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
    with pytest.raises(ValueError, match="tile_overlap"):
        restore.restore_image(net, torch.rand(3, 40, 40), tile=16, tile_overlap=16)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        restore.restore_image(net, "missing.png")
