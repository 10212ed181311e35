"""MIR-L on the CPU: IMP with rewinding vs its controls, export size and CPU inference time.

Run by hand (one OpenMP thread per run):
    python benchmarks/pruning.py                       # full scale: prune/mirl_quick as configured
    python benchmarks/pruning.py --steps 150 --patch 48 --val-crop 128   # what fits a shared 2-core CPU
    python benchmarks/pruning.py --measure-only --out <folder of an earlier run>

Arms (same network, data, final sparsity and total training steps, (N+1)·S):
* ``imp``: lottery-ticket IMP, N rounds at 20% (global |w|), rewinding to θ₀ (pruning=imp);
* ``one_shot``: train S steps, prune once to 0.8^N of the prunable weights, fine-tune N·S steps
  (pruning=one_shot: no rewinding);
* ``random``: the IMP schedule with random pruning and rewinding to θ₀ (pruning=random);
* ``imp_layer`` (``--arms imp_layer``): IMP with per-layer thresholds (pruning.scope=layer), so no layer empties.

Then, without training: export size (dense ``restore.export_model`` vs ``restore-sparse``, with
int32 indices, bitmask and the per-tensor choice), CPU inference time of the dense and the pruned
network (1 thread, 256², median of repeats) and the sparsity of a pruned UniRepLKNet's merged
(deploy) kernels. Every PSNR/SSIM is on the RGB [0,1], no-crop protocol (the run's first metric).
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
sys.path.insert(0, str(ROOT))


def arm_overrides(arm: str, rounds: int, steps: int) -> list[str]:
    if arm == "imp":
        return ["pruning=imp", f"pruning.rounds={rounds}"]
    if arm == "random":
        return ["pruning=random", f"pruning.rounds={rounds}"]
    if arm == "one_shot":
        return ["pruning=one_shot", f"pruning.rounds={rounds}"]
    if arm == "imp_layer":  # IMP with per-layer thresholds: every layer keeps 0.8^r of its weights
        return ["pruning=imp", "pruning.scope=layer", f"pruning.rounds={rounds}"]
    raise ValueError(f"unknown arm {arm!r}")


def run_arm(arm: str, args: argparse.Namespace) -> dict:
    run_dir = args.out / arm
    overrides = ["experiment=prune/mirl_quick", f"trainer.max_steps={args.steps}",
                 f"trainer.val_check_interval={args.steps}", f"data.num_workers={args.workers}",
                 *[f"data.train.{i}.patch_size={args.patch}" for i in range(3)],
                 *arm_overrides(arm, args.rounds, args.steps)]
    if args.val_crop:
        overrides += [f"+data.val.{i}.crop_size={args.val_crop}" for i in range(3)]
    if (run_dir / "pruning_state.json").is_file():
        overrides.append(f"ckpt_path={run_dir}")  # resume (or nothing left to do)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    with open(args.out / f"{arm}.log", "a") as log:
        subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}"],
                       check=True, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    print(f"{arm}: {time.perf_counter() - t0:.0f} s", flush=True)
    return json.loads((run_dir / "pruning_report.json").read_text())


def print_quality(reports: dict[str, dict]) -> None:
    imp = reports.get("imp")
    if imp:
        rounds = imp["rounds"]
        tasks = [t for t in rounds[0]["metrics"] if t != "all"] or ["all"]
        dense = rounds[0]["task_average"]["psnr"]
        inputs = {t: rounds[0]["metrics"][t].get("psnr_input", float("nan")) for t in tasks}
        print(f"\nIMP with rewinding to θ₀ (protocol: {imp['protocol']}); Δ = task-average PSNR − dense")
        print("input PSNR (degraded images): " + ", ".join(f"{t} {v:.2f}" for t, v in inputs.items())
              + f", average {sum(inputs.values()) / len(inputs):.2f} dB")
        print(f"{'round':>5} {'prunable':>9} {'all':>7} " + " ".join(f"{t:>15}" for t in tasks)
              + f" {'avg':>6} {'Δ':>6}")
        for e in rounds:
            cells = " ".join(f"{e['metrics'][t]['psnr']:>6.2f} / {e['metrics'][t]['ssim']:.3f}" for t in tasks)
            print(f"{e['round']:>5} {e['fraction_prunable']:>9.2%} {e['fraction_all']:>7.2%} {cells} "
                  f"{e['task_average']['psnr']:>6.2f} {e['task_average']['psnr'] - dense:>+6.2f}")
    print("\nFinal round of each arm (same final sparsity, same total steps)")
    print(f"{'arm':<9} {'all params':>10} {'steps':>6} {'avg PSNR':>9} {'Δ dense':>8} {'avg SSIM':>9}")
    for arm, rep in reports.items():
        last, first = rep["rounds"][-1], rep["rounds"][0]
        steps = sum(e["steps"] for e in rep["rounds"])
        print(f"{arm:<9} {last['fraction_all']:>10.2%} {steps:>6} {last['task_average']['psnr']:>9.2f} "
              f"{last['task_average']['psnr'] - first['task_average']['psnr']:>+8.2f} "
              f"{last['task_average']['ssim']:>9.4f}")


def measure_export_and_speed(run_dir: Path, repeats: int, size: int) -> None:
    import tempfile

    import torch

    import restore
    from restore.checkpoint import build_net
    from restore.pruning import export_sparse
    from restore.pruning.sparse import encode_state_dict

    torch.set_num_threads(1)
    report = json.loads((run_dir / "pruning_report.json").read_text())
    first, last = report["rounds"][0], report["rounds"][-1]
    dense_net = restore.load_model(run_dir / first["export"])
    pruned_net = restore.load_model(run_dir / last["export"])
    with tempfile.TemporaryDirectory() as tmp:
        dense_bytes = restore.export_model(dense_net, Path(tmp) / "dense.safetensors").stat().st_size
        sizes = {enc: export_sparse(pruned_net, Path(tmp) / f"{enc}.safetensors", encoding=enc).stat().st_size
                 for enc in ("indices", "bitmask", "auto")}
    _, info = encode_state_dict(pruned_net.state_dict())
    chosen = [v["encoding"] for v in info.values() if v["nnz"]]
    print(f"\nExport of round {last['round']} ({last['fraction_all']:.2%} of all parameters) vs the dense export")
    print(f"dense restore.export_model: {dense_bytes / 1024:.1f} KiB")
    for enc, b in sizes.items():
        print(f"restore-sparse, {enc:<8}: {b / 1024:.1f} KiB  ({dense_bytes / b:.2f}× smaller)")
    print(f"auto encoding chose: {chosen.count('indices')} tensors int32 indices, {chosen.count('bitmask')} bitmask")
    print("per round (auto): " + ", ".join(
        f"r{e['round']} {e['fraction_all']:.1%}→{dense_bytes / e['export_bytes']:.1f}×" for e in report["rounds"]))

    x = torch.rand(1, 3, size, size)
    times = {}
    with torch.inference_mode():
        for name, net in (("dense (round 0)", dense_net), (f"pruned (round {last['round']})", pruned_net)):
            for _ in range(2):
                net(x)
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                net(x)
                samples.append(time.perf_counter() - t0)
            times[name] = statistics.median(samples)
    print(f"\nCPU inference, 1 thread, 1×3×{size}², median of {repeats} (dense kernels holding zeros):")
    for name, t in times.items():
        print(f"  {name:<18} {1000 * t:8.1f} ms")
    a, b = times.values()
    print(f"  pruned / dense: {b / a:.3f}")

    # UniRepLKNet: pruned training form → merged deploy form
    from restore.models.reparam import reparameterize
    from restore.pruning import make_permanent, prune_round, select_prunable

    torch.manual_seed(0)
    config = {"_target_": "restore.models.unet.RestorationUNet", "kernel_sizes": [7, 9, 11, 13],
              "block": {"_target_": "restore.models.unireplknet.UniRepLKNetBlock", "_partial_": True, "deploy": False}}
    net = build_net(config).eval()
    for m in net.modules():  # BN statistics as after training, so the folding is not trivial
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    weights = select_prunable(net)
    for r in range(1, last["round"] + 1):
        prune_round(weights, r)
    large = [w for w in weights if w.name.endswith("large_conv.weight")]
    before = sum(int((w.effective() == 0).sum()) for w in large) / sum(w.numel for w in large)
    with torch.no_grad():
        y = net(x[..., :64, :64])
        merged = reparameterize(make_permanent(net))
        err = float((merged(x[..., :64, :64]) - y).abs().max())
    kernels = [m.large_conv.weight for m in merged.modules() if hasattr(m, "large_conv")]
    after = sum(int((k == 0).sum()) for k in kernels) / sum(k.numel() for k in kernels)
    all_w = [p for n, p in merged.named_parameters() if p.dim() > 1]
    print(f"\nUniRepLKNet tiny, {last['round']} rounds of global magnitude pruning (at θ₀): large K×K kernels "
          f"{before:.1%} zero in the training form, {after:.1%} zero once merged with the dilated branches "
          f"(deploy form; max |Δ output| {err:.1e}); all deploy weights "
          f"{sum(int((p == 0).sum()) for p in all_w) / sum(p.numel() for p in all_w):.1%} zero")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="training steps per round, S")
    parser.add_argument("--rounds", type=int, default=12, help="pruning rounds, N (12: 8.7%% of all parameters)")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--val-crop", type=int, default=0, help="central val crop (0: full images)")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--arms", nargs="+", default=["imp", "one_shot", "random"])
    parser.add_argument("--measure-only", action="store_true", help="only the export/speed part, on --out/imp")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "benchmark_pruning")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.measure_only:
        print(f"prune/mirl_quick (NAFNet tiny, embedded noise/rain/haze): {args.rounds} rounds × {args.steps} steps of "
              f"8×{args.patch}² patches, val "
              f"{'full images' if not args.val_crop else f'{args.val_crop}² centre crops'}",
              flush=True)
        reports = {arm: run_arm(arm, args) for arm in args.arms}
        (args.out / "summary.json").write_text(json.dumps({a: r["rounds"] for a, r in reports.items()}, indent=2))
        print_quality(reports)
    measured = "imp" if args.measure_only or "imp" in args.arms else args.arms[0]
    measure_export_and_speed(args.out / measured, args.repeats, args.size)


if __name__ == "__main__":
    main()
