"""DeepRFTv2 Fourier kernel estimator: reversible-column memory/time, FKE overhead, FKE vs no-FKE quality.

Run by hand (each part prints its numbers side by side; ratios are measured, nothing is assumed):

    # 1. reversible vs plain columns, same net and weights: training peak memory and step time at 256²
    python benchmarks/deblur_fke.py memory [--net deeprft_base] [--size 256] [--batch 1] [--steps 3]
    # 2. FKE overhead: step time and MACs with the estimator vs without it (estimator=null) and vs the
    #    spatial ablation (estimator=spatial, equal parameters)
    python benchmarks/deblur_fke.py overhead [--net deeprft_tiny] [--size 256] [--batch 2] [--steps 5]
    # 3. FKE vs no-FKE at equal steps and parameters: --seeds runs of experiment deblur/fke_camera_shake and of
    #    deblur/nofke_camera_shake (--pair quick: deblur/{fke,nofke}_quick; train.py subprocesses), tested on
    #    CBSD68 blurred with the 4 motion kernels kernels12_k09..k12 (../shared/data/kernels) and on GoPro_avgframes
    python benchmarks/deblur_fke.py quality [--pair camera_shake] [--steps 450] [--seeds 0 1 2] [--cbsd-images 68]
        [--gopro-images 18] [--lanes 2] [train.py overrides, e.g. data.batch_size=4]

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
def _train(experiment: str, seed: int, steps: int | None, extra: list[str], out: Path) -> Path:
    """``train.py experiment=<experiment> seed=<seed>`` (one thread) into ``out``, unless its last.ckpt exists."""
    run_dir = out / f"{experiment.replace('/', '_')}_seed{seed}"
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        length = [f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}"] if steps else []
        cmd = [sys.executable, str(ROOT / "train.py"), f"experiment={experiment}", f"seed={seed}", *length,
               "logger=csv", f"hydra.run.dir={run_dir}", "++trainer.enable_progress_bar=false",
               "~callbacks.rich_progress_bar", *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return ckpt


SETS = ("cbsd68_k09", "cbsd68_k10", "cbsd68_k11", "cbsd68_k12", "gopro_avg")


def _synthetic_set(n_images: int, kernel: int):
    """The first ``n_images`` of CBSD68 × kernels12_k<kernel>, as configs/data/deblur/test.yaml makes them."""
    from restore.data import KernelBlur
    from restore.utils.image import read_image

    blur = KernelBlur(str(SHARED / "kernels" / f"kernels12_k{kernel:02d}.txt"), center=True)
    for path in sorted((SHARED / "denoise" / "CBSD68").glob("*.png"))[:n_images]:
        gt = read_image(path, 3)
        yield blur(gt)[None], gt[None]


def _gopro_set(n_images: int):
    from restore.utils.image import read_image

    for path in sorted((SHARED / "deblur" / "GoPro_avgframes" / "blur").glob("*.png"))[:n_images]:
        gt = SHARED / "deblur" / "GoPro_avgframes" / "gt" / f"{path.stem}_gt.png"
        yield read_image(path, 3)[None], read_image(gt, 3)[None]


def _test(ckpt: Path, cbsd_images: int, gopro_images: int) -> dict:
    """PSNR/SSIM (RGB [0, 1], no crop) of the checkpoint's output and of its input on each test set; whole images
    (a net with ``tile`` set tiles itself; else GoPro frames in 512/128 tiles)."""
    import torch

    from restore.checkpoint import load_model
    from restore.inference import restore_tensor
    from restore.metrics import ImageQualityMetrics

    torch.set_num_threads(1)
    net = load_model(ckpt)
    result = {}
    for name in SETS:
        if name == "gopro_avg":
            pairs, tile = (_gopro_set(gopro_images) if gopro_images else []), 512
        else:
            pairs, tile = (_synthetic_set(cbsd_images, int(name[-2:])) if cbsd_images else []), None
        tile = None if getattr(net, "tile", None) else tile
        out_m, in_m = ImageQualityMetrics("rgb"), ImageQualityMetrics("rgb")
        for lq, gt in pairs:
            out_m.update(restore_tensor(net, lq, tile=tile, tile_overlap=128), gt)
            in_m.update(lq, gt)
        if out_m.count:
            out, inp = out_m.compute(), in_m.compute()
            result[name] = {"psnr": float(out["psnr"]), "ssim": float(out["ssim"]), "psnr_input": float(inp["psnr"]),
                            "ssim_input": float(inp["ssim"]), "images": out_m.count}
    return result


def _run_test(ckpt: Path, cbsd_images: int, gopro_images: int) -> dict:
    """:func:`_test` in a one-thread subprocess, cached beside the run."""
    cache = ckpt.parent.parent / f"test_{cbsd_images}_{gopro_images}.json"
    if not cache.is_file():
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([sys.executable, __file__, "test", "--ckpt", str(ckpt), "--cbsd-images",
                               str(cbsd_images), "--gopro-images", str(gopro_images)],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"test of {ckpt} failed:\n{proc.stderr[-3000:]}")
        cache.write_text(line[len("RESULT "):])
    return json.loads(cache.read_text())


#: FKE and its no-FKE ablation (equal parameters, data, steps and schedule), by --pair
PAIRS = {"quick": ("deblur/fke_quick", "deblur/nofke_quick"),
         "camera_shake": ("deblur/fke_camera_shake", "deblur/nofke_camera_shake")}


def quality(args: argparse.Namespace, extra: list[str]) -> None:
    """FKE vs no-FKE: ``--seeds`` runs of each experiment (equal parameters, steps and data), each tested on
    CBSD68 × k09–k12 (centred) and GoPro_avgframes; the difference of the means against the seeds' spread."""
    experiments = PAIRS[args.pair]
    jobs = [(exp, seed) for seed in args.seeds for exp in experiments]

    def job(item):
        exp, seed = item
        t0 = time.perf_counter()
        ckpt = _train(exp, seed, args.steps, extra, args.out)
        train_s = time.perf_counter() - t0
        return exp, seed, train_s, _run_test(ckpt, args.cbsd_images, args.gopro_images)

    with ThreadPoolExecutor(args.lanes) as pool:
        rows = list(pool.map(job, jobs))
    print(f"{args.steps or 'the experiments'} steps per run, seeds {args.seeds}, overrides {extra or 'none'}; "
          f"RGB [0,1], no crop; CBSD68: first {args.cbsd_images} images × kernels12_k09–k12 centred (whole image, "
          f"no noise); GoPro_avgframes: first {args.gopro_images} frames; last checkpoint (EMA)")
    names = [n for n in SETS if n in rows[0][3]]
    print(f"{'experiment':<20} {'seed':>4} {'train s':>8} " + " ".join(f"{n:>11}" for n in names) + "    mean")
    inputs = rows[0][3]
    print(f"{'input':<20} {'':>4} {'':>8} " + " ".join(f"{inputs[n]['psnr_input']:>11.2f}" for n in names)
          + f"  {statistics.mean(inputs[n]['psnr_input'] for n in names):>6.2f}")
    means = {}
    for exp, seed, train_s, r in rows:
        means[(exp, seed)] = statistics.mean(r[n]["psnr"] for n in names)
        print(f"{exp:<20} {seed:>4} {train_s:>8.0f} " + " ".join(f"{r[n]['psnr']:>11.2f}" for n in names)
              + f"  {means[(exp, seed)]:>6.2f}")
    print("mean over seeds [min–max], PSNR:")
    for name in names + ["mean"]:
        line = []
        for exp in experiments:
            vals = [means[(e, s)] if name == "mean" else r[name]["psnr"] for e, s, _, r in rows if e == exp]
            line.append((statistics.mean(vals), min(vals), max(vals)))
        (fm, flo, fhi), (nm, nlo, nhi) = line
        print(f"  {name:<11} FKE {fm:.2f} [{flo:.2f}–{fhi:.2f}]  no-FKE {nm:.2f} [{nlo:.2f}–{nhi:.2f}]  "
              f"FKE − no-FKE {fm - nm:+.2f} (spreads {fhi - flo:.2f}, {nhi - nlo:.2f}; "
              f"worst FKE − best no-FKE {flo - nhi:+.2f})")


# -- the simulator's kernels against the held-out ones ---------------------------------------------------------
def _kernel_stats(kernel) -> dict:
    """Size and shape of a kernel: principal-axis length of its support (> 5 % of the peak) and RMS radius (px),
    elongation √(λ_min/λ_max) of its coordinate covariance (0 a line, 1 round), and support pixels per px of
    length (≈ 1–2 for a thin straight path, more for a curled or thick one)."""
    import numpy as np

    from restore.semiblind.kernels import kernel_length, rms_radius

    k = np.asarray(kernel, dtype=np.float64)
    k = k / k.sum()
    yy, xx = np.indices(k.shape)
    cy, cx = (yy * k).sum(), (xx * k).sum()
    dy, dx = (yy - cy).ravel(), (xx - cx).ravel()
    cov = np.array([[np.sum(k.ravel() * dx * dx), np.sum(k.ravel() * dx * dy)],
                    [np.sum(k.ravel() * dx * dy), np.sum(k.ravel() * dy * dy)]])
    low, high = np.linalg.eigvalsh(cov)
    length = kernel_length(k)
    return {"length": length, "rms": rms_radius(k), "elongation": float(np.sqrt(max(low, 0.0) / high)),
            "fill": float((k > 0.05 * k.max()).sum() / length)}


def _held_out_kernels() -> dict:
    import numpy as np

    from restore.data import load_kernel

    kernels = {f"k{i:02d}": load_kernel(SHARED / "kernels" / f"kernels12_k{i:02d}.txt").numpy() for i in range(9, 13)}
    for i in (1, 2):
        kernels[f"large {i}"] = np.asarray(load_kernel(SHARED / "kernels" / f"k_large_{i}.png"))
    return kernels


def kernels(args: argparse.Namespace) -> None:
    """Held-out check of the simulator: the size/shape statistics of ``--samples`` kernels of deblur/camera_shake's
    CameraShakeBlur against kernels12 k09–k12 and the two large kernels (which no training run reads); prints
    percentiles and where each held-out kernel falls, and plots both (``--plot``)."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from restore.data import CameraShakeBlur

    cfg = OmegaConf.load(ROOT / "configs" / "data" / "deblur" / "camera_shake.yaml").train.degradations[0]
    blur = CameraShakeBlur(**{k: v for k, v in OmegaConf.to_container(cfg).items() if k != "_target_"})
    generator = torch.Generator().manual_seed(0)
    sim = [_kernel_stats(blur.kernel(generator).numpy()) for _ in range(args.samples)]
    held = {name: _kernel_stats(k) for name, k in _held_out_kernels().items()}
    keys = ("length", "rms", "elongation", "fill")
    table = {key: np.array([s[key] for s in sim]) for key in keys}
    print(f"{blur!r}: {args.samples} kernels (seed 0); percentiles 0/5/50/95/100, then each held-out kernel "
          "with its percentile in the simulator's distribution")
    for key in keys:
        v = table[key]
        pct = "  ".join(f"{name} {held[name][key]:.2f} ({(v < held[name][key]).mean():.0%})" for name in held)
        print(f"  {key:<10} {np.percentile(v, [0, 5, 50, 95, 100]).round(2)}  |  {pct}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=90)
        for ax, (kx, ky, label) in zip(axes, (("length", "rms", ("principal length (px)", "RMS radius (px)")),
                                              ("elongation", "fill", ("elongation √(λmin/λmax)",
                                                                      "support px per px of length")))):
            ax.scatter(table[kx], table[ky], s=4, alpha=0.35, color="tab:blue", label="simulator")
            for name, st in held.items():
                marker, color = ("o", "tab:red") if name.startswith("k") else ("s", "tab:orange")
                ax.scatter(st[kx], st[ky], s=40, marker=marker, color=color, edgecolor="k", zorder=3)
                ax.annotate(name, (st[kx], st[ky]), textcoords="offset points", xytext=(4, 4), fontsize=8)
            ax.set_xlabel(label[0])
            ax.set_ylabel(label[1])
        axes[0].legend(loc="upper left", fontsize=8)
        fig.suptitle("camera-shake simulator (deblur/camera_shake) vs held-out kernels", fontsize=10)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot)
        # the first 16 kernels drawn and the held-out ones, each on a 41-px canvas (larger ones cropped), own max
        shown = [blur.kernel(torch.Generator().manual_seed(i)).numpy() for i in range(16)]
        fig, axes = plt.subplots(2, 11, figsize=(11, 2.3), dpi=90)
        for ax, (name, k) in zip(axes.T.ravel(), [(f"#{i}", k) for i, k in enumerate(shown)]
                                 + list(_held_out_kernels().items())):
            canvas = np.zeros((41, 41))
            c = min(41, k.shape[0]), min(41, k.shape[1])
            oy, ox = (k.shape[0] - c[0]) // 2, (k.shape[1] - c[1]) // 2
            canvas[(41 - c[0]) // 2:(41 - c[0]) // 2 + c[0], (41 - c[1]) // 2:(41 - c[1]) // 2 + c[1]] = \
                k[oy:oy + c[0], ox:ox + c[1]]
            ax.imshow(canvas / canvas.max(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(name, fontsize=7, color="k" if name.startswith("#") else "tab:red")
            ax.axis("off")
        fig.tight_layout()
        grid = args.plot.with_name(args.plot.stem + "_examples.png")
        fig.savefig(grid)
        print(f"plots: {args.plot}, {grid}")


# -- the dev split: held-out CBSD432 photographs to choose settings on ------------------------------------------
def dev_split(args: argparse.Namespace) -> None:
    """outputs/deblur_dev/{train,val}: links to CBSD432, every 12th photograph (sorted) held out for validation
    (configs/data/deblur/camera_shake_dev.yaml reads them). Nothing is copied."""
    files = sorted((SHARED / "train" / "CBSD432").glob("*.jpg"))
    if not files:
        raise SystemExit(f"no CBSD432 photographs under {SHARED / 'train' / 'CBSD432'}")
    out = ROOT / "outputs" / "deblur_dev"
    for i, path in enumerate(files):
        link = out / ("val" if i % 12 == 0 else "train") / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path.resolve())
    print(f"{out}: train {len(list((out / 'train').iterdir()))}, val {len(list((out / 'val').iterdir()))} links")


def dev_eval(args: argparse.Namespace) -> None:
    """PSNR of a checkpoint on the dev split's validation set (data/deblur/camera_shake_dev: 72 whole held-out
    CBSD432 photographs with seeded camera shake), as trained and with the inference variants given by
    ``--variants`` (``whole``: no tiles; ``window=<n>``: the full-resolution estimator window, n/4 overlap)."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from restore.checkpoint import load_model
    from restore.inference import restore_tensor
    from restore.metrics import ImageQualityMetrics

    torch.set_num_threads(1)
    cfg = OmegaConf.load(ROOT / "configs" / "data" / "deblur" / "camera_shake_dev.yaml")
    base = OmegaConf.load(ROOT / "configs" / "data" / "deblur" / "camera_shake.yaml")
    val = OmegaConf.merge(base.val, cfg.val)
    val.root = str(ROOT / "outputs" / "deblur_dev" / "val")
    dataset = instantiate(val, channels=3)
    net = load_model(args.ckpt).eval()
    for variant in ["as trained", *args.variants]:
        if variant == "whole":
            net.tile = None
        elif variant.startswith("window="):
            n = int(variant.split("=")[1])
            for s, est in enumerate(net.estimators):
                f = 2 ** (net.scales - 1 - s)
                est.window, est.window_overlap = n // f, n // 4 // f
        out_m, in_m = ImageQualityMetrics("rgb"), ImageQualityMetrics("rgb")
        for i in range(len(dataset)):
            sample = dataset[i]
            lq, gt = sample["lq"][None], sample["gt"][None]
            out_m.update(restore_tensor(net, lq), gt)
            in_m.update(lq, gt)
        print(f"{args.ckpt} [{variant}, tile={net.tile}]: dev PSNR {float(in_m.compute()['psnr']):.2f} → "
              f"{float(out_m.compute()['psnr']):.2f} ({len(dataset)} images)", flush=True)


def kernel_figure(args: argparse.Namespace) -> None:
    """The kernels a trained FKE estimates next to the true ones: for the first ``--images`` CBSD68 images blurred
    with kernels12_k09–k12 (centred), the true kernel and, at full resolution, the estimator's per-channel kernels
    |irfft2(K)| of the window at the image's centre (the ``--channels`` with the largest spread), each scaled to its
    own peak. They are kernels of feature channels, not of the image: they show what the estimator does, not a
    blur estimate to compare tap by tap."""
    import matplotlib
    import numpy as np
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from restore.checkpoint import load_model
    from restore.data import KernelBlur

    torch.set_num_threads(1)
    net = load_model(args.ckpt).eval()
    crop = 41
    rows = []
    for k in (9, 10, 11, 12):
        blur = KernelBlur(str(SHARED / "kernels" / f"kernels12_k{k:02d}.txt"), center=True)
        for lq, _ in list(_synthetic_set(args.images, k)):
            kernels = net.estimate_kernels(lq, crop=crop)[-1][0].numpy()  # (C, crop, crop), full resolution
            yy, xx = np.indices((crop, crop)) - crop // 2
            spread = [float((kk / kk.sum() * (yy**2 + xx**2)).sum()) for kk in kernels]
            chosen = np.argsort(spread)[::-1][:args.channels]
            # KernelBlur correlates with the file's kernel: the blur's PSF is the kernel flipped
            true = blur.kernel.flip(-2, -1).numpy()
            rows.append((f"k{k:02d}", true, [(c, kernels[c]) for c in chosen]))
    fig, axes = plt.subplots(len(rows), 1 + args.channels, figsize=(1.3 * (1 + args.channels), 1.4 * len(rows)),
                             dpi=90, squeeze=False)
    for ax_row, (name, true, est) in zip(axes, rows):
        canvas = np.zeros((crop, crop))
        o = (crop - true.shape[0]) // 2
        canvas[o:o + true.shape[0], o:o + true.shape[1]] = true
        ax_row[0].imshow(canvas / canvas.max(), cmap="gray")
        ax_row[0].set_title(f"true {name}", fontsize=7)
        for ax, (c, kk) in zip(ax_row[1:], est):
            ax.imshow(kk, cmap="gray")
            ax.set_title(f"FKE ch {c}", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot)
    print(f"plot: {args.plot}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["memory", "overhead", "quality", "test", "dev-split", "dev-eval", "kernels",
                                         "kernel-figure"])
    parser.add_argument("--net", default=None, help="configs/model/net/<name>.yaml")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cbsd-images", type=int, default=68)
    parser.add_argument("--gopro-images", type=int, default=18)
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--pair", choices=sorted(PAIRS), default="camera_shake",
                        help="quality: deblur/{fke,nofke}_camera_shake (the zoo recipe's) or deblur/{fke,nofke}_quick")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "deblur_fke")
    parser.add_argument("--variants", nargs="*", default=[], help="dev-eval: whole | window=<n> (cumulative)")
    parser.add_argument("--images", type=int, default=1, help="kernel-figure: CBSD68 images per kernel")
    parser.add_argument("--channels", type=int, default=4, help="kernel-figure: estimated kernels shown per image")
    parser.add_argument("--samples", type=int, default=2000, help="kernels: simulator kernels drawn")
    parser.add_argument("--plot", type=Path, default=None, help="kernels: write the scatter plot here (PNG)")
    parser.add_argument("--ckpt", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args()
    defaults = {"memory": ("deeprft_base", 1, 3), "overhead": ("deeprft_tiny", 2, 5), "quality": (None, None, None)}
    net, batch, steps = defaults.get(args.part, (None, 1, 1))
    args.net, args.batch, args.steps = args.net or net, args.batch or batch, args.steps or steps
    if args.child is not None:
        child(args)
    elif args.part == "memory":
        memory(args)
    elif args.part == "overhead":
        overhead(args)
    elif args.part == "kernel-figure":
        kernel_figure(args)
    elif args.part == "dev-eval":
        dev_eval(args)
    elif args.part == "kernels":
        kernels(args)
    elif args.part == "dev-split":
        dev_split(args)
    elif args.part == "test":
        print("RESULT " + json.dumps(_test(args.ckpt, args.cbsd_images, args.gopro_images)))
    else:
        quality(args, extra)


if __name__ == "__main__":
    main()
