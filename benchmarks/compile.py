"""Train-step time with and without ``torch.compile`` (what ``train.py compile=true`` does), side by side.

Run by hand:  OMP_NUM_THREADS=1 python benchmarks/compile.py [--net nafnet_tiny] [--batch 8] [--patch 64]
              [--steps 20] [--device cpu] [--mode default]

One fresh subprocess (``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1``: the compile time is a cold one) builds the
network twice from the same seed, eager and compiled (``nn.Module.compile``, as train.py's ``compile_net``).
One step = forward, L1 loss, backward, AdamW step, as ``RestorationModule`` trains. Reported: the first step's
time (for the compiled copy, mostly compiling forward and backward), then ``--steps`` steps of each after 3
warm-up steps, eager and compiled steps alternating so both see the same machine load, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(net_name: str, batch: int, patch: int, steps: int, device: str, mode: str) -> dict:
    import torch

    import restore

    def build(compiled: bool):
        torch.manual_seed(0)
        net = restore.create_model(net_name).to(device)
        if compiled:
            net.compile(mode=None if mode == "default" else mode)
        return net, torch.optim.AdamW(net.parameters(), lr=1e-4)

    variants = {"eager": build(False), "compiled": build(True)}
    x = torch.rand(batch, 3, patch, patch, device=device)
    y = torch.rand_like(x)

    def step(net, opt) -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(net(x), y).backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    first = {name: step(*v) for name, v in variants.items()}
    for _ in range(3):
        for v in variants.values():
            step(*v)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(steps):
        for name, v in variants.items():
            times[name].append(step(*v))
    return {"first_step_s": first, "mean_s": {k: statistics.mean(t) for k, t in times.items()},
            "median_s": {k: statistics.median(t) for k, t in times.items()},
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", default="nafnet_tiny", help="a configs/model/net/<name>.yaml")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", default="default", help="torch.compile mode (default, reduce-overhead, max-autotune)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.net, args.batch, args.patch, args.steps, args.device, args.mode)))
        return
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, __file__, "--net", args.net, "--batch", str(args.batch), "--patch",
                          str(args.patch), "--steps", str(args.steps), "--device", args.device, "--mode", args.mode,
                          "--child"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"failed:\n{out.stderr[-3000:]}", file=sys.stderr)
        sys.exit(1)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{args.net}, batch {args.batch}, {args.patch}², {args.device} ({r['threads']} threads), torch {r['torch']}, "
          f"compile mode {args.mode}; {args.steps} steps each after 3 warm-up, alternating")
    print(f"{'':>9} {'first step s':>13} {'mean s/step':>12} {'median s/step':>14} {'img/s':>7}")
    for name in ("eager", "compiled"):
        print(f"{name:>9} {r['first_step_s'][name]:13.2f} {r['mean_s'][name]:12.4f} {r['median_s'][name]:14.4f} "
              f"{args.batch / r['median_s'][name]:7.1f}")
    print(f"speed-up (eager ÷ compiled, median s/step): {r['median_s']['eager'] / r['median_s']['compiled']:.2f}×; "
          f"compile time ≈ {r['first_step_s']['compiled'] - r['first_step_s']['eager']:.1f} s (first-step difference)")


if __name__ == "__main__":
    main()
