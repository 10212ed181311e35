"""UniRepLKNet: exact dilated→dense kernels, re-parameterisation, deploy checkpoints, training."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from timm.utils.model import reparameterize_model
from torch import nn

from restore.models.reparam import reparameterize
from restore.models.unet import RestorationUNet
from restore.models.unireplknet import (
    DRB_BRANCHES,
    DilatedReparamBlock,
    UniRepLKNetBlock,
    dilated_to_dense_kernel,
    fft_depthwise_conv2d,
)

RTOL = 1e-5


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine parameters, non-trivial layer scale and GRN (else folding them is untested)."""
    g = torch.Generator().manual_seed(seed)

    def u(t: torch.Tensor, lo: float, hi: float) -> None:
        t.data.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            u(m.running_mean, -0.5, 0.5)
            u(m.running_var, 0.5, 2.0)
            u(m.weight, 0.5, 1.5)
            u(m.bias, -0.5, 0.5)
        if isinstance(m, UniRepLKNetBlock):
            u(m.gamma, 0.5, 1.5)
            u(m.grn.weight, -1.0, 1.0)
            u(m.grn.bias, -0.5, 0.5)
    return model


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("dilation", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("k", [3, 5])
def test_dilated_to_dense_kernel_equals_dilated_conv(k, dilation):
    g = torch.Generator().manual_seed(dilation)
    w = torch.randn(4, 1, k, k, generator=g, dtype=torch.float64)
    dense = dilated_to_dense_kernel(w, dilation)
    span = dilation * (k - 1) + 1
    assert dense.shape == (4, 1, span, span)
    # the taps are moved, not computed: exact
    assert torch.equal(dense[..., ::dilation, ::dilation], w)
    assert dense.abs().sum() == w.abs().sum()
    x = torch.randn(2, 4, 23, 19, generator=g, dtype=torch.float64)
    pad = dilation * (k - 1) // 2
    ref = F.conv2d(x, w, padding=pad, dilation=dilation, groups=4)
    out = F.conv2d(x, dense, padding=span // 2, groups=4)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_dilated_to_dense_kernel_dense_layout():
    w = torch.randn(6, 2, 3, 3)
    dense = dilated_to_dense_kernel(w, 3)
    assert dense.shape == (6, 2, 7, 7)
    assert torch.equal(dense[..., ::3, ::3], w)


@pytest.mark.parametrize("kernel_size", sorted(DRB_BRANCHES))
def test_drb_reparameterized_equals_training_form(kernel_size):
    ks, rs = DRB_BRANCHES[kernel_size]
    drb = randomize(DilatedReparamBlock(8, kernel_size)).eval()
    assert len(drb.branch_convs) == len(ks)
    assert [c.dilation[0] for c in drb.branch_convs] == list(rs)
    x = torch.randn(2, 8, 21, 27)
    with torch.no_grad():
        ref = drb(x)
        drb.reparameterize()
        out = drb(x)
    assert rel_err(out, ref) <= RTOL
    assert drb.deploy and not hasattr(drb, "branch_convs")
    assert [type(m) for m in drb.children()] == [nn.Conv2d]


def test_drb_custom_branches_and_validation():
    drb = randomize(DilatedReparamBlock(4, 31, branch_kernel_sizes=(5, 7, 9, 3), branch_dilations=(1, 3, 3, 15))).eval()
    x = torch.randn(1, 4, 33, 35)
    with torch.no_grad():
        ref = drb(x)
        drb.reparameterize()
        assert rel_err(drb(x), ref) <= RTOL
    with pytest.raises(ValueError, match="no default dilated branches"):
        DilatedReparamBlock(4, 19)
    with pytest.raises(ValueError, match="spanning"):
        DilatedReparamBlock(4, 7, branch_kernel_sizes=(5,), branch_dilations=(2,))
    with pytest.raises(ValueError, match="odd"):
        DilatedReparamBlock(4, 8)


@pytest.mark.parametrize("kernel_size", [3, 5, 7, 9, 11, 13, 15, 17])
def test_block_reparameterized_equals_training_form(kernel_size):
    block = randomize(UniRepLKNetBlock(8, kernel_size)).eval()
    n_train = sum(p.numel() for p in block.parameters())
    x = torch.randn(2, 8, 17, 13)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        out = block(x)
        block.reparameterize()  # idempotent
        again = block(x)
    # compare the residual branches (the identity part would hide errors)
    assert rel_err(out - x, ref - x) <= RTOL
    assert torch.equal(again, out)
    assert sum(p.numel() for p in block.parameters()) < n_train
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    assert block.gamma is None and "grn.bias" not in block.state_dict()


def test_fft_depthwise_conv_equals_direct():
    g = torch.Generator().manual_seed(0)
    for k in (3, 13, 31):
        x = torch.randn(2, 3, 29, 40, generator=g, dtype=torch.float64)
        w = torch.randn(3, 1, k, k, generator=g, dtype=torch.float64)
        b = torch.randn(3, generator=g, dtype=torch.float64)
        torch.testing.assert_close(fft_depthwise_conv2d(x, w, b), F.conv2d(x, w, b, padding=k // 2, groups=3),
                                   rtol=0, atol=1e-10)


@pytest.mark.parametrize("deploy_first", [False, True])
def test_fft_conv_impl_equals_direct(deploy_first):
    direct = randomize(UniRepLKNetBlock(8, 31, branch_kernel_sizes=(5, 3), branch_dilations=(3, 10))).eval()
    fft = copy.deepcopy(direct)
    fft.conv_impl = fft.dwconv.conv_impl = "fft"
    if deploy_first:
        direct.reparameterize()
        fft.reparameterize()
    x = torch.randn(1, 8, 37, 35)
    with torch.no_grad():
        assert rel_err(fft(x) - x, direct(x) - x) <= RTOL
    built = UniRepLKNetBlock(8, 31, branch_kernel_sizes=(5, 3), branch_dilations=(3, 10), conv_impl="fft")
    assert built.dwconv.conv_impl == "fft"


def tiny_net(deploy: bool = False, conv_impl: str = "direct", **kw) -> nn.Module:
    block = partial(UniRepLKNetBlock, deploy=deploy, conv_impl=conv_impl)
    return RestorationUNet(block, width=8, enc_blocks=(1, 1), middle_blocks=1, kernel_sizes=(7, 13, 5), **kw)


@pytest.mark.parametrize("size", [(37, 41), (32, 32)])
def test_network_reparameterized_equals_training_form(size):
    net = randomize(tiny_net()).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        ref = net(x)
        out = reparameterize(net)(x)
    assert out.shape == x.shape
    assert rel_err(out - x, ref - x) <= RTOL


def test_timm_reparameterize_model_works_on_our_net():
    net = randomize(tiny_net()).eval()
    x = torch.randn(1, 3, 24, 28)
    deployed = reparameterize_model(net)  # a converted copy
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    with torch.no_grad():
        assert rel_err(deployed(x) - x, net(x) - x) <= RTOL
    ours = reparameterize(copy.deepcopy(net))
    assert ours.state_dict().keys() == deployed.state_dict().keys()


def test_deploy_checkpoint_loads_into_deploy_constructed_net(tmp_path):
    net = randomize(tiny_net()).eval()
    n_train = sum(p.numel() for p in net.parameters())
    reparameterize(net)
    assert sum(p.numel() for p in net.parameters()) < n_train
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert not any(k.startswith("branch") or ".branch_" in k for k in net.state_dict())
    path = tmp_path / "deploy.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    fresh = tiny_net(deploy=True).eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fresh.modules())
    fresh.load_state_dict(load_file(str(path)), strict=True)
    x = torch.randn(2, 3, 29, 31)
    with torch.no_grad():
        assert torch.equal(fresh(x), net(x))


def test_fft_conv_impl_network_loads_the_same_weights():
    direct = randomize(tiny_net()).eval()
    fft = tiny_net(conv_impl="fft").eval()
    fft.load_state_dict(direct.state_dict(), strict=True)
    x = torch.randn(1, 3, 26, 35)
    with torch.no_grad():
        assert rel_err(fft(x) - x, direct(x) - x) <= RTOL
        reparameterize(direct)
        reparameterize(fft)
        assert rel_err(fft(x) - x, direct(x) - x) <= RTOL


def test_channels_last_equals_default_layout():
    net = randomize(tiny_net()).eval()
    cl = copy.deepcopy(net)
    cl.channels_last = True
    x = torch.randn(1, 3, 27, 30)
    with torch.no_grad():
        out = cl(x)
        assert out.is_contiguous()
        assert rel_err(out - x, net(x) - x) <= RTOL


def test_gradients_reach_every_parameter_and_loss_decreases(pair_dataset):
    torch.manual_seed(0)
    data = pair_dataset(n=4, size=32)
    lq, gt = data.lq, data.gt
    net = tiny_net(drop_path_rate=0.1).train()
    F.l1_loss(net(lq), gt).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = F.l1_loss(net(lq), gt)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="kernel_size"):
        UniRepLKNetBlock(8, 4)
    with pytest.raises(ValueError, match="conv_impl"):
        UniRepLKNetBlock(8, 7, conv_impl="winograd")
