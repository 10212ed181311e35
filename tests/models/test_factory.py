"""Architectures by name: restore.create_model / list_architectures build what train.py's model/net=<name> builds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

import restore
from restore.models import factory
from restore.models.factory import ConfigsNotFoundError, UnknownArchitectureError

ROOT = Path(__file__).resolve().parents[2]


def test_list_architectures_is_every_net_config():
    names = restore.list_architectures()
    assert names == sorted(p.stem for p in (ROOT / "configs" / "model" / "net").glob("*.yaml"))
    assert {"unireplknet_tiny", "nafnet_tiny", "deeprft_tiny"} <= set(names)


def test_create_model_builds_what_train_py_builds(compose):
    # nafnet_tiny_cl has a defaults list (nafnet_tiny + channels_last): composed, not read as a plain file
    torch.manual_seed(0)
    net = restore.create_model("nafnet_tiny_cl")
    torch.manual_seed(0)
    expected = instantiate(compose("train", ["model/net=nafnet_tiny_cl"]).model.net)
    assert net.channels_last and type(net) is type(expected)
    for (name, a), (name_b, b) in zip(net.state_dict().items(), expected.state_dict().items(), strict=True):
        assert name == name_b
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_overrides_and_the_stored_config_round_trip(tmp_path):
    torch.manual_seed(0)
    net = restore.create_model("unireplknet_tiny", width=8, in_channels=1, block={"conv_impl": "fft"})
    assert net.in_channels == 1 and net.net_config["width"] == 8
    assert net.net_config["block"] == {"_target_": "restore.models.unireplknet.UniRepLKNetBlock", "_partial_": True,
                                       "deploy": False, "conv_impl": "fft"}  # merged, not replaced
    assert sum(p.numel() for p in net.parameters()) < sum(
        p.numel() for p in restore.create_model("unireplknet_tiny").parameters())
    # the config it carries is what export_model stores: no net_config= needed, loads back identical
    loaded = restore.load_model(restore.export_model(net, tmp_path / "net.safetensors"))
    x = torch.rand(1, 1, 20, 23)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net.eval()(x), rtol=0, atol=0)


def test_a_constructor_argument_the_config_leaves_out_is_accepted():
    # RestorationUNet's out_channels and global_residual: not in the yaml
    net = restore.create_model("nafnet_tiny", out_channels=1, global_residual=False)
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 1, 16, 16)


@pytest.mark.parametrize("name, overrides, message", [
    ("unireplknet_tny", {}, r"unknown architecture 'unireplknet_tny' \(did you mean 'unireplknet_tiny'"),
    ("nafnet_tiny", {"widht": 8}, r"has no setting 'widht' \(did you mean 'width'\?\)"),
])
def test_unknown_names_list_close_matches(name, overrides, message):
    with pytest.raises(UnknownArchitectureError, match=message) as err:
        restore.create_model(name, **overrides)
    assert "nafnet_tiny" in str(err.value)  # the names (or settings) that exist are listed


def test_without_the_repository_configs_the_error_names_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path / "checkout"))
    monkeypatch.setattr(factory, "__file__", str(tmp_path / "site-packages" / "restore" / "models" / "factory.py"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigsNotFoundError) as err:
        restore.create_model("nafnet_tiny")
    message = str(err.value)
    for place in (tmp_path / "checkout" / "configs", tmp_path / "site-packages" / "configs", tmp_path / "configs"):
        assert str(place) in message
    assert "PROJECT_ROOT" in message
