"""Pretrained models by name: shipped weights load safely, their cards hold, eval.py reproduces the cards."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import restore
from restore import model_zoo
from restore.checkpoint import build_net
from restore.errors import DamagedFileError, UnverifiedWeightsWarning
from restore.lightning import AtomicCheckpointIO
from restore.model_zoo import PRETRAINED_MODELS, WEIGHTS_DIR, UnknownModelError, model_card, resolve_model
from restore.models.summary import count_params
from restore.weights_io import file_digest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NAMES = sorted(PRETRAINED_MODELS)
# the all-in-one and deblurring cards take 22–30 s each to reproduce on 2 cores: slow (pytest -m slow). The default
# run reproduces the two denoising cards (eval.py with a shipped checkpoint); test_allinone_eval covers the all-in-one
# evaluation, and every file's digest is checked below
SLOW_CARDS = {"allinone_baryir", "allinone_baryir_pruned", "deblur_fke"}
CARD_NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CARDS else n for n in NAMES]


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


@pytest.mark.parametrize("name", NAMES)
def test_model_card_prints_a_short_summary_and_stays_a_dict(name):
    card = model_card(name)
    text = repr(card)
    lines = text.splitlines()
    assert str(card) == text and len(lines) <= 20 and max(map(len, lines)) <= 120, text
    assert lines[0] == f"{name}: {card['task']}"
    architecture = card["net_config"]["_target_"].rsplit(".", 1)[-1]
    assert architecture in lines[1] and f"{card['params'] / 1e6:.2f}M params" in text
    assert card["training_data"].split()[0] in text and card["recipe"]["experiment"] in text
    for test_set, per_task in card["metrics"].items():
        assert test_set[:40] in text
        for task, m in per_task.items():  # each row: PSNR in → out, SSIM out
            assert f"{m['psnr']['input']:6.2f} →  {m['psnr']['output']:.2f}   {m['ssim']['output']:.4f}" in text, task
    if card.get("warning"):
        assert card["warning"] in text

    class Printer:  # IPython's pretty printer, as far as _repr_pretty_ uses it
        def text(self, value):
            self.value = value

    printer = Printer()
    card._repr_pretty_(printer, cycle=False)
    assert printer.value == text
    assert card == json.loads((WEIGHTS_DIR / f"{name}.json").read_text())  # still the card's dict
    assert json.loads(json.dumps(card)) == card and card.task == card["task"]
    with pytest.raises(AttributeError, match="no 'tsak'.*task"):
        card.tsak


def test_pruned_twin_is_sparse():
    card, dense = model_card("allinone_baryir_pruned"), model_card("allinone_baryir")
    assert card["nonzero_params"] <= 0.15 * card["params"]
    assert card["file_bytes"] < dense["file_bytes"] / 4


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data (the test sets)")
@pytest.mark.parametrize("name", CARD_NAMES)
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
    assert "deblur_fke.safetensors: deblurs little" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="restore.checkpoint"):
        restore.load_model("denoise_color")
    assert "WARNING" not in caplog.text and not caplog.records


@pytest.mark.parametrize("name", NAMES)
def test_shipped_files_verify_against_the_digest_on_their_card(name):
    path = WEIGHTS_DIR / PRETRAINED_MODELS[name]
    assert model_card(name)["digest"] == file_digest(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedWeightsWarning)  # verified, so no "cannot be verified" warning
        restore.checkpoint.read_checkpoint(path)


def test_a_damaged_shipped_file_is_refused_by_its_card(tmp_path, monkeypatch, damage_weights):
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(WEIGHTS_DIR / f"denoise_gray{suffix}", tmp_path / f"denoise_gray{suffix}")
    monkeypatch.setattr(model_zoo, "WEIGHTS_DIR", tmp_path)
    assert restore.load_model("denoise_gray").checkpoint_path == str(tmp_path / "denoise_gray.safetensors")
    damage_weights(tmp_path / "denoise_gray.safetensors")
    with pytest.raises(DamagedFileError, match=r"denoise_gray\.safetensors was modified or damaged: digest mismatch"):
        restore.load_model("denoise_gray")


@pytest.fixture
def shadowing_file(tmp_path, monkeypatch) -> tuple[Path, torch.nn.Module]:
    """A working folder holding a file named like a shipped model, with another (tiny, gray) network."""
    config = {"_target_": "restore.models.unet.RestorationUNet", "in_channels": 1, "width": 8, "enc_blocks": [1],
              "middle_blocks": 1, "dec_blocks": [1],
              "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True}}
    torch.manual_seed(0)
    tiny = build_net(config).eval()
    monkeypatch.chdir(tmp_path)
    AtomicCheckpointIO().save_checkpoint({"state_dict": {f"net.{k}": v for k, v in tiny.state_dict().items()},
                                          "net_config": config}, tmp_path / "denoise_gray")
    return tmp_path / "denoise_gray", tiny


def shipped_gray() -> torch.nn.Module:
    return restore.load_model(WEIGHTS_DIR / "denoise_gray.safetensors")


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_model_name_means_the_shipped_model_even_beside_a_file_of_that_name(shadowing_file, caplog):
    """Issue 31: a file named denoise_gray in the working folder replaced the shipped model without a word."""
    path, tiny = shadowing_file
    with caplog.at_level("WARNING", logger="restore.model_zoo"):
        net = restore.load_model("denoise_gray")
    assert net.checkpoint_path == str(WEIGHTS_DIR / "denoise_gray.safetensors") and same_weights(net, shipped_gray())
    assert "'./denoise_gray'" in caplog.text  # says how to load the file instead
    for as_path in ("./denoise_gray", Path("denoise_gray"), str(path)):
        assert same_weights(restore.load_model(as_path), tiny), as_path
    with pytest.raises(FileNotFoundError, match="pass its name as a string"):
        restore.load_model(Path("denoise_color"))  # a Path is a file, never a model name


def test_pretrained_eval_and_restore_run_follow_the_same_rule(shadowing_file, monkeypatch, tmp_path):
    import eval as eval_script
    from restore.checkpoint import load_pretrained
    from restore.cli import EXIT_OK
    from restore.cli import main as cli_main
    from restore.utils.config import compose_config

    _, tiny = shadowing_file
    target = build_net(model_card("denoise_gray")["net_config"])
    assert same_weights(load_pretrained(target, "denoise_gray"), shipped_gray())  # pretrained=denoise_gray

    loaded = []

    class Stop(Exception):
        pass

    def load_then_stop(*args, **kwargs):
        loaded.append(restore.load_model(*args, **kwargs))
        raise Stop

    monkeypatch.setattr(eval_script, "load_model", load_then_stop)
    cfg = compose_config("eval", ["ckpt_path=denoise_gray", "data=denoise/cbsd68"], tmp_path / "eval",
                         configs_dir=ROOT / "configs")
    with pytest.raises(Stop):
        eval_script.evaluate(cfg)  # eval.py ckpt_path=denoise_gray
    assert same_weights(loaded[0], shipped_gray())

    image = (np.random.default_rng(0).random((16, 20)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "noisy.png")
    assert cli_main(["run", "--model", "denoise_gray", str(tmp_path / "noisy.png"), str(tmp_path / "out")]) == EXIT_OK
    restored = np.asarray(Image.open(next((tmp_path / "out").iterdir())))
    assert np.array_equal(restored, restore.restore_image(shipped_gray(), image))  # restore run --model denoise_gray
    assert not np.array_equal(restored, restore.restore_image(tiny, image))
