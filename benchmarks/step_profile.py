"""Where a training step's time goes, per recipe: data wait, transfer (+ degradations on the device), forward,
the rest of the training step (loss), backward, optimiser, EMA, logging, other callbacks and Lightning itself.

Run by hand:  python benchmarks/step_profile.py [--recipes default zoo/denoise_color ...] [--steps 30]
              [--warmup 5] [--device cpu|cuda] [-o override ...]

Each recipe runs in a fresh subprocess as ``python train.py [experiment=<recipe>]`` would build it (datamodule,
model, callbacks, loggers, trainer; the recipe's workers and CPU threads), for ``--warmup + --steps`` steps with
no validation. Timing: a Lightning profiler whose actions (``[_TrainingEpochLoop].train_dataloader_next``,
``[Strategy]...backward``, ``[Callback]EMAWeightAveraging...``) and a few wrapped calls (the network's forward,
``LightningModule.log``, the loggers' writes, the torch optimisers' ``step``) are timed as nested sections; each
row is a section's own time, its nested sections' excluded, so rows add up to the step. "Lightning (other)" is
the rest of the wall time between two batch fetches. Lightning's own ``SimpleProfiler`` times the same actions
but cannot separate a closure (forward + backward) from the optimiser step that runs it, hence this.

``--device cuda`` runs the recipes on the GPU (each recipe's own precision); sections then synchronise the
device at their edges, which costs a little time but puts each kernel in the row that launched it. Without a
GPU it says so and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["default", "zoo/denoise_color", "deblur/fke_quick", "allinone/baryir_quick"]
ROWS = ["data wait", "transfer + device degradations", "forward", "loss (rest of training_step)", "backward",
        "optimiser (+ zero_grad, clipping)", "EMA", "logging", "other callbacks", "Lightning (other)"]


def _category(action: str) -> str | None:
    """The table row of a profiled action (None: its time goes to the enclosing section)."""
    if action.endswith("train_dataloader_next"):
        return "data wait"
    if action.endswith(".batch_to_device"):
        return "transfer + device degradations"
    if action == "forward":
        return "forward"
    if action.endswith(".training_step"):
        return "loss (rest of training_step)"
    if action.endswith(".backward") or action == "backward":
        return "backward"
    if action in ("optimizer", ) or action.endswith(("optimizer_step", "optimizer_zero_grad")):
        return "optimiser (+ zero_grad, clipping)"
    if action.startswith("[Callback]EMA"):
        return "EMA"
    if action == "logging":
        return "logging"
    if action.startswith("[Callback]"):
        return "other callbacks"
    return None


def measure(recipe: str, steps: int, warmup: int, device: str, overrides: list[str]) -> dict:
    import lightning as L
    import torch
    from lightning.pytorch.profilers import Profiler

    from restore.utils.config import compose_config, instantiate_group, instantiate_node

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    class SectionProfiler(Profiler):
        """Nested sections: each one's own time (children excluded) goes to its row of the current step."""

        def __init__(self) -> None:
            super().__init__()
            self.stack: list[list] = []  # [action, start, time spent in children]
            self.steps: list[dict[str, float]] = []
            self.step_starts: list[float] = []

        def start(self, action_name: str) -> None:
            if _category(action_name) is None:
                return
            sync()
            now = time.perf_counter()
            if action_name.endswith("train_dataloader_next"):
                self.step_starts.append(now)
                self.steps.append(dict.fromkeys(ROWS, 0.0))
            self.stack.append([action_name, now, 0.0])

        def stop(self, action_name: str) -> None:
            if _category(action_name) is None or not self.stack or self.stack[-1][0] != action_name:
                return
            sync()
            name, start, children = self.stack.pop()
            spent = time.perf_counter() - start
            if self.steps:
                self.steps[-1][_category(name)] += spent - children
            if self.stack:
                self.stack[-1][2] += spent

    output_dir = tempfile.mkdtemp(prefix="step_profile_")
    experiment = [] if recipe == "default" else [f"experiment={recipe}"]
    placement = ["trainer=cpu"] if device == "cpu" else ["trainer.accelerator=gpu"]
    cfg = compose_config("train", experiment + placement + [
        f"trainer.max_steps={warmup + steps}", "trainer.val_check_interval=100000", "++trainer.limit_val_batches=0",
        "test=false", *overrides], output_dir)
    if cfg.get("cpu_threads"):
        torch.set_num_threads(int(cfg.cpu_threads))
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate_node(cfg, "data")
    model = instantiate_node(cfg, "model")
    profiler = SectionProfiler()

    def timed(fn, action):
        def wrapper(*args, **kwargs):
            profiler.start(action)
            try:
                return fn(*args, **kwargs)
            finally:
                profiler.stop(action)
        return wrapper

    model.net.register_forward_pre_hook(lambda *_: profiler.start("forward"))
    model.net.register_forward_hook(lambda *_: profiler.stop("forward"))
    if hasattr(model.net, "forward_latents"):  # BaryIR's training forward
        model.net.forward_latents = timed(model.net.forward_latents, "forward")
    model.log, model.log_dict = timed(model.log, "logging"), timed(model.log_dict, "logging")
    callbacks = instantiate_group(cfg, "callbacks")
    loggers = instantiate_group(cfg, "logger")
    for lg in loggers:
        lg.log_metrics, lg.save = timed(lg.log_metrics, "logging"), timed(lg.save, "logging")

    class WrapOptimisers(L.Callback):
        """The torch optimisers' ``step`` as the "optimizer" section (a closure inside it is attributed to its
        own sections: training_step, backward)."""

        def on_train_start(self, trainer, pl_module) -> None:
            for opt in trainer.optimizers:
                opt.step = timed(opt.step, "optimizer")
            trainer.strategy.backward = timed(trainer.strategy.backward, "backward")

    trainer = instantiate_node(cfg, "trainer", callbacks=[*callbacks, WrapOptimisers()], logger=loggers or False,
                               profiler=profiler, enable_model_summary=False)
    trainer.fit(model=model, datamodule=datamodule)
    # step i runs from fetch i to fetch i + 1: the last fetch (StopIteration or the end) has no full step
    spans = [b - a for a, b in zip(profiler.step_starts, profiler.step_starts[1:])]
    kept = list(range(warmup, len(spans)))
    rows = {row: 1e3 * sum(profiler.steps[i][row] for i in kept) / len(kept) for row in ROWS}
    total = 1e3 * sum(spans[i] for i in kept) / len(kept)
    rows["Lightning (other)"] += total - sum(rows.values())
    dm = cfg.data
    return {"recipe": recipe, "rows": rows, "total_ms": total, "steps": len(kept),
            "batch": int(dm.batch_size), "workers": int(dm.num_workers), "threads": torch.get_num_threads(),
            "precision": str(cfg.trainer.precision) if device == "cuda" else "32-true",
            "device_degradations": bool(dm.get("degrade_on_device", False))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=RECIPES, help="'default' or experiment names")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per recipe")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out at the start")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("-o", "--override", nargs="*", default=[], help="extra Hydra overrides for every recipe")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.steps, args.warmup, args.device, args.override)))
        return
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no GPU on this machine (torch.cuda.is_available() is False); nothing measured.")
        return
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {os.cpu_count()} cores visible"
    print(f"step profile on {where}; {args.steps} steps per recipe after {args.warmup} warm-up steps; "
          f"ms per step (share of the step)")
    results = []
    for recipe in args.recipes:
        cmd = [sys.executable, __file__, "--child", recipe, "--steps", str(args.steps), "--warmup",
               str(args.warmup), "--device", args.device, "-o", *args.override]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONWARNINGS": "ignore", "PROJECT_ROOT": str(ROOT),
                                   "PYTHONPATH": str(ROOT)})
        if proc.returncode != 0:
            print(f"\n{recipe}: failed\n{proc.stderr[-3000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"\n{recipe}: batch {r['batch']}, {r['workers']} loader workers, {r['threads']} intra-op threads, "
              f"{r['precision']}, degradations on the device: {r['device_degradations']}")
        for row in ROWS:
            ms = r["rows"][row]
            print(f"  {row:<36}{ms:>9.1f} ms {100 * ms / r['total_ms']:>6.1f} %")
        print(f"  {'step':<36}{r['total_ms']:>9.1f} ms  ({1e3 / r['total_ms']:.2f} steps/s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
