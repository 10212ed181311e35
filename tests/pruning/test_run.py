"""End-to-end pruning runs through train.py's entry (Lightning, EMA, AdamW): schedule, per-round
folders and report, zeros in raw and EMA weights, export, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

import restore
from restore.errors import DamagedFileError
from restore.pruning import IterativePruning
from restore.pruning.callbacks import PrunedWeightsGuard
from train import train

TINY = ["experiment=prune/mirl_quick", "pruning.rounds=2", "trainer.max_steps=3", "trainer.val_check_interval=3",
        "++trainer.accelerator=cpu", "data.num_workers=0", "data.batch_size=2", "model.net.width=8",
        "model.scheduler.warmup_steps=1", *[f"data.train.{i}.patch_size=32" for i in range(3)],
        *[f"+data.val.{i}.crop_size=32" for i in range(3)]]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, compose_into):
    """One complete 2-round run (3 trainings of 3 steps), shared by the tests below."""
    run = tmp_path_factory.mktemp("prune") / "run"
    train(compose_into(run, TINY))
    return run


def test_pruning_group_turns_any_experiment_into_a_pruning_run(compose):
    cfg = compose("train", ["experiment=denoise/unireplknet_tiny", "pruning=imp", "pruning.rounds=5"])
    settings = instantiate(cfg.pruning)
    assert isinstance(settings, IterativePruning) and settings.rounds == 5 and settings.rewind == "init"
    assert compose("train", ["experiment=denoise/unireplknet_tiny"]).get("pruning") is None
    assert instantiate(compose("train", ["pruning=random"]).pruning).method == "random"
    one_shot = instantiate(compose("train", ["pruning=one_shot"]).pruning)
    assert one_shot.schedule == "one_shot" and one_shot.rewind == "none" and one_shot.rounds == 15


@pytest.mark.parametrize("override, message", [("pruning.rate=1.0", "rate must be in"),
                                               ("pruning.rewind=step", "rewind_step >= 1"),
                                               ("pruning.scope=block", "scope must be")])
def test_bad_settings_are_named(compose, override, message):
    with pytest.raises(Exception, match=message):
        instantiate(compose("train", ["pruning=imp", override]).pruning)


def test_rounds_follow_the_schedule_and_keep_their_files(finished_run):
    report = json.loads((finished_run / "pruning_report.json").read_text())
    assert [e["round"] for e in report["rounds"]] == [0, 1, 2]
    assert report["protocol"] == "RGB [0,1], no crop"
    for e in report["rounds"]:
        assert e["fraction_prunable"] == pytest.approx(0.8 ** e["round"], abs=1e-4)
        assert e["fraction_all"] > e["fraction_prunable"] or e["round"] == 0
        assert set(e["metrics"]) == {"all", "denoise", "derain", "dehaze"}
        assert {"psnr", "ssim"} <= set(e["metrics"]["derain"])
        round_dir = finished_run / f"round_{e['round']:02d}"
        for name in ("masks.safetensors", "model.sparse.safetensors", "metrics.json", "round.json",
                     "checkpoints/last.ckpt"):
            assert (round_dir / name).is_file(), name
    assert (finished_run / "theta0.safetensors").is_file()
    for name in ("pruning_report.md", "pruning_psnr.png"):
        assert (finished_run / name).stat().st_size > 0
    assert "| 2 | 3 | 64.00%" in (finished_run / "pruning_report.md").read_text()


def test_pruned_weights_are_zero_in_raw_and_ema_weights_and_the_export(finished_run):
    masks = load_file(str(finished_run / "round_02" / "masks.safetensors"))
    ckpt = torch.load(finished_run / "round_02" / "checkpoints" / "last.ckpt", weights_only=True)
    exported = restore.checkpoint.read_checkpoint(finished_run / "round_02" / "model.sparse.safetensors")[0]
    assert ckpt["pruning_masks"].keys() == masks.keys()
    for which in ("state_dict", "current_model_state"):  # EMA weights, raw weights (masks folded in)
        state = ckpt[which]
        assert not any(k.endswith(("_orig", "_mask")) for k in state)
        for name, mask in masks.items():
            assert torch.equal(ckpt["pruning_masks"][name], mask)
            assert bool((state[f"net.{name}"][~mask] == 0).all()), (which, name)
    for name, mask in masks.items():  # the export holds the final (EMA) weights
        assert torch.equal(exported[name], ckpt["state_dict"][f"net.{name}"])
        assert bool((exported[name][~mask] == 0).all()) and bool((exported[name][mask] != 0).any())


def test_round_checkpoints_load_like_any_checkpoint(finished_run):
    x = torch.rand(1, 3, 24, 24)
    from_ckpt = restore.load_model(finished_run / "round_02" / "checkpoints" / "last.ckpt")
    from_export = restore.load_model(finished_run / "round_02" / "model.sparse.safetensors")
    with torch.no_grad():
        assert torch.equal(from_ckpt(x), from_export(x))


def test_export_loads_with_load_model(finished_run):
    net = restore.load_model(finished_run / "round_02" / "model.sparse.safetensors")
    x = torch.rand(1, 3, 24, 24)
    out = restore.restore_image(net, x)
    assert out.shape == x.shape
    zeros = sum(int((p == 0).sum()) for n, p in net.named_parameters() if n.endswith("weight") and p.dim() > 1)
    assert zeros > 0.3 * sum(p.numel() for n, p in net.named_parameters() if n.endswith("weight") and p.dim() > 1)


def test_resume_mid_run_gives_the_same_masks(finished_run, tmp_path, compose_into):
    crashed = tmp_path / "crashed"
    shutil.copytree(finished_run, crashed)
    # crash during round 1: its masks are written, its training is not done; round 2 never started
    shutil.rmtree(crashed / "round_02")
    for name in ("round.json", "model.sparse.safetensors"):
        (crashed / "round_01" / name).unlink()
    train(compose_into(tmp_path / "elsewhere", TINY + [f"ckpt_path={crashed}"]))
    for r in (1, 2):
        a = load_file(str(finished_run / f"round_{r:02d}" / "masks.safetensors"))
        b = load_file(str(crashed / f"round_{r:02d}" / "masks.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), r
    assert [e["round"] for e in json.loads((crashed / "pruning_report.json").read_text())["rounds"]] == [0, 1, 2]


def test_resume_refuses_changed_settings_and_fresh_runs_refuse_an_existing_folder(finished_run, tmp_path,
                                                                                   compose_into):
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    with pytest.raises(ValueError, match="scope='global'→'layer'"):
        train(compose_into(tmp_path / "x", TINY + [f"ckpt_path={copy}", "pruning.scope=layer"]))
    with pytest.raises(FileExistsError, match="already holds a pruning run"):
        train(compose_into(copy, TINY))
    (copy / "run.lock").write_text("1")  # pid 1 is alive: another process works on this run
    with pytest.raises(RuntimeError, match="in use by process 1"):
        train(compose_into(tmp_path / "y", TINY + [f"ckpt_path={copy}"]))
    assert not (finished_run / "run.lock").exists()  # released when a run ends


def test_one_shot_control_prunes_straight_to_the_last_round_and_trains_as_long(tmp_path, compose_into):
    run = tmp_path / "one_shot"
    train(compose_into(run, TINY + ["pruning=one_shot"]))
    rounds = json.loads((run / "pruning_report.json").read_text())["rounds"]
    assert [(e["round"], e["steps"]) for e in rounds] == [(0, 3), (1, 6)]  # 2 rounds × 3 steps of fine-tuning
    assert rounds[1]["fraction_prunable"] == pytest.approx(0.8**2, abs=1e-4)


def test_late_rewinding_rewinds_to_the_weights_of_step_k(tmp_path, compose_into):
    run = tmp_path / "late"
    train(compose_into(run, TINY + ["pruning.rounds=1", "pruning.rewind=step", "pruning.rewind_step=2"]))
    theta_k = load_file(str(run / "theta_step2.safetensors"))
    theta_0 = load_file(str(run / "theta0.safetensors"))
    assert set(theta_k) == set(theta_0) and any(not torch.equal(theta_k[k], theta_0[k]) for k in theta_0)
    with pytest.raises(ValueError, match="rewind_step=9 is beyond"):
        train(compose_into(tmp_path / "bad", TINY + ["pruning.rewind=step", "pruning.rewind_step=9"]))


def test_pretrained_weights_become_theta0_and_a_wrong_architecture_is_named(finished_run, tmp_path, compose_into):
    """pretrained=...: θ₀ (the rewinding target) is the pretrained network (late rewinding to its end)."""
    pretrained = finished_run / "round_01" / "model.sparse.safetensors"  # trained weights, unlike a fresh init
    run = tmp_path / "from_pretrained"
    train(compose_into(run, TINY + ["pruning.rounds=1", f"pretrained={pretrained}"]))
    theta0 = load_file(str(run / "theta0.safetensors"))
    source = restore.load_model(pretrained).state_dict()
    assert theta0.keys() == source.keys()
    for key, value in source.items():
        assert torch.equal(theta0[key], value), key
    with pytest.raises(RuntimeError, match=r"pretrained=.*model\.sparse\.safetensors.*shape mismatches"):
        train(compose_into(tmp_path / "wider", TINY + ["pruning.rounds=1", "model.net.width=16",
                                                       f"pretrained={pretrained}"]))


def crashed_in_round_2(finished_run, folder):
    """A copy of the finished run as a crash while training round 2 leaves it (masks and checkpoints written)."""
    shutil.copytree(finished_run, folder)
    for name in ("round.json", "model.sparse.safetensors", "metrics.json", "metrics.md"):
        (folder / "round_02" / name).unlink()
    return folder


@pytest.mark.parametrize("damage, file, fix", [
    (lambda p: p.write_text(p.read_text()[:40]), "round_01/round.json", "delete it"),
    (lambda p: p.write_bytes(p.read_bytes()[:-100]), "round_01/masks.safetensors", "delete the folder .*round_01"),
    ("flip", "round_01/model.sparse.safetensors", "digest mismatch.*delete the folder .*round_01"),
    ("flip", "theta0.safetensors", "digest mismatch.*start a new run"),
    (lambda p: p.write_text("{"), "pruning_state.json", "start a new run"),
    (lambda p: p.write_bytes(p.read_bytes()[:50]), "round_02/masks.safetensors", "delete it.*prunes again"),
    ("flip", "round_02/checkpoints/last.ckpt", "digest mismatch.*delete it, and round 2 restarts at step 0"),
])
def test_a_damaged_run_file_is_named_on_resume_before_any_training(finished_run, tmp_path, compose_into,
                                                                   damage_weights, damage, file, fix):
    """Issue 31: a truncated round.json made every resume retrain the next round, then die with a raw
    JSONDecodeError naming no file; truncated masks or θ₀ gave a raw SafetensorError."""
    run = crashed_in_round_2(finished_run, tmp_path / "run")
    damage_weights(run / file) if damage == "flip" else damage(run / file)
    checkpoint = (run / "round_02" / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(DamagedFileError, match=rf"{file}.*{fix}"):
        train(compose_into(tmp_path / "elsewhere", TINY + [f"ckpt_path={run}"]))
    # refused before round 2 trained any further
    assert (run / "round_02" / "checkpoints" / "last.ckpt").read_bytes() == checkpoint
    assert not (run / "round_02" / "model.sparse.safetensors").exists()


def test_temporary_files_of_a_killed_write_are_removed_when_the_run_starts(finished_run, tmp_path, compose_into):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    stale = [run / ".theta0.safetensors.k3j9x2ab.tmp", run / "round_01" / ".round.json.0a1b2c3d.tmp",
             run / "round_02" / "checkpoints" / ".last.ckpt.zz9y8x7w.tmp"]
    for path in stale:
        path.write_bytes(b"half written")
    train(compose_into(tmp_path / "elsewhere", TINY + [f"ckpt_path={run}"]))  # every round done: nothing trains
    assert not any(path.exists() for path in stale)
    assert sorted(p.name for p in run.rglob(".*.tmp")) == []


def test_ctrl_c_inside_a_round_resumes_at_its_step(tmp_path, compose_into, monkeypatch, sigint_restored):
    steps: list[tuple[str, int]] = []
    original = PrunedWeightsGuard.on_train_batch_end

    def record(self, trainer, pl_module, *args):
        original(self, trainer, pl_module, *args)
        steps.append((Path(trainer.default_root_dir).name, trainer.global_step))
        if interrupt and steps[-1] == ("round_01", 2):
            raise KeyboardInterrupt  # Ctrl-C after the round's second step

    monkeypatch.setattr(PrunedWeightsGuard, "on_train_batch_end", record)
    overrides = TINY + ["pruning.rounds=1", "trainer.max_steps=4", "trainer.val_check_interval=4"]
    run, interrupt = tmp_path / "run", True
    with pytest.raises(SystemExit):  # Lightning's shutdown on KeyboardInterrupt, after InterruptCheckpoint saved
        train(compose_into(run, overrides))
    assert torch.load(run / "round_01" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert not (run / "round_01" / "round.json").exists()
    steps.clear()
    interrupt = False
    train(compose_into(tmp_path / "elsewhere", overrides + [f"ckpt_path={run / 'round_01/checkpoints/last.ckpt'}"]))
    assert steps == [("round_01", 3), ("round_01", 4)]  # the round went on from its step 2
    entry = json.loads((run / "round_01" / "round.json").read_text())
    assert entry["steps"] == 4 and entry["fraction_prunable"] == pytest.approx(0.8, abs=1e-4)
    masks = load_file(str(run / "round_01" / "masks.safetensors"))
    exported = restore.checkpoint.read_checkpoint(run / "round_01" / "model.sparse.safetensors")[0]
    for name, mask in masks.items():  # the resumed round trained the pruned network: its zeros held
        assert bool((exported[name][~mask] == 0).all()) and bool((exported[name][mask] != 0).any())
