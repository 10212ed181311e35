"""restore-sparse export: round trip through restore.load_model, size, validation, deploy form."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import restore
from restore.errors import DamagedFileError, UnverifiedWeightsWarning
from restore.models.reparam import reparameterize
from restore.pruning import densify_state_dict, export_sparse, make_permanent, prune_round, select_prunable
from restore.pruning.sparse import encode_state_dict, pack_bits, unpack_bits

NAF_CONFIG = {"_target_": "restore.models.unet.RestorationUNet",
              "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True},
              "width": 8, "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1]}
URLK_CONFIG = {"_target_": "restore.models.unet.RestorationUNet",
               "block": {"_target_": "restore.models.unireplknet.UniRepLKNetBlock", "_partial_": True, "deploy": False},
               "width": 8, "enc_blocks": [1], "middle_blocks": 1, "dec_blocks": [1], "kernel_sizes": [7, 9]}


def pruned(config: dict, rounds: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = restore.checkpoint.build_net(config)
    weights = select_prunable(net)
    for r in range(1, rounds + 1):
        prune_round(weights, r)
    return net.eval()


def read(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


@pytest.mark.parametrize("encoding", ["auto", "indices", "bitmask"])
def test_export_load_round_trip_gives_identical_outputs(tmp_path, encoding):
    net = pruned(NAF_CONFIG, 3)
    path = export_sparse(net, tmp_path / "net.safetensors", NAF_CONFIG, encoding=encoding)
    loaded = restore.load_model(path)
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    tensors, meta = read(path)
    assert meta["format"] == "restore-sparse" and json.loads(meta["net_config"])["width"] == 8
    encodings = {v["encoding"] for v in json.loads(meta["sparse"]).values()}
    assert encodings and (encoding == "auto" or encodings == {encoding})


def test_file_shrinks_with_sparsity(tmp_path):
    dense = restore.export_model(pruned(NAF_CONFIG, 0), tmp_path / "dense.safetensors", NAF_CONFIG)
    sizes = [export_sparse(pruned(NAF_CONFIG, r), tmp_path / f"r{r}.safetensors", NAF_CONFIG).stat().st_size
             for r in (2, 6, 10)]
    assert sizes[0] < dense.stat().st_size and sizes[0] > sizes[1] > sizes[2]


def test_auto_encoding_picks_the_smaller_per_tensor():
    dense_ish = torch.zeros(1000)
    dense_ish[::4] = 1.0  # 25% non-zero: bitmask (125 B) < indices (1000 B)
    sparse_ish = torch.zeros(1000)
    sparse_ish[::100] = 1.0  # 1%: indices (40 B) < bitmask (125 B)
    tensors, info = encode_state_dict({"a": dense_ish, "b": sparse_ish, "c": torch.ones(10)})
    assert info["a"]["encoding"] == "bitmask" and info["b"]["encoding"] == "indices" and "c" not in info
    assert torch.equal(tensors["c"], torch.ones(10))


def test_bit_packing_round_trip():
    mask = torch.rand(37) > 0.5
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == 5
    assert torch.equal(unpack_bits(packed, 37)[:37], mask) and not unpack_bits(packed, 37)[37:].any()


def _sample():
    value = torch.zeros(4, 5)
    value[0, 1], value[2, 3], value[3, 4] = 1.5, -2.0, 3.0
    tensors, info = encode_state_dict({"w": value, "b": torch.arange(3.0)}, encoding="indices")
    meta = {"format": "restore-sparse", "format_version": "1", "sparse": json.dumps(info)}
    return value, tensors, meta, info


def test_densify_reads_back_the_tensors():
    value, tensors, meta, _ = _sample()
    out = densify_state_dict(tensors, meta)
    assert torch.equal(out["w"], value) and torch.equal(out["b"], torch.arange(3.0))


@pytest.mark.parametrize("corrupt, message", [
    (lambda t, i: t.__setitem__("w::indices", torch.tensor([1, 13, 20], dtype=torch.int32)), "out of range"),
    (lambda t, i: t.__setitem__("w::indices", torch.tensor([13, 1, 19], dtype=torch.int32)), "strictly increasing"),
    (lambda t, i: t.__setitem__("w::indices", torch.tensor([1, 1, 19], dtype=torch.int32)), "strictly increasing"),
    (lambda t, i: t.__setitem__("w::indices", torch.tensor([1, 13, 19], dtype=torch.int64)), "int32"),
    (lambda t, i: t.__setitem__("w::values", torch.ones(2)), "nnz=3"),
    (lambda t, i: t.__setitem__("w::values", torch.ones(3, dtype=torch.float64)), "float32"),
    (lambda t, i: t.pop("w::values"), "missing"),
    (lambda t, i: t.__setitem__("x::values", torch.ones(1)), "unknown kind|no entry"),
    (lambda t, i: t.__setitem__("w", torch.ones(4, 5)), "both dense and sparse"),
    (lambda t, i: i["w"].__setitem__("shape", [4, 4]), "out of range"),
    (lambda t, i: i["w"].__setitem__("shape", [4, -5]), "non-negative"),
    (lambda t, i: i["w"].__setitem__("dtype", "int8"), "dtype must be"),
    (lambda t, i: i["w"].__setitem__("nnz", 99), "nnz must be"),
    (lambda t, i: i["w"].__setitem__("encoding", "rle"), "encoding must be"),
])
def test_densify_rejects_inconsistent_files(corrupt, message):
    _, tensors, meta, info = _sample()
    corrupt(tensors, info)
    meta["sparse"] = json.dumps(info)
    with pytest.raises(ValueError, match=message):
        densify_state_dict(tensors, meta)


def test_densify_rejects_bad_bitmasks_and_metadata():
    value = torch.zeros(10)
    value[[0, 3, 9]] = 1.0
    tensors, info = encode_state_dict({"w": value}, encoding="bitmask")
    meta = {"format": "restore-sparse", "format_version": "1", "sparse": json.dumps(info)}
    assert torch.equal(densify_state_dict(dict(tensors), meta)["w"], value)
    bad = dict(tensors, **{"w::bitmask": tensors["w::bitmask"] | torch.tensor([0, 0b100], dtype=torch.uint8)})
    with pytest.raises(ValueError, match="beyond the tensor's size"):
        densify_state_dict(bad, meta)
    bad = dict(tensors, **{"w::bitmask": tensors["w::bitmask"] | torch.tensor([0b10, 0], dtype=torch.uint8)})
    with pytest.raises(ValueError, match="4 bits set, nnz says 3"):
        densify_state_dict(bad, meta)
    with pytest.raises(ValueError, match="bytes"):
        densify_state_dict(dict(tensors, **{"w::bitmask": tensors["w::bitmask"][:1]}), meta)
    with pytest.raises(ValueError, match="not valid JSON"):
        densify_state_dict(tensors, dict(meta, sparse="{oops"))
    with pytest.raises(ValueError, match="format_version '9'"):
        densify_state_dict(tensors, dict(meta, format_version="9"))
    with pytest.raises(ValueError, match="not a restore-sparse file"):
        densify_state_dict(tensors, {"format": "restore"})


def test_load_model_names_the_damaged_tensor(tmp_path):
    path = export_sparse(pruned(NAF_CONFIG, 3), tmp_path / "net.safetensors", NAF_CONFIG, encoding="indices")
    tensors, meta = read(path)
    name = next(k for k, v in json.loads(meta["sparse"]).items() if v["nnz"] > 1)
    tensors[f"{name}::indices"] = tensors[f"{name}::indices"].flip(0).contiguous()
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(DamagedFileError, match="bad.safetensors was modified or damaged: digest mismatch"):
        restore.load_model(tmp_path / "bad.safetensors")
    # written by another tool (no digest): still refused, by the format's own checks, naming the tensor
    save_file(tensors, str(tmp_path / "foreign.safetensors"), metadata={k: v for k, v in meta.items() if k != "digest"})
    with pytest.warns(UnverifiedWeightsWarning), pytest.raises(ValueError, match=f"{name}.*strictly increasing"):
        restore.load_model(tmp_path / "foreign.safetensors")


def test_unireplk_deploy_form_of_a_pruned_net_matches(tmp_path):
    net = pruned(URLK_CONFIG, 3)
    for m in net.modules():  # non-trivial BN statistics, so the folding is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        out = net(x)
        path = export_sparse(net, tmp_path / "train_form.safetensors", URLK_CONFIG)
        merged = reparameterize(make_permanent(net))
        assert torch.allclose(merged(x), out, atol=1e-5)
        # loading the sparse training form straight into the deploy form works too
        assert torch.allclose(restore.load_model(path, deploy=True)(x), out, atol=1e-5)
    large = [m.dwconv.large_conv.weight for m in merged.modules() if hasattr(m, "dwconv")
             and hasattr(m.dwconv, "large_conv")]
    assert large and all(float((w == 0).float().mean()) < 0.5 for w in large)  # merged kernels are dense-ish
