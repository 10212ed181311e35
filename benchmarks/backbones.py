"""Backbones side by side: params, MACs, throughput and peak memory at equal width and depth.

Run by hand::

    python benchmarks/backbones.py              # CPU (+ CUDA when available), 256²: ~4 min on an idle 2-core CPU
    python benchmarks/backbones.py --threads 1  # steadier on a shared machine (2 threads stall on each other)
    python benchmarks/backbones.py --size 128 --iters 3 --width 32 --enc-blocks 2 2 4 --middle 6
    python benchmarks/backbones.py --skip-nets            # only the depthwise-conv (layout / FFT) study

Nets (same U-Net layout, width and blocks; each family's own kernel sizes): NAFNet (3×3), ConvNeXt
(7×7), InceptionNeXt (band 11), UniRepLKNet training form and deploy form (K = 7/9/11/13).
Throughput: all nets of one layout live in one process and are timed round-robin (one pass of each
in turn, median over ``--iters`` rounds after two warm-up passes), so background load hits them
alike. Peak memory: each (net, layout, pass) in a fresh subprocess, so the peak is its own: CPU =
the resident high-water mark over two passes (reset before them through ``/proc/self/clear_refs``,
read as VmHWM) minus the resident size before them; CUDA = ``max_memory_allocated``. The ratios
asked of the papers are printed at the end: InceptionNeXt vs ConvNeXt training throughput (paper: ≈1.6× on an A100)
and UniRepLKNet deploy vs training-form inference.

The second part times a depthwise K×K conv alone (``--dw-channels`` at the input size): PyTorch's
direct conv in NCHW and in channels-last, and the FFT conv of :mod:`restore.models.unireplknet`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
NETS = ("nafnet", "convnext", "inceptionnext", "unireplk_train", "unireplk_deploy")


def build(name: str, width: int, enc_blocks: list[int], middle: int, channels_last: bool):
    from restore.models.convnext import ConvNeXtBlock
    from restore.models.inceptionnext import InceptionNeXtBlock
    from restore.models.nafnet import NAFBlock
    from restore.models.unet import RestorationUNet
    from restore.models.unireplknet import UniRepLKNetBlock

    levels = len(enc_blocks)
    kw = dict(width=width, enc_blocks=enc_blocks, middle_blocks=middle, dec_blocks=enc_blocks[::-1],
              channels_last=channels_last)
    if name == "nafnet":
        return RestorationUNet(NAFBlock, **kw)
    if name == "convnext":
        return RestorationUNet(ConvNeXtBlock, kernel_sizes=[7] * (levels + 1), **kw)
    if name == "inceptionnext":
        return RestorationUNet(InceptionNeXtBlock, kernel_sizes=[11] * (levels + 1), **kw)
    ks = [7, 9, 11, 13, 13, 13][:levels] + [13]
    net = RestorationUNet(UniRepLKNetBlock, kernel_sizes=ks, **kw)
    if name == "unireplk_deploy":
        from restore.models.reparam import reparameterize

        reparameterize(net)
    return net


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, iters: int, device: str) -> float:
    times = []
    for _ in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the process's resident high-water mark (Linux ≥ 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def make_step(net, x, mode: str):
    """A closure running one inference pass (``fwd``) or one training step (``train``, AdamW)."""
    import torch

    if mode == "fwd":
        net.eval()

        def step() -> None:
            with torch.no_grad():
                net(x)
    else:
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.l1_loss(net(x), x).backward()
            opt.step()
    return step


def passes(nets: Sequence[str]) -> list[tuple[str, str]]:
    return [(n, m) for n in nets for m in ("fwd", "train") if not (n == "unireplk_deploy" and m == "train")]


def memory_worker(args: argparse.Namespace) -> dict:
    """Peak memory of one (net, layout, pass), alone in this process → a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    device = args.device
    net = build(args.net, args.width, args.enc_blocks, args.middle, args.layout == "channels_last").to(device)
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    step = make_step(net, x, args.mode)
    _sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss0 = _proc_status_kib("VmRSS")
    reset = _reset_peak_rss()
    for _ in range(2):  # the second pass has the optimizer state too
        step()
    _sync(device)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    elif reset and rss0 is not None:  # resident high-water mark over the passes, above the size before them
        peak = (_proc_status_kib("VmHWM") - rss0) / 1024
    else:  # no /proc: growth of getrusage's max RSS (an under-estimate when imports peaked higher)
        peak = float("nan")
    return {"net": args.net, "layout": args.layout, "pass": args.mode, "device": device, "peak_mib": peak}


def throughput(args: argparse.Namespace, device: str, layout: str) -> list[dict]:
    """All nets in this process, timed round-robin (one pass of each in turn, ``--iters`` rounds), so a
    change in background load hits every net alike and the ratios compare like with like."""
    import torch

    from restore.models.summary import count_macs, count_params

    torch.set_num_threads(args.threads)
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    info, steps = {}, {}
    for name in args.nets:
        net = build(name, args.width, args.enc_blocks, args.middle, layout == "channels_last").to(device)
        info[name] = {"params": count_params(net), "gmacs": count_macs(net, (1, 3, args.size, args.size)) / 1e9}
        for n, mode in passes([name]):
            # a separate copy per pass: eval/train modes and the optimizer do not interfere
            steps[(n, mode)] = make_step(copy.deepcopy(net), x, mode)
    for step in steps.values():  # warm-up
        step()
        step()
    times: dict = {k: [] for k in steps}
    for _ in range(args.iters):
        for key, step in steps.items():
            times[key].append(_median_time(step, 1, device))
    rows = []
    for (name, mode), ts in times.items():
        dt = statistics.median(ts)
        rows.append({"net": name, "layout": layout, "pass": mode, "device": device, **info[name],
                     "step_s": dt, "img_per_s": args.batch / dt})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def dw_study(args: argparse.Namespace, device: str) -> list[dict]:
    """Depthwise K×K conv alone: direct NCHW vs direct channels-last vs FFT, forward and forward+backward."""
    import torch
    import torch.nn.functional as F

    from restore.models.unireplknet import fft_depthwise_conv2d

    torch.set_num_threads(args.threads)
    c, s = args.dw_channels, args.size
    rows = []
    for k in args.dw_kernels:
        w = torch.randn(c, 1, k, k, device=device, requires_grad=True)
        base = torch.randn(1, c, s, s, device=device)
        impls = {
            "nchw": (base, lambda x: F.conv2d(x, w, padding=k // 2, groups=c)),
            "channels_last": (base.contiguous(memory_format=torch.channels_last),
                              lambda x: F.conv2d(x, w, padding=k // 2, groups=c)),
            "fft": (base, lambda x: fft_depthwise_conv2d(x, w)),
        }
        row = {"device": device, "K": k}
        for name, (x, f) in impls.items():
            x = x.clone().requires_grad_(True)

            def fwd() -> None:
                with torch.no_grad():
                    f(x)

            def fwd_bwd() -> None:
                f(x).sum().backward()

            for fn in (fwd, fwd_bwd):
                fn()  # warm-up
            row[f"{name}_fwd_ms"] = 1e3 * _median_time(fwd, args.dw_iters, device)
            row[f"{name}_train_ms"] = 1e3 * _median_time(fwd_bwd, args.dw_iters, device)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def run_memory_worker(args: argparse.Namespace, net: str, layout: str, mode: str, device: str) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", "--net", net, "--layout", layout, "--mode", mode, "--device", device,
           "--size", str(args.size), "--batch", str(args.batch), "--iters", str(args.iters),
           "--width", str(args.width), "--middle", str(args.middle), "--threads", str(args.threads),
           "--enc-blocks", *map(str, args.enc_blocks)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"  {net}/{layout}/{mode} on {device} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _find(rows: list[dict], **kw) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in kw.items())), None)


def report(rows: list[dict], dw_rows: list[dict], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    say = partial(console.print, markup=False, highlight=False)
    for device in sorted({r["device"] for r in rows}):
        t = Table(title=f"{device}: batch {args.batch} × {args.size}², width {args.width}, blocks "
                        f"{args.enc_blocks}+{args.middle}, {args.threads} threads (median of {args.iters})")
        for col in ("net", "layout", "params M", "GMACs", "fwd img/s", "fwd peak MiB", "train img/s",
                    "train peak MiB"):
            t.add_column(col, justify="left" if col in ("net", "layout") else "right", no_wrap=True)
        for net in NETS:
            for layout in args.layouts:
                f = _find(rows, device=device, net=net, layout=layout, **{"pass": "fwd"})
                b = _find(rows, device=device, net=net, layout=layout, **{"pass": "train"})
                if not (f or b):
                    continue
                any_row = f or b
                t.add_row(net, layout, f"{any_row['params'] / 1e6:.3f}", f"{any_row['gmacs']:.2f}",
                          f"{f['img_per_s']:.2f}" if f else "—",
                          f"{f['peak_mib']:.0f}" if f and "peak_mib" in f else "—",
                          f"{b['img_per_s']:.2f}" if b else "—",
                          f"{b['peak_mib']:.0f}" if b and "peak_mib" in b else "—")
        console.print(t)
        for layout in args.layouts:
            inc = _find(rows, device=device, net="inceptionnext", layout=layout, **{"pass": "train"})
            cnx = _find(rows, device=device, net="convnext", layout=layout, **{"pass": "train"})
            dep = _find(rows, device=device, net="unireplk_deploy", layout=layout, **{"pass": "fwd"})
            trn = _find(rows, device=device, net="unireplk_train", layout=layout, **{"pass": "fwd"})
            if inc and cnx:
                say(f"[{device}/{layout}] InceptionNeXt / ConvNeXt training throughput: "
                              f"{inc['img_per_s'] / cnx['img_per_s']:.2f}× (paper: 901/575 = 1.57× on an A100)")
            if dep and trn:
                say(f"[{device}/{layout}] UniRepLKNet deploy / training-form inference: "
                              f"{dep['img_per_s'] / trn['img_per_s']:.2f}×")
        for net in NETS:
            a = _find(rows, device=device, net=net, layout="nchw", **{"pass": "fwd"})
            c = _find(rows, device=device, net=net, layout="channels_last", **{"pass": "fwd"})
            at = _find(rows, device=device, net=net, layout="nchw", **{"pass": "train"})
            ct = _find(rows, device=device, net=net, layout="channels_last", **{"pass": "train"})
            if a and c:
                msg = f"[{device}] {net}: channels_last / nchw  forward {c['img_per_s'] / a['img_per_s']:.2f}×"
                if at and ct:
                    msg += f", train {ct['img_per_s'] / at['img_per_s']:.2f}×"
                say(msg)
    if dw_rows:
        t = Table(title=f"Depthwise K×K conv alone: 1×{args.dw_channels}×{args.size}², ms (fwd / fwd+bwd), "
                        f"{args.threads} threads")
        for col in ("device", "K", "NCHW", "channels_last", "FFT"):
            t.add_column(col, justify="right", no_wrap=True)
        for r in dw_rows:
            t.add_row(r["device"], str(r["K"]),
                      *(f"{r[f'{n}_fwd_ms']:.1f} / {r[f'{n}_train_ms']:.1f}" for n in ("nchw", "channels_last", "fft")))
        console.print(t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="input side (square)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iters", type=int, default=3, help="timed rounds (median)")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--enc-blocks", type=int, nargs="+", default=[1, 1, 1])
    p.add_argument("--middle", type=int, default=1)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    p.add_argument("--layouts", nargs="+", default=["nchw", "channels_last"], choices=["nchw", "channels_last"])
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    p.add_argument("--skip-nets", action="store_true", help="only the depthwise-conv study")
    p.add_argument("--skip-dw", action="store_true", help="no depthwise-conv study")
    p.add_argument("--skip-memory", action="store_true", help="no peak-memory subprocesses")
    p.add_argument("--dw-kernels", type=int, nargs="+", default=[7, 13, 31])
    p.add_argument("--dw-channels", type=int, default=32)
    p.add_argument("--dw-iters", type=int, default=3)
    p.add_argument("--json", type=Path, default=None, help="also write all rows to this file")
    # worker mode (internal)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--net", default="nafnet", help=argparse.SUPPRESS)
    p.add_argument("--layout", default="nchw", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="fwd", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(memory_worker(args)))
        return

    import torch

    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs visible, {args.threads} threads; devices {devices}",
          flush=True)
    rows: list[dict] = []
    dw_rows: list[dict] = []
    t0 = time.time()
    for device in devices:
        if not args.skip_nets:
            for layout in args.layouts:
                rows += throughput(args, device, layout)
            if not args.skip_memory:
                for layout in args.layouts:
                    for net, mode in passes(args.nets):
                        mem = run_memory_worker(args, net, layout, mode, device)
                        row = _find(rows, device=device, net=net, layout=layout, **{"pass": mode})
                        if mem and row:
                            row["peak_mib"] = mem["peak_mib"]
        if not args.skip_dw:
            dw_rows += dw_study(args, device)
    report(rows, dw_rows, args)
    print(f"total {time.time() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"nets": rows, "depthwise": dw_rows}, indent=1))


if __name__ == "__main__":
    main()
