"""Time to quality of the default run: CBSD68 σ = 25 PSNR (RGB protocol) against wall time.

Run by hand (the training part takes the default run's ≤ 10 min; run it alone, e.g. under a lock):
    python benchmarks/time_to_quality.py [--every 500] [--out outputs/time_to_quality] [train.py overrides...]
    python benchmarks/time_to_quality.py --dev <ckpt> [<ckpt> ...]      # the dev split only, no training

The first form runs ``python train.py`` (the default experiment, plus any overrides) with one more
``ModelCheckpoint`` that keeps a checkpoint every ``--every`` steps; each checkpoint's wall time is its file's
time since the command started (start-up, data and validation included). Every checkpoint (EMA weights, as
eval.py loads them) is then measured on CBSD68 σ = 25 (../shared/data; noise seeded from 0, full images,
RGB [0, 1], no crop: data=denoise/cbsd68's protocol) and on the dev split; the table is printed and written
with a plot to ``--out`` (curve.md, curve.json, curve.png).

The dev split (``--dev``): the first 24 images of ../shared/data/train/CBSD432 (sorted), 256² centre crops,
σ = 25 seeded from 0 — training data of the shared sets, kept apart from every test set, on which the default
experiment's settings are chosen.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restore import load_model  # noqa: E402
from restore.data import AddGaussianNoise, CleanImageDataset  # noqa: E402
from restore.metrics.image_quality import ProtocolPSNR  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DEV_ROOT, DEV_IMAGES, DEV_CROP = SHARED / "train" / "CBSD432", 24, 256
TEST_ROOT = SHARED / "denoise" / "CBSD68"


def dev_set() -> CleanImageDataset:
    """The dev split: first 24 CBSD432 images (sorted), 256² centre crops, σ = 25 seeded from 0."""
    return CleanImageDataset(DEV_ROOT, [AddGaussianNoise(sigma=25)], channels=3, seed=0, crop_size=DEV_CROP,
                             length=DEV_IMAGES)


def test_set() -> CleanImageDataset:
    """CBSD68 σ = 25, full images, noise seeded from 0 (configs/data/denoise/cbsd68.yaml's val set)."""
    return CleanImageDataset(TEST_ROOT, [AddGaussianNoise(sigma=25)], channels=3, seed=0)


@torch.inference_mode()
def mean_psnr(net: torch.nn.Module, dataset: CleanImageDataset) -> tuple[float, float]:
    """(input, output) mean per-image PSNR in dB, RGB [0, 1], no crop — what eval.py reports."""
    noisy, restored = ProtocolPSNR("rgb", 0, False), ProtocolPSNR("rgb", 0, False)
    for i in range(len(dataset)):
        sample = dataset[i]
        lq, gt = sample["lq"][None], sample["gt"][None]
        noisy.update(lq.clamp(0, 1), gt)
        restored.update(net(lq).float().clamp(0, 1), gt)
    return float(noisy.compute()), float(restored.compute())


def train_with_checkpoints(out: Path, every: int, overrides: list[str]) -> list[tuple[int, float, Path]]:
    """Run train.py with a checkpoint every ``every`` steps; [(step, seconds since start, path)]."""
    curve_dir = out / "curve_checkpoints"
    callback = ("+callbacks.curve_checkpoint={_target_: lightning.pytorch.callbacks.ModelCheckpoint, "
                f"dirpath: '{curve_dir}', filename: 'step{{step}}', every_n_train_steps: {every}, "
                "save_top_k: -1, auto_insert_metric_name: false}")
    command = [sys.executable, str(ROOT / "train.py"), f"hydra.run.dir={out / 'run'}", callback, *overrides]
    print(" ".join(command[1:]), flush=True)
    start = time.time()
    subprocess.run(command, check=True, cwd=ROOT)
    total = time.time() - start
    points = []
    for path in curve_dir.glob("step*.ckpt"):
        points.append((int(path.stem.removeprefix("step")), path.stat().st_mtime - start, path))
    print(f"train.py: {total:.0f} s wall", flush=True)
    return sorted(points) + [(-1, total, out / "run" / "checkpoints" / "best.ckpt")]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=90)
    curve = [r for r in rows if r["step"] >= 0]
    ax.plot([r["seconds"] / 60 for r in curve], [r["cbsd68"] for r in curve], "o-", label="default run (EMA)")
    ax.axhline(30.71, color="gray", ls="--", lw=1, label="CBM3D 30.71 dB")
    ax.set_title(f"noisy input: {curve[0]['cbsd68_input']:.2f} dB", fontsize=9)
    ax.set_xlabel("wall time (min), 2-core CPU")
    ax.set_ylabel("CBSD68 σ=25 PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev", nargs="+", type=Path, help="only measure these checkpoints on the dev split")
    parser.add_argument("--every", type=int, default=500, help="checkpoint every N training steps")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "time_to_quality"
                        / time.strftime("%Y-%m-%d_%H-%M-%S"))
    parser.add_argument("overrides", nargs="*", help="train.py overrides (default: none, the default run)")
    args = parser.parse_args()
    if not DEV_ROOT.is_dir():
        sys.exit(f"{DEV_ROOT} not found: the dev split and CBSD68 come from ../shared/data beside the checkout")
    if args.dev:
        dev = dev_set()
        for ckpt in args.dev:
            noisy, restored = mean_psnr(load_model(ckpt), dev)
            print(f"{ckpt}: dev σ=25 {noisy:.2f} → {restored:.3f} dB", flush=True)
        return
    if args.out.exists():
        sys.exit(f"{args.out} exists: give another --out (no run overwrites another's files)")
    args.out.mkdir(parents=True)
    points = train_with_checkpoints(args.out, args.every, args.overrides)
    torch.set_num_threads(os.cpu_count() or 1)
    dev, test = dev_set(), test_set()
    rows = []
    for step, seconds, ckpt in points:
        net = load_model(ckpt)
        dev_in, dev_out = mean_psnr(net, dev)
        test_in, test_out = mean_psnr(net, test)
        rows.append({"step": step, "seconds": seconds, "dev": dev_out, "cbsd68": test_out, "cbsd68_input": test_in,
                     "checkpoint": str(ckpt)})
        print(f"step {step if step >= 0 else 'best'}: {seconds:.0f} s, dev {dev_out:.2f} dB, "
              f"CBSD68 σ=25 {test_in:.2f} → {test_out:.2f} dB", flush=True)
    lines = ["| step | wall time | dev σ=25 (dB) | CBSD68 σ=25, RGB (dB) |", "|---|---|---|---|"]
    for r in rows:
        step = r["step"] if r["step"] >= 0 else "best.ckpt (end of run)"
        lines.append(f"| {step} | {r['seconds'] / 60:.1f} min | {r['dev']:.2f} | {r['cbsd68']:.2f} |")
    table = "\n".join(lines)
    print(table)
    (args.out / "curve.md").write_text(table + "\n")
    (args.out / "curve.json").write_text(json.dumps({"overrides": args.overrides, "rows": rows}, indent=1))
    plot(rows, args.out / "curve.png")
    print(f"written: {args.out}/curve.md, curve.json, curve.png")


if __name__ == "__main__":
    main()
