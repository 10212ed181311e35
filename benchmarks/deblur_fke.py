"""DeepRFTv2 Fourier kernel estimator: reversible-column memory/time, FKE overhead, FKE vs no-FKE quality.

Run by hand (each part prints its numbers side by side; ratios are measured, nothing is assumed):

    # 1. reversible vs plain columns, same net and weights: training peak memory and step time at 256²
    python benchmarks/deblur_fke.py memory [--net deeprft_base] [--size 256] [--batch 1] [--steps 3]
    # 2. FKE overhead: step time and MACs with the estimator vs without it (estimator=null) and vs the
    #    spatial ablation (estimator=spatial, equal parameters)
    python benchmarks/deblur_fke.py overhead [--net deeprft_tiny] [--size 256] [--batch 2] [--steps 5]
    # 3. FKE vs no-FKE at equal steps and parameters: --seeds runs of experiment deblur/fke_quick and of
    #    deblur/nofke_quick (train.py subprocesses), tested on CBSD68 blurred with the 4 motion kernels
    #    kernels12_k09..k12 (../shared/data/kernels) and on GoPro_avgframes (tiled 512/128)
    python benchmarks/deblur_fke.py quality [--steps 600] [--seeds 0 1 2] [--cbsd-images 68] [--gopro-images 18]
        [--lanes 2] [train.py overrides, e.g. data.batch_size=4 data.train.patch_size=80]

Memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the peak resident set size of a fresh process
(``resource.getrusage``; glibc told to serve blocks ≥ 64 KiB by mmap, ``MALLOC_MMAP_THRESHOLD_=65536``, so
freed activations leave the resident set at once), reported both as the whole process and as the growth during
training steps over the
process after building the net, its input and the optimizer (what activations and gradients add). Each variant
runs in its own process so one's peak cannot hide the other's.

Step times: wall-clock median and user-CPU-time median per step (one thread: the CPU time is the compute,
robust to other jobs on a shared machine; the wall time is not).

Quality protocol: RGB in [0, 1], images clipped, PSNR/SSIM with no border crop (restore.metrics, rgb). Synthetic
test: each CBSD68 image blurred with each kernel moved to its centre of mass (the training kernels are centred;
kernels12_k09–k12 sit 1–2 px off) (kornia ``filter2d``, reflect borders, clipped, no noise); the
network runs on the whole image. GoPro_avgframes: full 1280×720 frames, ``restore_tensor(tile=512,
tile_overlap=128)``. The checkpoint tested is the run's last (EMA weights), not a val-selected one, because
the quick experiments validate on GoPro_avgframes crops. Spread = min–max over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))


def _net(name: str, **overrides):
    import restore

    return restore.create_model(name, **overrides)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


# -- 1 and 2: one variant per process ---------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    import torch

    from restore.losses import MultiScaleLoss

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(0)
    overrides = json.loads(args.child)
    net = _net(args.net, **overrides)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net = net.to(device).train()
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    gt = torch.rand_like(x)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    loss_fn = MultiScaleLoss()
    # the optimizer's state exists before the measured steps (allocated at its first step)
    for p in net.parameters():
        opt.state[p] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
    base = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base_cuda = torch.cuda.memory_allocated(device) / 2**20
    times, cpu_times = [], []
    for _ in range(args.steps + 1):
        t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x, return_all=True), gt).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
        cpu_times.append(resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0)
    out = {"params": sum(p.numel() for p in net.parameters()), "step_s": statistics.median(times[1:]),
           "step_cpu_s": statistics.median(cpu_times[1:]),
           "peak_rss_mb": _rss_mb(), "base_rss_mb": base}
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 - base_cuda
    from restore.models.summary import count_macs

    out["gmacs"] = count_macs(net.cpu(), (1, 3, args.size, args.size)) / 1e9
    print("RESULT " + json.dumps(out))


def run_child(args: argparse.Namespace, **overrides) -> dict:
    cmd = [sys.executable, __file__, args.part, "--net", args.net, "--size", str(args.size), "--batch", str(args.batch),
           "--steps", str(args.steps), "--child", json.dumps(overrides)]
    cmd += ["--device", args.device] if args.device else []
    # large blocks straight from mmap, returned to the OS on free: the peak RSS then follows live memory
    # instead of glibc's heap high-water mark (fragmentation would otherwise blur the comparison)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"child {overrides} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def memory(args: argparse.Namespace) -> None:
    rows = {name: run_child(args, reversible=rev) for name, rev in (("plain", False), ("reversible", True))}
    p, r = rows["plain"], rows["reversible"]
    print(f"{args.net}, {args.batch}×3×{args.size}², {args.steps} steps (median), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}")
    print(f"{'columns':<12} {'params':>9} {'step s':>8} {'CPU s':>7} {'peak RSS MB':>12} {'growth MB':>10}"
          + (f" {'CUDA MB':>9}" if "peak_cuda_mb" in p else ""))
    for name, row in rows.items():
        cuda = f" {row['peak_cuda_mb']:>9.0f}" if "peak_cuda_mb" in row else ""
        print(f"{name:<12} {row['params']:>9} {row['step_s']:>8.2f} {row['step_cpu_s']:>7.2f} "
              f"{row['peak_rss_mb']:>12.0f} {row['peak_rss_mb'] - row['base_rss_mb']:>10.0f}{cuda}")
    growth = (r["peak_rss_mb"] - r["base_rss_mb"]) / (p["peak_rss_mb"] - p["base_rss_mb"])
    print(f"reversible/plain: step time {r['step_s'] / p['step_s']:.2f}× wall, "
          f"{r['step_cpu_s'] / p['step_cpu_s']:.2f}× "
          f"user CPU (target ≤ 1.4×), "
          f"peak RSS {r['peak_rss_mb'] / p['peak_rss_mb']:.2f}×, training growth {growth:.2f}× (target ≤ 0.6×)"
          + (f", CUDA peak {r['peak_cuda_mb'] / p['peak_cuda_mb']:.2f}×" if "peak_cuda_mb" in p else ""))


def overhead(args: argparse.Namespace) -> None:
    rows = {name: run_child(args, estimator=est) for name, est in
            (("fourier (FKE)", "fourier"), ("spatial (no-FKE)", "spatial"), ("none", "null"))}
    print(f"{args.net}, {args.batch}×3×{args.size}² training steps ({args.steps}, median); MACs of one 1×3×"
          f"{args.size}² forward (convolutions only; FFTs not counted)")
    print(f"{'estimator':<18} {'params':>9} {'GMACs':>7} {'step s':>8} {'CPU s':>7}")
    for name, row in rows.items():
        print(f"{name:<18} {row['params']:>9} {row['gmacs']:>7.2f} {row['step_s']:>8.2f} {row['step_cpu_s']:>7.2f}")
    f, n = rows["fourier (FKE)"], rows["none"]
    print(f"FKE vs none: step time {f['step_s'] / n['step_s']:.2f}× wall, "
          f"{f['step_cpu_s'] / n['step_cpu_s']:.2f}× user CPU, "
          f"MACs {f['gmacs'] / n['gmacs']:.2f}×, "
          f"params {f['params'] / n['params']:.2f}×")


# -- 3: quality ------------------------------------------------------------------------------------------
def _train(experiment: str, seed: int, steps: int, extra: list[str], out: Path) -> Path:
    run_dir = out / f"{experiment.replace('/', '_')}_seed{seed}"
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        cmd = [sys.executable, str(ROOT / "train.py"), f"experiment={experiment}", f"seed={seed}",
               f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}", "+trainer.limit_val_batches=2",
               "logger=csv", f"hydra.run.dir={run_dir}", *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return ckpt


def _synthetic_set(n_images: int):
    """CBSD68 × kernels12_k09–k12, as configs/data/deblur/test.yaml makes them for eval.py."""
    from restore.data import KernelBlur
    from restore.utils.image import read_image

    images = sorted((SHARED / "denoise" / "CBSD68").glob("*.png"))[:n_images]
    blurs = [KernelBlur(str(SHARED / "kernels" / f"kernels12_k{k:02d}.txt"), center=True) for k in (9, 10, 11, 12)]
    for path in images:
        gt = read_image(path, 3)
        for blur in blurs:
            yield blur(gt)[None], gt[None]


def _gopro_set(n_images: int):
    from restore.utils.image import read_image

    for path in sorted((SHARED / "deblur" / "GoPro_avgframes" / "blur").glob("*.png"))[:n_images]:
        gt = SHARED / "deblur" / "GoPro_avgframes" / "gt" / f"{path.stem}_gt.png"
        yield read_image(path, 3)[None], read_image(gt, 3)[None]


def _test(ckpt: Path, cbsd_images: int, gopro_images: int) -> dict:
    import torch

    from restore.checkpoint import load_model
    from restore.inference import restore_tensor
    from restore.metrics import ImageQualityMetrics

    torch.set_num_threads(1)
    net = load_model(ckpt)
    result = {}
    for name, pairs, tile in (("cbsd68_motion", _synthetic_set(cbsd_images) if cbsd_images else [], None),
                              ("gopro_avg", _gopro_set(gopro_images) if gopro_images else [], 512)):
        out_m, in_m = ImageQualityMetrics("rgb"), ImageQualityMetrics("rgb")
        for lq, gt in pairs:
            out_m.update(restore_tensor(net, lq, tile=tile, tile_overlap=128), gt)
            in_m.update(lq, gt)
        if out_m.count:
            result[name] = {"psnr": float(out_m.compute()["psnr"]), "ssim": float(out_m.compute()["ssim"]),
                            "psnr_input": float(in_m.compute()["psnr"]), "ssim_input": float(in_m.compute()["ssim"]),
                            "images": out_m.count}
    return result


def quality(args: argparse.Namespace, extra: list[str]) -> None:
    out = args.out
    jobs = [(exp, seed) for seed in args.seeds for exp in ("deblur/fke_quick", "deblur/nofke_quick")]

    def job(item):
        exp, seed = item
        t0 = time.perf_counter()
        ckpt = _train(exp, seed, args.steps, extra, out)
        train_s = time.perf_counter() - t0
        cache = ckpt.parent.parent / f"test_{args.cbsd_images}_{args.gopro_images}_centred.json"
        if not cache.is_file():
            env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
            proc = subprocess.run([sys.executable, __file__, "test", "--ckpt", str(ckpt), "--cbsd-images",
                                   str(args.cbsd_images), "--gopro-images", str(args.gopro_images)],
                                  capture_output=True, text=True, env=env, cwd=ROOT)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                raise RuntimeError(f"test of {ckpt} failed:\n{proc.stderr[-3000:]}")
            cache.write_text(line[len("RESULT "):])
        return exp, seed, train_s, json.loads(cache.read_text())

    with ThreadPoolExecutor(args.lanes) as pool:
        rows = list(pool.map(job, jobs))
    print(f"{args.steps} steps per run, seeds {args.seeds}, overrides {extra or 'none'}; RGB [0,1], no crop; "
          f"CBSD68: first {args.cbsd_images} images × kernels12_k09–k12 (whole image, no noise); "
          f"GoPro_avgframes: first {args.gopro_images} frames, tiled 512/128; last checkpoint (EMA)")
    print(f"{'experiment':<20} {'seed':>4} {'train s':>8} {'CBSD68 in':>10} {'out':>7} {'SSIM':>6} "
          f"{'GoPro in':>9} {'out':>7} {'SSIM':>6}")
    for exp, seed, train_s, r in rows:
        c, g = r.get("cbsd68_motion", {}), r.get("gopro_avg", {})
        print(f"{exp:<20} {seed:>4} {train_s:>8.0f} {c.get('psnr_input', float('nan')):>10.2f} "
              f"{c.get('psnr', float('nan')):>7.2f} {c.get('ssim', float('nan')):>6.3f} "
              f"{g.get('psnr_input', float('nan')):>9.2f} {g.get('psnr', float('nan')):>7.2f} "
              f"{g.get('ssim', float('nan')):>6.3f}")
    print("mean over seeds [min–max]:")
    for exp in ("deblur/fke_quick", "deblur/nofke_quick"):
        for test in ("cbsd68_motion", "gopro_avg"):
            vals = [r[test] for e, _, _, r in rows if e == exp and test in r]
            if not vals:
                continue
            ps, ss = [v["psnr"] for v in vals], [v["ssim"] for v in vals]
            print(f"  {exp:<20} {test:<14} PSNR {statistics.mean(ps):.2f} [{min(ps):.2f}–{max(ps):.2f}]  "
                  f"SSIM {statistics.mean(ss):.4f} [{min(ss):.4f}–{max(ss):.4f}]  input {vals[0]['psnr_input']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["memory", "overhead", "quality", "test"])
    parser.add_argument("--net", default=None, help="configs/model/net/<name>.yaml")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cbsd-images", type=int, default=68)
    parser.add_argument("--gopro-images", type=int, default=18)
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "deblur_fke")
    parser.add_argument("--ckpt", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args()
    defaults = {"memory": ("deeprft_base", 1, 3), "overhead": ("deeprft_tiny", 2, 5), "quality": (None, None, 600)}
    net, batch, steps = defaults.get(args.part, (None, 1, 1))
    args.net, args.batch, args.steps = args.net or net, args.batch or batch, args.steps or steps
    if args.child is not None:
        child(args)
    elif args.part == "memory":
        memory(args)
    elif args.part == "overhead":
        overhead(args)
    elif args.part == "test":
        print("RESULT " + json.dumps(_test(args.ckpt, args.cbsd_images, args.gopro_images)))
    else:
        quality(args, extra)


if __name__ == "__main__":
    main()
