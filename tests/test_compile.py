"""`compile` in configs/train.yaml: the network trains compiled, and its checkpoints load uncompiled."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import train as train_script
from restore import load_model

TINY_RUN = ["trainer.max_steps=2", "trainer.val_check_interval=2", "data.num_workers=0", "data.batch_size=2",
            "data.train.patch_size=32", "++data.val.crop_size=32", "logger=csv", "~callbacks.rich_progress_bar"]


def _train_compiled(compose, monkeypatch, compile_option: str) -> tuple[torch.nn.Module, Path]:
    """Run train.py's train() with ``compile=<compile_option>``; the network it compiled and the run folder."""
    compiled = []

    def spy(net, options):
        compiled.append(net)
        real_compile_net(net, options)

    real_compile_net = train_script.compile_net
    monkeypatch.setattr(train_script, "compile_net", spy)
    cfg = compose("train", [f"compile={compile_option}", *TINY_RUN])
    train_script.train(cfg)
    (net,) = compiled
    return net, Path(cfg.paths.output_dir)


def _check_checkpoint_loads_as_the_compiled_net(net: torch.nn.Module, run_dir: Path, atol: float) -> None:
    assert net._compiled_call_impl is not None  # nn.Module.compile: forward goes through torch.compile
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True, map_location="cpu")["state_dict"]
    assert state and not [k for k in state if "_orig_mod" in k]  # the plain keys
    plain = load_model(ckpt)  # EMA weights: what the trained module holds after fit
    assert plain._compiled_call_impl is None
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), plain(x), rtol=0, atol=atol)


def test_compiled_run_checkpoint_loads_uncompiled_with_the_same_outputs(compose, monkeypatch):
    # aot_eager traces forward and backward as inductor does, without generating C++ (seconds, not minutes)
    net, run_dir = _train_compiled(compose, monkeypatch, "{backend: aot_eager}")
    _check_checkpoint_loads_as_the_compiled_net(net, run_dir, atol=1e-6)


@pytest.mark.slow
def test_inductor_compiled_run_checkpoint_loads_uncompiled(compose, monkeypatch):
    """compile=true (inductor, C++ code generation on CPU: minutes on one thread)."""
    net, run_dir = _train_compiled(compose, monkeypatch, "true")
    _check_checkpoint_loads_as_the_compiled_net(net, run_dir, atol=1e-5)


def test_compile_rejects_a_value_that_is_neither_bool_nor_mapping():
    with pytest.raises(ValueError, match="compile must be true, false or a mapping of torch.compile arguments"):
        train_script.compile_net(torch.nn.Linear(2, 2), "max-autotune")
