"""InceptionNeXt: token mixer shapes, InceptionNeXt block, U-Net on odd sizes, deploy form."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from restore.models.inceptionnext import InceptionDWConv2d, InceptionNeXtBlock
from restore.models.reparam import reparameterize
from restore.models.unet import RestorationUNet


def test_token_mixer_shapes_and_split():
    mixer = InceptionDWConv2d(16, square_kernel_size=3, band_kernel_size=9)
    assert mixer.split_indexes == (10, 2, 2, 2)
    assert mixer.dwconv_hw.kernel_size == (3, 3)
    assert mixer.dwconv_w.kernel_size == (1, 9) and mixer.dwconv_h.kernel_size == (9, 1)
    x = torch.randn(2, 16, 13, 17)
    y = mixer(x)
    assert y.shape == x.shape
    assert torch.equal(y[:, :10], x[:, :10])  # identity branch


def test_metanext_block_follows_the_paper():
    block = InceptionNeXtBlock(16, kernel_size=7)
    assert block.token_mixer.dwconv_w.kernel_size == (1, 7)
    assert isinstance(block.norm, nn.BatchNorm2d)
    assert block.mlp.fc1.out_channels == 64
    assert torch.allclose(block.gamma, torch.full((16,), 1e-6))
    x = torch.randn(2, 16, 11, 9)
    assert block(x).shape == x.shape
    with pytest.raises(ValueError, match="branch_ratio"):
        InceptionNeXtBlock(4)


@pytest.mark.parametrize("size", [(33, 47), (16, 21)])
def test_unet_any_input_size(size):
    net = RestorationUNet(InceptionNeXtBlock, width=8, enc_blocks=(1, 1), middle_blocks=1,
                          kernel_sizes=(11, 7, 5)).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        assert net(x).shape == x.shape


def test_reparameterize_and_deploy_checkpoint():
    net = RestorationUNet(InceptionNeXtBlock, width=8, enc_blocks=(1, 1), middle_blocks=1, kernel_sizes=(11, 7, 5))
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        if isinstance(m, InceptionNeXtBlock):
            m.gamma.data.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(1, 3, 25, 31)
    with torch.no_grad():
        ref = net(x)
        out = reparameterize(net)(x)
    assert ((out - ref).abs().max() / (ref - x).abs().max()) <= 1e-5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    fresh = RestorationUNet(partial(InceptionNeXtBlock, deploy=True), width=8, enc_blocks=(1, 1), middle_blocks=1,
                            kernel_sizes=(11, 7, 5))
    fresh.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), out)
