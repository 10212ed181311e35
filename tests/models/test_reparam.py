"""restore.is_deployed: one rule for "is this network in its deploy form", used by the summary and
every weights file the toolkit writes."""

from __future__ import annotations

import pytest
import torch

import restore
from restore.checkpoint import build_net
from restore.models.summary import summarize
from restore.models.unireplknet import UniRepLKNetBlock

UNIREPLKNET = {"_target_": "restore.models.unet.RestorationUNet", "width": 8, "enc_blocks": [1], "middle_blocks": 1,
               "dec_blocks": [1], "kernel_sizes": [7, 9],
               "block": {"_target_": "restore.models.unireplknet.UniRepLKNetBlock", "_partial_": True}}
NAFNET = {**UNIREPLKNET, "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True}}


def test_a_unireplknet_is_deployed_after_reparameterize_and_not_before():
    torch.manual_seed(0)
    net = build_net(UNIREPLKNET).eval()
    assert not restore.is_deployed(net)
    assert "params_deploy" in summarize(net, (1, 3, 16, 16))  # counted in both forms
    restore.reparameterize(net)
    assert restore.is_deployed(net)
    assert "params_deploy" not in summarize(net, (1, 3, 16, 16))
    assert restore.is_deployed(build_net(UNIREPLKNET, deploy=True))


def test_a_partly_converted_network_is_not_deployed_and_is_not_saved(tmp_path):
    torch.manual_seed(0)
    net = build_net(UNIREPLKNET).eval()
    next(m for m in net.modules() if isinstance(m, UniRepLKNetBlock)).reparameterize()
    # the two rules this replaces said True (one block reports deploy), and the file then failed to load
    assert not restore.is_deployed(net)
    with pytest.raises(ValueError, match=r"partly re-parameterised \(\d+ of \d+ blocks\).*restore\.reparameterize"):
        restore.export_model(net, tmp_path / "half.safetensors", net_config=UNIREPLKNET)
    assert not (tmp_path / "half.safetensors").exists()
    path = restore.export_model(restore.reparameterize(net), tmp_path / "deploy.safetensors", net_config=UNIREPLKNET)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(restore.load_model(path)(x), net(x), rtol=0, atol=0)


def test_a_network_with_nothing_to_fold_has_only_its_training_form():
    net = build_net(NAFNET, deploy=True)  # NAFBlock accepts deploy=True; it has no other form
    assert any(getattr(m, "deploy", False) is True for m in net.modules())  # what the old rules went by
    assert not restore.is_deployed(net)
