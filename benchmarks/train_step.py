"""Train-step time and peak memory of the baseline network at 128² and 256² patches.

Run by hand:  python benchmarks/train_step.py [--net nafnet_tiny] [--batch 8] [--steps 10]

Each (patch size) runs in a fresh subprocess so the peak resident memory (CPU) or
``max_memory_allocated`` (CUDA) belongs to that configuration alone; ratios are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bare_training_step(net, opt, x, y, clip: float | None = None, ema=None) -> None:
    """One plain PyTorch training step: L1 loss, backward, optional gradient-norm clipping, optimiser step, optional
    EMA update (a ``torch.optim.swa_utils.AveragedModel``); the reference loop the toolkit's step is compared with."""
    import torch

    opt.zero_grad(set_to_none=True)
    torch.nn.functional.l1_loss(net(x).float(), y).backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    opt.step()
    if ema is not None:
        ema.update_parameters(net)


def measure(net_name: str, patch: int, batch: int, steps: int, device: str) -> dict:
    import torch

    import restore

    net = restore.create_model(net_name).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.rand(batch, net.in_channels, patch, patch, device=device)
    y = torch.rand_like(x)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step() -> None:
        bare_training_step(net, opt, x, y)

    for _ in range(2):  # warm-up
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"patch": patch, "step_s": dt, "img_per_s": batch / dt, "peak_mib": peak,
            "peak_kind": "cuda max_allocated" if device == "cuda"
            else f"process max RSS (+{(peak - rss0 / 1024):.0f} MiB in steps)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", default="nafnet_tiny", help="a configs/model/net/<name>.yaml")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--patches", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--device", default=None)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.child is not None:
        print(json.dumps(measure(args.net, args.child, args.batch, args.steps, device)))
        return
    rows = []
    for patch in args.patches:
        out = subprocess.run([sys.executable, __file__, "--net", args.net, "--batch", str(args.batch),
                              "--steps", str(args.steps), "--device", device, "--child", str(patch)],
                             check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.net}, batch {args.batch}, {device} ({torch.get_num_threads()} threads)")
    print(f"{'patch':>6} {'s/step':>8} {'img/s':>8} {'peak MiB':>9}  peak measured as")
    for r in rows:
        print(f"{r['patch']:>6} {r['step_s']:>8.3f} {r['img_per_s']:>8.1f} {r['peak_mib']:>9.0f}  {r['peak_kind']}")
    base = rows[0]
    for r in rows[1:]:
        print(f"{r['patch']}² vs {base['patch']}²: time ×{r['step_s'] / base['step_s']:.2f} "
              f"(pixels ×{(r['patch'] / base['patch']) ** 2:.0f}), peak memory ×{r['peak_mib'] / base['peak_mib']:.2f}")


if __name__ == "__main__":
    main()
