"""Pretrained models by name: shipped weights load safely, their cards hold, eval.py reproduces the cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import restore
from restore import model_zoo
from restore.model_zoo import PRETRAINED_MODELS, WEIGHTS_DIR, UnknownModelError, model_card, resolve_model
from restore.models.summary import count_params

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NAMES = sorted(PRETRAINED_MODELS)


def test_a_path_resolves_to_itself_and_a_missing_one_is_named(tmp_path):
    path = tmp_path / "net.safetensors"
    path.write_bytes(b"")
    assert resolve_model(str(path)) == path
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        resolve_model(tmp_path / "missing.ckpt")
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        restore.load_model(tmp_path / "missing.ckpt")


def test_unknown_name_lists_what_exists():
    assert restore.list_models() == NAMES
    assert resolve_model("denoise_color") == WEIGHTS_DIR / "denoise_color.safetensors"
    for call in (resolve_model, restore.load_model, model_card):
        with pytest.raises(UnknownModelError, match="denoise_color"):
            call("colour_denoiser")


def test_shipped_size_within_budget():
    total = sum((WEIGHTS_DIR / f).stat().st_size for f in PRETRAINED_MODELS.values())
    assert total <= 30e6, f"shipped weights {total / 1e6:.1f} MB > 30 MB"


@pytest.mark.parametrize("name", NAMES)
def test_shipped_model_loads_and_matches_its_card(name):
    card = model_card(name)
    net = restore.load_model(name)
    assert net.checkpoint_path == str(WEIGHTS_DIR / PRETRAINED_MODELS[name])
    assert card["name"] == name and card["params"] == count_params(net)
    assert card["file_bytes"] == (WEIGHTS_DIR / PRETRAINED_MODELS[name]).stat().st_size
    assert card["nonzero_params"] == sum(int((p != 0).sum()) for p in net.parameters())
    for key in ("recipe", "training_data", "machine", "metrics", "test_sized", "papers", "gmacs_256"):
        assert card[key], key
    assert card["recipe"]["command"].startswith(f"python train.py experiment={card['recipe']['experiment']}")
    assert (WEIGHTS_DIR / f"{name}.md").read_text().startswith(f"# {name}:")
    # any size in, same size out, finite
    x = torch.rand(1, net.net_config.get("in_channels", 3), 37, 53)
    with torch.no_grad():
        y = net(x)
    y = y[0] if isinstance(y, (list, tuple)) else y
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_pruned_twin_is_sparse():
    card, dense = model_card("allinone_baryir_pruned"), model_card("allinone_baryir")
    assert card["nonzero_params"] <= 0.15 * card["params"]
    assert card["file_bytes"] < dense["file_bytes"] / 4


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data (the test sets)")
@pytest.mark.parametrize("name", NAMES)
def test_eval_reproduces_the_card(name, tmp_path):
    """The card's test-sized numbers: eval.py ckpt_path=<name> data=<set>, first K images of each set."""
    from eval import evaluate
    from restore.utils.config import compose_config, limit_eval_images

    spec = model_card(name)["test_sized"]
    cfg = compose_config("eval", [f"ckpt_path={name}", f"data={spec['data']}", "data.num_workers=0",
                                  "trainer.accelerator=cpu", "++trainer.enable_progress_bar=false", *spec["overrides"]],
                         tmp_path, configs_dir=ROOT / "configs")
    limit_eval_images(cfg, spec["images"])
    evaluate(cfg)
    measured = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    for task, metrics in spec["metrics"].items():
        assert measured[task]["psnr"]["output"] == pytest.approx(metrics["psnr"]["output"], abs=0.02), task
        assert measured[task]["ssim"]["output"] == pytest.approx(metrics["ssim"]["output"], abs=1e-3), task


def test_registry_entries_point_at_files():
    for name, file in PRETRAINED_MODELS.items():
        assert (WEIGHTS_DIR / file).is_file() and (WEIGHTS_DIR / f"{name}.json").is_file(), name
    assert model_zoo.list_models() == NAMES


def test_undertrained_models_warn_when_loaded(caplog):
    with caplog.at_level("WARNING", logger="restore.checkpoint"):
        restore.load_model("deblur_fke")
    assert "deblur_fke.safetensors: barely deblurs" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="restore.checkpoint"):
        restore.load_model("denoise_color")
    assert "WARNING" not in caplog.text and not caplog.records
