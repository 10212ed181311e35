"""One contract for every network config (timm's test over ``list_models()`` is the model).

Every ``configs/model/net/*.yaml`` is built and checked the same way: odd sizes, gray and RGB,
gradients reaching every parameter, training form vs ``reparameterize()`` form, export → load round
trips in both forms with identical outputs, tiled vs whole-image ``restore_image``. A network added by
a later issue joins by adding its config.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import restore
from restore.inference import restore_tensor

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "model" / "net"
NET_CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def build(name: str, seed: int = 0, **overrides) -> tuple[nn.Module, dict]:
    """The net with every parameter moved off its init (zero-init residual scales would hide branches
    from the gradient check and make folding trivially exact) and random BN statistics."""
    torch.manual_seed(seed)
    net = restore.create_model(name, **overrides)
    config = net.net_config
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=g))
    return net, config


def rel_err(a: torch.Tensor, b: torch.Tensor, ref: torch.Tensor) -> float:
    """Max |a − b| relative to the network's own residual (outputs are input + a small residual)."""
    return ((a - b).abs().max() / (b - ref).abs().max().clamp_min(1e-12)).item()


@pytest.fixture(params=NET_CONFIGS)
def name(request) -> str:
    return request.param


def test_every_net_config_is_covered():
    assert {"nafnet_tiny", "convnext_tiny", "inceptionnext_tiny", "unireplknet_tiny"} <= set(NET_CONFIGS)


@pytest.mark.parametrize("channels", [1, 3])
def test_odd_sizes_gray_and_rgb_and_gradients(name, channels):
    net, _ = build(name, in_channels=channels)
    net.train()
    x = torch.rand(2, channels, 19, 27)
    out = net(x)
    assert out.shape == x.shape
    F.l1_loss(out, torch.rand_like(x)).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


def test_encode_decode_reconstruct_is_forward(name):
    net, _ = build(name)
    net.eval()
    x = torch.rand(1, 3, 32, 48)
    if getattr(net, "channels_last", False):  # the memory format forward() runs the parts in: same rounding
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        latent, skips = net.encode(x)
        assert latent.shape[1] == net.latent_channels and len(skips) == len(net.decoder.levels)
        levels = net.decode(latent, skips, return_levels=True)
        assert levels[-1].shape == (1, net.width, 32, 48)
        torch.testing.assert_close(net.reconstruct(levels[-1], x), net(x), rtol=0, atol=0)


def test_reparameterized_form_and_export_round_trips(name, tmp_path):
    net, config = build(name)
    net.eval()
    x = torch.rand(1, 3, 21, 26)
    with torch.no_grad():
        ref = net(x)
        # training form: export → load gives identical outputs
        path = restore.export_model(net, tmp_path / "train.safetensors", net_config=config)
        torch.testing.assert_close(restore.load_model(path)(x), ref, rtol=0, atol=0)
        # deploy form equals the training form in eval mode
        deployed = restore.reparameterize(copy.deepcopy(net))
        out = deployed(x)
        assert rel_err(out, ref, x) <= 1e-5, name
        # ... and its export loads through the deploy constructor, identically
        dpath = restore.export_model(deployed, tmp_path / "deploy.safetensors", net_config=config)
        loaded = restore.load_model(dpath)
        assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in deployed.parameters())
        torch.testing.assert_close(loaded(x), out, rtol=0, atol=0)
        # load_model(deploy=True) of the training file, re-exported, loads back too (every block takes deploy)
        again = restore.export_model(restore.load_model(path, deploy=True), tmp_path / "again.safetensors")
        torch.testing.assert_close(restore.load_model(again)(x), out, rtol=0, atol=0)


def test_tiled_and_whole_image_restoration(name):
    if "base" in name:
        pytest.skip("tiling is the same code for every size; the tiny nets cover it")
    net, _ = build(name)
    net.eval()
    x = torch.rand(1, 3, 45, 61)
    whole = restore_tensor(net, x)
    # one tile covering the image is the whole-image path (up to the blend weights' division)
    torch.testing.assert_close(restore_tensor(net, x, tile=64, tile_overlap=8), whole, rtol=0, atol=1e-6)
    tiled = restore_tensor(net, x, tile=32, tile_overlap=12)
    assert tiled.shape == x.shape and torch.isfinite(tiled).all()
    # tiles start at rows (0, 13) and columns (0, 20, 29): the top-left 13×20 pixels lie in the first tile
    # alone, so there the blend must return exactly what the net makes of that tile
    with torch.no_grad():
        first = net(x[..., :32, :32]).clamp(0, 1)
    torch.testing.assert_close(tiled[..., :13, :20], first[..., :13, :20], rtol=0, atol=1e-6)
    assert not torch.allclose(tiled, whole, atol=1e-4)  # tiles see less context: elsewhere they differ
