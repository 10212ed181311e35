"""Quality at equal budget: each tiny backbone trained for the same steps on the embedded data,
then evaluated on the embedded val images and on CBSD68 σ=25 (../shared/data, skipped if absent).

Run by hand:
    python benchmarks/quality_equal_budget.py --steps 1000 [--nets denoise/nafnet_tiny denoise/convnext_tiny]
        [--cbsd-images 68] [--lanes 2]

Each experiment runs `train.py` then `eval.py` in subprocesses (one OpenMP thread each, `--lanes`
of them at a time) and the table compares val PSNR/SSIM (RGB protocol) side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ["denoise/nafnet_tiny", "denoise/convnext_tiny", "denoise/inceptionnext_tiny", "denoise/unireplknet_tiny"]


def _all_images(metrics_json: Path) -> dict:
    """metrics.json's "all" row ({metric: {"output", "input"}}) as {"psnr": out, "psnr_input": in, ...}."""
    row = json.loads(metrics_json.read_text())["metrics"]["all"]
    return {**{n: v["output"] for n, v in row.items()}, **{f"{n}_input": v["input"] for n, v in row.items()}}


def run_one(experiment: str, steps: int, cbsd_images: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    run_dir = out / experiment.replace("/", "_")
    t0 = time.perf_counter()
    # one optimiser setting for every net (the default experiment's own lr 1e-2 was tuned for NAFNet tiny alone)
    subprocess.run([sys.executable, str(ROOT / "train.py"), f"experiment={experiment}", f"trainer.max_steps={steps}",
                    f"trainer.val_check_interval={steps}", "model.optimizer.lr=1e-3",
                    f"hydra.run.dir={run_dir / 'train'}"],
                   check=True, capture_output=True, env=env, cwd=ROOT)
    train_s = time.perf_counter() - t0
    row = {"experiment": experiment, "train_s": train_s,
           "val": _all_images(run_dir / "train" / "metrics.json")}
    shared = ROOT.parent / "shared" / "data" / "denoise" / "CBSD68"
    if cbsd_images and shared.is_dir():
        subprocess.run([sys.executable, str(ROOT / "eval.py"), f"ckpt_path={run_dir / 'train/checkpoints/best.ckpt'}",
                        "data=denoise/cbsd68", f"+trainer.limit_test_batches={cbsd_images}",
                        f"hydra.run.dir={run_dir / 'eval'}"], check=True, capture_output=True, env=env, cwd=ROOT)
        row["cbsd68"] = _all_images(run_dir / "eval" / "metrics.json")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--nets", nargs="+", default=EXPERIMENTS)
    parser.add_argument("--cbsd-images", type=int, default=68, help="CBSD68 images to test on (0: skip)")
    parser.add_argument("--lanes", type=int, default=1, help="experiments run at once")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "quality_equal_budget")
    args = parser.parse_args()
    with ThreadPoolExecutor(args.lanes) as pool:
        rows = list(pool.map(lambda e: run_one(e, args.steps, args.cbsd_images, args.out), args.nets))
    print(f"{args.steps} steps of 8×64² patches each; PSNR/SSIM under the RGB [0,1], no-crop protocol")
    print(f"{'experiment':<28} {'train s':>8} {'val in':>7} {'val out':>8} {'val SSIM':>9} "
          f"{'CBSD68 in':>10} {'CBSD68 out':>11} {'SSIM':>6}")
    base = rows[0]
    for r in rows:
        c = r.get("cbsd68", {})
        print(f"{r['experiment']:<28} {r['train_s']:>8.0f} {r['val']['psnr_input']:>7.2f} {r['val']['psnr']:>8.2f} "
              f"{r['val']['ssim']:>9.4f} {c.get('psnr_input', float('nan')):>10.2f} "
              f"{c.get('psnr', float('nan')):>11.2f} "
              f"{c.get('ssim', float('nan')):>6.4f}")
    for r in rows[1:]:
        print(f"{r['experiment']} vs {base['experiment']}: val {r['val']['psnr'] - base['val']['psnr']:+.2f} dB, "
              f"train time ×{r['train_s'] / base['train_s']:.2f}")


if __name__ == "__main__":
    main()
