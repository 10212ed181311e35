"""restore.checkpoint: loading never runs code from the file, corrupt or non-finite files are named,
every shipped network exports and loads back (both forms)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import restore
from restore.checkpoint import (
    MissingNetConfigError,
    NonFiniteWeightsError,
    UnsafeCheckpointError,
    build_net,
    check_net_config,
)
from restore.models import allowlist
from restore.models.factory import compose_net_config
from restore.weights_io import save_weights

ROOT = Path(__file__).resolve().parents[1]
NET_CONFIGS = sorted((ROOT / "configs" / "model" / "net").glob("*.yaml"))
TINY_UNET = {"_target_": "restore.models.unet.RestorationUNet", "in_channels": 3, "width": 8,
             "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1]}


def write_weights(path: Path, config: dict, state: dict | None = None) -> Path:
    """A .safetensors (config in the metadata) or a .ckpt (config in the dict, loads with weights_only)."""
    state = state if state is not None else {"w": torch.zeros(1)}
    if path.suffix == ".safetensors":
        save_file(state, str(path), metadata={"format": "restore", "net_config": json.dumps(config),
                                               "deploy": "false"})
    else:
        torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}, "net_config": config}, path)
        torch.load(path, weights_only=True)  # the attack file is a valid safe-to-unpickle checkpoint
    return path


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_hub_load_chain_runs_nothing(tmp_path, suffix):
    """Attack (a): Path.write_text writes a hubconf.py, torch.hub.load(source="local") imports it."""
    repo, marker = tmp_path / "repo", tmp_path / "pwned.txt"
    repo.mkdir()
    hubconf = f"open({str(marker)!r}, 'w').write('ran')\ndef entry(**kwargs):\n    return None\n"
    attack = {"_target_": "torch.hub.load", "repo_or_dir": str(repo), "model": "entry", "source": "local",
              "trust_repo": True, "verbose": False,
              "payload": {"_target_": "pathlib.Path.write_text",
                          "self": {"_target_": "pathlib.Path", "_args_": [str(repo / "hubconf.py")]},
                          "data": hubconf}}
    path = write_weights(tmp_path / f"evil{suffix}", attack)
    before = files_under(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match=rf"evil\{suffix}.*'torch.hub.load'"):
        restore.load_model(path)
    assert files_under(tmp_path) == before
    assert not (repo / "hubconf.py").exists() and not marker.exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_open_for_writing_truncates_nothing(tmp_path, suffix):
    """Attack (b): builtins.open(mode="w") would truncate any file the user can write."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = write_weights(tmp_path / f"evil{suffix}", {"_target_": "builtins.open", "file": str(victim), "mode": "w"})
    before = files_under(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match=rf"evil\{suffix}.*'builtins.open'"):
        restore.load_model(path)
    assert victim.read_text() == "precious"
    assert files_under(tmp_path) == before


OPEN = {"_target_": "builtins.open", "file": "victim.txt", "mode": "w"}


@pytest.mark.parametrize("config, named", [
    ({**TINY_UNET, "block": OPEN}, "builtins.open"),  # nested in an allowed target
    ({**TINY_UNET, "block": {**OPEN, "_partial_": True}}, "builtins.open"),  # _partial_ to a refused one
    ({**TINY_UNET, "enc_blocks": [1, [OPEN]]}, "builtins.open"),  # in a list, two deep
    ({**TINY_UNET, "_args_": [{"x": OPEN}]}, "builtins.open"),  # inside _args_
    ({**TINY_UNET, "extra": {"plain": {"deeper": OPEN}}}, "builtins.open"),  # in plain dicts
    ({**TINY_UNET, "width": "${oc.env:HOME}"}, "interpolation"),  # resolvers could run code
    ({**TINY_UNET, "${oc.env:HOME}": 1}, "interpolation"),
    ({**TINY_UNET, "_recursive_": False}, "_recursive_"),  # unknown special keys
    ({**TINY_UNET, "_convert_": "all"}, "_convert_"),
    ({**TINY_UNET, "extra": {"_partial_": True}}, "_partial_ without a _target_"),
    ({**TINY_UNET, "extra": {"_args_": [OPEN]}}, "_args_ without a _target_"),
    ({**TINY_UNET, "_target_": ["restore.models.unet.RestorationUNet"]}, "not an allowed"),
    ({**TINY_UNET, "_target_": "restore.models.unet.RestorationUNet.__init__"}, "not an allowed"),
    ({**TINY_UNET, "_target_": " restore.models.unet.RestorationUNet"}, "not an allowed"),
    ([TINY_UNET], "must be a mapping"),
    ({**TINY_UNET, "_partial_": True}, "cannot be a partial"),
    ({**TINY_UNET, "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": "yes"}}, "true or false"),
])
def test_every_nested_target_and_special_key_is_checked(config, named):
    with pytest.raises(UnsafeCheckpointError, match=named) as err:
        check_net_config(config, "some/file.safetensors")
    assert "some/file.safetensors" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_refused_before_anything_is_built(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr("restore.checkpoint.instantiate", lambda *a, **k: built.append(a))
    path = write_weights(tmp_path / "evil.safetensors", {**TINY_UNET, "block": {**OPEN, "_partial_": True}})
    with pytest.raises(UnsafeCheckpointError, match="evil.safetensors.*builtins.open"):
        restore.load_model(path)
    assert built == []


def test_registered_network_loads_and_unregistered_names_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setattr(allowlist, "_registered", set())
    config = {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 3, "kernel_size": 3, "padding": 1}
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    path = restore.export_model(net, tmp_path / "mine.safetensors", net_config=config)
    with pytest.raises(UnsafeCheckpointError, match="register_network"):
        restore.load_model(path)
    assert isinstance(restore.load_model(path, net=torch.nn.Conv2d(3, 3, 3, padding=1)), torch.nn.Conv2d)
    assert restore.register_network("torch.nn.Conv2d") == "torch.nn.Conv2d"
    loaded = restore.load_model(path)
    torch.testing.assert_close(loaded.weight, net.weight)
    assert restore.register_network(torch.nn.Linear) is torch.nn.Linear  # usable as a decorator
    check_net_config({"_target_": "torch.nn.modules.linear.Linear", "in_features": 1, "out_features": 1})
    with pytest.raises(ValueError, match="dotted name"):
        restore.register_network("Conv2d")


@pytest.mark.parametrize("config_path", NET_CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_net_exports_and_loads_back_in_both_forms(tmp_path, config_path):
    config = compose_net_config(Path(config_path).stem)
    config["width"] = 8  # the same targets and layout, at a size that keeps the test fast
    torch.manual_seed(0)
    net = build_net(config, source=config_path).eval()  # the allowlist accepts every shipped config
    x = torch.rand(1, config.get("in_channels", 3), 19, 21)
    path = restore.export_model(net, tmp_path / "net.safetensors", net_config=config)
    loaded = restore.load_model(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
        deployed = restore.load_model(path, deploy=True)
        expected = deployed(x)
        torch.testing.assert_close(expected, net(x), rtol=1e-4, atol=1e-4)
        again = restore.load_model(restore.export_model(deployed, tmp_path / "deploy.safetensors"))
        torch.testing.assert_close(again(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("block", ["restore.models.nafnet.NAFBlock", "restore.models.convnext.ConvNeXtBlock",
                                   "restore.models.unireplknet.UniRepLKNetBlock"])
def test_skeleton_plus_block_config_round_trips_in_deploy_form(tmp_path, block):
    """The coming net-config form: deploy goes to the block (only where it takes a `deploy` argument)."""
    config = {**TINY_UNET, "kernel_sizes": [3, 5, 7], "block": {"_target_": block, "_partial_": True}}
    torch.manual_seed(0)
    net = build_net(config).eval()
    x = torch.rand(1, 3, 16, 16)
    path = restore.export_model(net, tmp_path / "net.safetensors", net_config=config)
    with torch.no_grad():
        deployed = restore.load_model(path, deploy=True)
        again = restore.load_model(restore.export_model(deployed, tmp_path / "deploy.safetensors"))
        torch.testing.assert_close(again(x), deployed(x), rtol=0, atol=0)
        torch.testing.assert_close(deployed(x), net(x), rtol=1e-4, atol=1e-4)
    assert "deploy" not in again.net_config  # never at the top of a skeleton config


def tiny_nafnet_state() -> tuple[dict, dict]:
    config = {**TINY_UNET, "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True}}
    return build_net(config).state_dict(), config


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_name_the_file_and_tensor(tmp_path, suffix, bad):
    state, config = tiny_nafnet_state()
    state["encoder.levels.0.0.conv2.weight"].view(-1)[3] = bad
    path = write_weights(tmp_path / f"diverged{suffix}", config, state)
    with pytest.raises(NonFiniteWeightsError, match=rf"diverged\{suffix}.*encoder\.levels\.0\.0\.conv2\.weight"):
        restore.load_model(path)
    with pytest.raises(NonFiniteWeightsError, match="encoder.levels.0.0.conv2.weight"):
        restore.load_model(path, net=build_net(config))


@pytest.mark.parametrize("content", [b"", b"\x80\x02}q\x00.", bytes(range(256)) * 8, "truncated"])
def test_corrupt_ckpt_is_named_and_never_suggests_weights_only_false(tmp_path, content):
    path = tmp_path / "broken.ckpt"
    if content == "truncated":
        state, config = tiny_nafnet_state()
        write_weights(tmp_path / "good.ckpt", config, state)
        content = (tmp_path / "good.ckpt").read_bytes()[:-200]
    path.write_bytes(content)
    with pytest.raises(OSError, match="broken.ckpt") as err:
        restore.load_model(path)
    assert "weights_only" not in str(err.value) and "False" not in str(err.value)


def test_ckpt_with_python_objects_is_refused_without_advice(tmp_path):
    path = tmp_path / "objects.ckpt"
    torch.save({"state_dict": {}, "net_config": TINY_UNET, "why": Path("x")}, path)
    with pytest.raises(OSError, match="objects.ckpt") as err:
        restore.load_model(path)
    assert "weights_only" not in str(err.value) and "add_safe_globals" not in str(err.value)


@pytest.mark.parametrize("content", [b"", bytes(range(256)) * 8, "truncated"])
def test_corrupt_safetensors_is_named(tmp_path, content):
    path = tmp_path / "broken.safetensors"
    if content == "truncated":
        state, config = tiny_nafnet_state()
        content = write_weights(tmp_path / "good.safetensors", config, state).read_bytes()[:-100]
    path.write_bytes(content)
    with pytest.raises(OSError, match="broken.safetensors"):
        restore.load_model(path)


def test_file_without_config_asks_for_the_net(tmp_path):
    state, config = tiny_nafnet_state()
    path = tmp_path / "bare.ckpt"
    torch.save({"params": state}, path)  # BasicSR-style bare weights
    with pytest.raises(MissingNetConfigError, match="bare.ckpt.*net="):
        restore.load_model(path)
    assert restore.load_model(path, net=build_net(config)).checkpoint_path == str(path)


def test_sparse_exports_load_without_the_pruning_package(tmp_path, monkeypatch):
    """One owner of the weights format (restore.weights_io): reading a restore-sparse file needs nothing
    from restore.pruning (which imports the format's module, never the other way)."""
    state, config = tiny_nafnet_state()
    state["intro.weight"] = state["intro.weight"] * (torch.rand_like(state["intro.weight"]) < 0.2)
    path = save_weights(state, tmp_path / "sparse.safetensors", config, sparse=True)
    assert json.loads(safe_metadata(path)["sparse"]).keys() >= {"intro.weight"}
    for name in [m for m in sys.modules if m == "restore.pruning" or m.startswith("restore.pruning.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "restore.pruning", None)  # `import restore.pruning` now fails
    torch.testing.assert_close(restore.load_model(path).intro.weight, state["intro.weight"], rtol=0, atol=0)


def safe_metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_weights_of_a_refused_file_load_into_a_given_net_without_its_config(tmp_path):
    state, config = tiny_nafnet_state()
    path = write_weights(tmp_path / "odd.safetensors", {**config, "block": OPEN}, state)
    net = restore.load_model(path, net=build_net(config))
    assert not hasattr(net, "net_config")  # the refused config is not kept for re-export
    torch.testing.assert_close(net.intro.weight, state["intro.weight"])


UNET_NAF = {**TINY_UNET, "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True}}


def test_load_pretrained_copies_the_weights_and_leaves_the_net_training(tmp_path):
    from restore.checkpoint import load_pretrained

    torch.manual_seed(0)
    source = build_net(UNET_NAF)
    path = restore.export_model(source, tmp_path / "pre.safetensors", net_config=UNET_NAF)
    torch.manual_seed(1)
    net = build_net(UNET_NAF).train()
    assert any(not torch.equal(a, b) for a, b in zip(net.state_dict().values(), source.state_dict().values()))
    load_pretrained(net, path)
    assert net.training
    for key, value in source.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key


def test_load_pretrained_names_a_missing_file_and_a_mismatching_architecture(tmp_path):
    from restore.checkpoint import load_pretrained

    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        load_pretrained(build_net(UNET_NAF), tmp_path / "nowhere.ckpt")
    path = restore.export_model(build_net(UNET_NAF), tmp_path / "w8.safetensors", net_config=UNET_NAF)
    wider = build_net({**UNET_NAF, "width": 16})
    with pytest.raises(RuntimeError, match=r"pretrained=.*w8\.safetensors.*shape mismatches \['intro"):
        load_pretrained(wider, path)
