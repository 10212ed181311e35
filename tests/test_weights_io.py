"""restore.weights_io: every weights file the toolkit writes carries a digest that loading verifies;
declared sizes are refused before anything of that size is allocated."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import restore
from restore.checkpoint import build_net
from restore.errors import DamagedFileError, UnverifiedWeightsWarning, WeightsSizeError
from restore.lightning import AtomicCheckpointIO
from restore.pruning import export_sparse, prune_round, select_prunable
from restore.weights_io import (
    CKPT_DIGEST_KEY,
    DIGEST_KEY,
    MAX_BYTES_ENV,
    max_weights_bytes,
    save_weights,
    weights_digest,
)

CONFIG = {"_target_": "restore.models.unet.RestorationUNet", "in_channels": 3, "width": 8,
          "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1],
          "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True}}


def tiny_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_net(CONFIG).eval()


def write(kind: str, folder: Path) -> tuple[Path, torch.nn.Module]:
    """A file of each kind the toolkit writes, and the network it holds."""
    net = tiny_net()
    if kind == "export":
        return restore.export_model(net, folder / "net.safetensors", net_config=CONFIG), net
    if kind == "sparse":
        prune_round(select_prunable(net), 2)
        return export_sparse(net, folder / "net.sparse.safetensors", CONFIG), net
    path = folder / "last.ckpt"  # as Lightning writes it, through the trainer config's checkpoint IO
    AtomicCheckpointIO().save_checkpoint({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                                          "net_config": CONFIG, "global_step": 3}, path)
    return path, net


def stored_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k).clone() for k in f.keys()}  # clone: safetensors maps the file
    return torch.load(path, weights_only=True)["state_dict"]


def test_the_digest_is_sha256_over_sorted_names_dtypes_shapes_and_bytes():
    a, b = torch.arange(6, dtype=torch.float32).reshape(2, 3), torch.tensor([True, False])
    by_hand = hashlib.sha256()
    for name, t in (("a", a), ("b", b)):  # sorted by name
        by_hand.update(json.dumps([name, str(t.dtype).removeprefix("torch."), list(t.shape)]).encode() + b"\n")
        by_hand.update(t.numpy().tobytes())
    assert weights_digest({"b": b, "a": a}) == "sha256:" + by_hand.hexdigest()  # insertion order is irrelevant
    one_bit = a.clone()
    one_bit.view(torch.int32)[1, 2] ^= 1  # the lowest mantissa bit of one value
    changed = [{"a": a, "c": b}, {"a": a.double(), "b": b}, {"a": a.reshape(3, 2), "b": b}, {"a": one_bit, "b": b}]
    assert len({weights_digest(t) for t in changed} | {weights_digest({"a": a, "b": b})}) == 5


@pytest.mark.parametrize("kind", ["export", "sparse", "ckpt"])
def test_every_file_written_stores_a_digest_that_verifies_on_load(tmp_path, kind):
    path, net = write(kind, tmp_path)
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            assert f.metadata()[DIGEST_KEY].startswith("sha256:")
    else:
        assert torch.load(path, weights_only=True)[CKPT_DIGEST_KEY].startswith("sha256:")
    x = torch.rand(1, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedWeightsWarning)
        loaded = restore.load_model(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["export", "sparse", "ckpt"])
def test_a_few_flipped_bytes_are_refused_naming_the_file(tmp_path, kind, damage_weights):
    """Issue 31: a file with flipped bytes whose weights stay finite evaluated silently at 4.84 dB."""
    path, _ = write(kind, tmp_path)
    before = stored_tensors(path)
    damage_weights(path)
    after = stored_tensors(path)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # damaged, yet a valid-looking file
    with pytest.raises(DamagedFileError, match=rf"{path.name} was modified or damaged: digest mismatch"):
        restore.load_model(path)
    with pytest.raises(DamagedFileError, match=path.name):
        restore.checkpoint.read_checkpoint(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_a_file_without_a_digest_loads_with_exactly_one_warning(tmp_path, suffix):
    net, path = tiny_net(), tmp_path / f"foreign{suffix}"
    if suffix == ".safetensors":
        save_file(net.state_dict(), str(path), metadata={"format": "restore", "net_config": json.dumps(CONFIG)})
    else:
        torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "net_config": CONFIG}, path)
    with pytest.warns(UnverifiedWeightsWarning, match=rf"foreign\{suffix} stores no weights digest") as record:
        restore.load_model(path)
    assert len([w for w in record if issubclass(w.category, UnverifiedWeightsWarning)]) == 1


def zip_bomb(path: Path, uncompressed: int, level: int = 1) -> Path:
    """A genuine checkpoint of the tiny network plus one deflated entry of ``uncompressed`` zero bytes."""
    torch.save({"state_dict": {f"net.{k}": v for k, v in tiny_net().state_dict().items()}, "net_config": CONFIG},
               path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        prefix = archive.namelist()[0].split("/")[0]
        with archive.open(f"{prefix}/data/99", "w", force_zip64=True) as entry:
            zeros = bytes(2**20)
            for _ in range(uncompressed // 2**20):
                entry.write(zeros)
    return path


def test_a_zip_bomb_checkpoint_is_refused_from_its_directory(tmp_path, monkeypatch):
    """Issue 31: a 2 MB zip-bomb .ckpt drove load_model to 6.5 GB; here 1.2 MB declares 256 MiB."""
    path = zip_bomb(tmp_path / "bomb.ckpt", 256 * 2**20)
    assert path.stat().st_size < 2 * 2**20
    start = time.perf_counter()
    with pytest.raises(WeightsSizeError, match=r"bomb\.ckpt: its zip entries declare .*256\.\d MiB .*over the "
                                               r"limit of 64\.0 MiB"):
        restore.load_model(path, max_bytes=64 * 2**20)
    assert time.perf_counter() - start < 1.0  # nothing was decompressed
    monkeypatch.setenv(MAX_BYTES_ENV, "64M")  # the same cap for callers that pass none (eval.py, restore run)
    with pytest.raises(WeightsSizeError, match=MAX_BYTES_ENV):
        restore.load_model(path)
    monkeypatch.delenv(MAX_BYTES_ENV)
    # under the cap, the compressed entry (torch.save never compresses) is refused all the same
    with pytest.raises(OSError, match=r"bomb\.ckpt.*compressed"):
        restore.load_model(path)


def test_a_sparse_export_declaring_34_gb_is_refused_before_densifying(tmp_path):
    """Issue 31: a 1.1 MB sparse export passed every check and asked for 34 GB."""
    side = 92_682  # float32 side² ≈ 34.4 GB
    tensors = {"intro.weight::values": torch.zeros(0), "intro.weight::indices": torch.zeros(0, dtype=torch.int32)}
    meta = {"format": "restore-sparse", "format_version": "1", "net_config": json.dumps(CONFIG), "deploy": "false",
            "sparse": json.dumps({"intro.weight": {"shape": [side, side], "dtype": "float32", "encoding": "indices",
                                                   "nnz": 0}}),
            DIGEST_KEY: weights_digest(tensors)}  # an honest digest: only the declared size is wrong
    save_file(tensors, str(tmp_path / "huge.safetensors"), metadata=meta)
    start = time.perf_counter()
    with pytest.raises(WeightsSizeError, match=r"huge\.safetensors: its sparse tensors declare \(dense\) 32\.0\d GiB "
                                               r"\(34359\d+ bytes\), over the limit of 4\.00 GiB"):
        restore.load_model(tmp_path / "huge.safetensors")
    assert time.perf_counter() - start < 1.0


def test_declared_shapes_that_do_not_fit_the_network_are_refused_before_reading(tmp_path, monkeypatch):
    net = tiny_net()
    state = dict(net.state_dict(), **{"intro.weight": torch.zeros(8, 3, 300, 300)})  # under the cap, wrong shape
    path = save_weights(state, tmp_path / "odd.safetensors", CONFIG, sparse=True)

    def densify(*args, **kwargs):
        raise AssertionError("densified before the shapes were compared")

    monkeypatch.setattr("restore.weights_io.densify_state_dict", densify)
    with pytest.raises(RuntimeError, match=r"odd\.safetensors.*shape mismatches.*intro\.weight \(8, 3, 300, 300\)"
                                           r"→\(8, 3, 3, 3\)"):
        restore.load_model(path)


def test_a_config_building_a_network_over_the_cap_is_refused_before_building_it(tmp_path, monkeypatch):
    wide = {**CONFIG, "width": 256}
    path = save_weights({"intro.weight": torch.zeros(1)}, tmp_path / "wide.safetensors", wide)
    built, instantiate = [], restore.checkpoint.instantiate

    def spy(config):
        built.append(torch.empty(0).device)  # the default device the network is built on
        return instantiate(config)

    monkeypatch.setattr("restore.checkpoint.instantiate", spy)
    with pytest.raises(WeightsSizeError, match=r"wide\.safetensors: the network its stored config builds needs"):
        restore.load_model(path, max_bytes=16 * 2**20)
    assert built == [torch.device("meta")]  # only the size probe, on the meta device


@pytest.mark.parametrize("text, value", [("123", 123), ("8G", 8 * 2**30), ("512MiB", 512 * 2**20), ("2t", 2 * 2**40)])
def test_the_cap_comes_from_the_argument_the_environment_or_the_default(monkeypatch, text, value):
    assert max_weights_bytes() == 4 * 2**30
    monkeypatch.setenv(MAX_BYTES_ENV, text)
    assert max_weights_bytes() == value and max_weights_bytes(5) == 5
    monkeypatch.setenv(MAX_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match=rf"\${MAX_BYTES_ENV}='lots'"):
        max_weights_bytes()


def test_a_file_of_a_newer_format_version_is_refused_naming_it(tmp_path):
    path = restore.export_model(tiny_net(), tmp_path / "net.safetensors", net_config=CONFIG)
    with safe_open(str(path), framework="pt") as f:
        tensors, meta = {k: f.get_tensor(k).clone() for k in f.keys()}, f.metadata()
    save_file(tensors, str(tmp_path / "newer.safetensors"), metadata={**meta, "format_version": "2"})
    with pytest.raises(OSError, match=r"newer\.safetensors: format_version '2'.*update restore"):
        restore.load_model(tmp_path / "newer.safetensors")
