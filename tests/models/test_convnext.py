"""ConvNeXt block and U-Net: the paper's layout, odd input sizes, deploy form."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from timm.layers import LayerNorm

from restore.models.convnext import ConvNeXtBlock
from restore.models.reparam import reparameterize
from restore.models.unet import RestorationUNet


def test_block_follows_the_paper():
    block = ConvNeXtBlock(16)
    assert block.dwconv.kernel_size == (7, 7) and block.dwconv.groups == 16
    assert isinstance(block.norm, LayerNorm)
    assert block.mlp.fc1.out_features == 64
    assert torch.allclose(block.gamma, torch.full((16,), 1e-6))
    x = torch.randn(2, 16, 9, 11)
    assert block(x).shape == x.shape


@pytest.mark.parametrize("size", [(33, 47), (15, 22)])
def test_unet_any_input_size_and_kernel_sizes(size):
    net = RestorationUNet(ConvNeXtBlock, width=8, enc_blocks=(1, 1), middle_blocks=1, kernel_sizes=(7, 5, 3)).eval()
    assert net.encoder.levels[1][0].dwconv.kernel_size == (5, 5)
    assert net.middle[0].dwconv.kernel_size == (3, 3)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        assert net(x).shape == x.shape


def test_reparameterize_and_deploy_checkpoint():
    kw = dict(width=8, enc_blocks=(1, 1), middle_blocks=1, kernel_sizes=(7, 7, 7))
    net = RestorationUNet(ConvNeXtBlock, **kw)
    for m in net.modules():
        if isinstance(m, ConvNeXtBlock):
            m.gamma.data.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(1, 3, 21, 26)
    with torch.no_grad():
        ref = net(x)
        out = reparameterize(net)(x)
    assert ((out - ref).abs().max() / (ref - x).abs().max()) <= 1e-5
    fresh = RestorationUNet(partial(ConvNeXtBlock, deploy=True), **kw).eval()
    fresh.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(x), out)
