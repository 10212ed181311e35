"""BaryIR heads vs the plain all-in-one baseline (same backbone, data, optimiser and steps).

Run by hand (one thread each, CPU):

    python benchmarks/allinone.py steptime [--batch 8] [--patch 64] [--steps 20]
    python benchmarks/allinone.py compare [--steps 1000] [--seeds 0 1 2] [--images 0] [--models baryir plain]
    python benchmarks/allinone.py report [--seeds 0 1 2]        (the table again, from the run folders)

``steptime``: one training step of each (plain: forward + L1 + backward + AdamW; BaryIR: forward with
latents, generator loss, backward, AdamW, then the potential loss, backward, RMSprop: the two steps
of ``BaryIRModule.training_step``), interleaved so both see the same machine load; prints the ratio.

``compare``: trains ``experiment=allinone/baryir_quick`` and ``allinone/plain_quick`` for ``--steps``
steps per seed, then evaluates each final (EMA) checkpoint in one ``eval.py`` run per table:
``data=allinone/test`` (seen tasks on the real sets) and ``data=allinone/unseen`` (noise σ 60/75,
JPEG q 20, rain + noise, Rain100H). ``--images K`` keeps the first K images of every test set but the
7-pair SOTS sample (0: all). ``--models`` runs one of the two (two processes can share the work). Protocol: RGB
[0,1], clipped, no crop, noise seeded (the all-in-one papers'). Prints per-task
PSNR mean ± std over seeds, the seen and unseen task averages, and BaryIR − plain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
sys.path.insert(0, str(ROOT))


def compose(config_name: str, overrides: list[str], output_dir: Path):
    """Compose configs/<config_name>.yaml as the entry points do, with a set run folder."""
    from restore.utils.config import compose_config

    return compose_config(config_name, overrides, output_dir, configs_dir=ROOT / "configs")


def steptime(args: argparse.Namespace) -> None:
    import torch
    from hydra.utils import instantiate

    torch.set_num_threads(1)
    out = Path("/tmp/allinone_steptime")
    plain_cfg = compose("train", ["experiment=allinone/plain_quick"], out)
    bary_cfg = compose("train", ["experiment=allinone/baryir_quick"], out)
    torch.manual_seed(0)
    plain = instantiate(plain_cfg.model)
    bary = instantiate(bary_cfg.model)
    opt_plain = plain.optimizer_specs[0].optimizer(params=plain.net.parameters())
    opt_net, opt_pot = (spec.optimizer(params=module.parameters()) for spec, module in
                        zip(bary.optimizer_specs, (bary.net, bary.potentials)))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.patch, args.patch, generator=g)
    y = torch.rand(args.batch, 3, args.patch, args.patch, generator=g)
    sources = torch.arange(args.batch) % len(bary.sources)

    def plain_step() -> None:
        opt_plain.zero_grad(set_to_none=True)
        plain.loss(plain.net(x), y).backward()
        opt_plain.step()

    def bary_step() -> None:
        for p in bary.potentials.parameters():  # toggle_optimizer: potentials frozen in the generator step
            p.requires_grad_(False)
        opt_net.zero_grad(set_to_none=True)
        pred, z_s, z_b, z_r = bary.net.forward_latents(x)
        bary.generator_loss(pred, y, z_s, z_b, z_r, sources)["loss"].backward()
        opt_net.step()
        for p in bary.potentials.parameters():
            p.requires_grad_(True)
        opt_pot.zero_grad(set_to_none=True)
        bary.potential_loss(z_b.detach(), sources)["loss"].backward()
        opt_pot.step()

    for step in (plain_step, bary_step, plain_step, bary_step):  # warm-up
        step()
    times = {"plain": [], "baryir": []}
    for _ in range(args.steps):  # interleaved: the same machine load for both
        for name, step in (("plain", plain_step), ("baryir", bary_step)):
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    n_plain = sum(p.numel() for p in plain.net.parameters())
    n_bary = sum(p.numel() for p in bary.net.parameters())
    n_pot = sum(p.numel() for p in bary.potentials.parameters())
    print(f"batch {args.batch}×3×{args.patch}², {args.steps} interleaved steps each, 1 thread, median step time")
    print(f"  plain  nafnet_tiny          {med['plain'] * 1e3:8.1f} ms   net {n_plain / 1e6:.3f}M params")
    print(f"  baryir baryir_nafnet_tiny   {med['baryir'] * 1e3:8.1f} ms   net {n_bary / 1e6:.3f}M params "
          f"(+ potentials {n_pot / 1e6:.3f}M, training only)")
    print(f"  ratio baryir / plain: {med['baryir'] / med['plain']:.2f}×   (target ≤ 1.3×)")


def _evaluate(ckpt: Path, data: str, out: Path, images: int) -> None:
    from omegaconf import open_dict

    from eval import evaluate

    cfg = compose("eval", [f"ckpt_path={ckpt}", f"data={data}", "data.num_workers=0", "trainer.accelerator=cpu",
                           "++trainer.enable_progress_bar=false"], out)
    if images:
        with open_dict(cfg):
            for dataset in cfg.data.test:
                if "SOTS" not in str(dataset.get("root", dataset.get("lq_dir"))):  # 7 pairs only: all of them
                    dataset.length = images  # the first `images` images (indices wrap past the end)
    evaluate(cfg)


def compare(args: argparse.Namespace) -> None:
    import torch

    from train import train

    torch.set_num_threads(1)
    root = Path(args.out)
    for seed in args.seeds:
        for name in args.models:
            run = root / f"{name}_seed{seed}"
            ckpt = run / "checkpoints" / "last.ckpt"
            if not ckpt.exists():
                cfg = compose("train", [f"experiment=allinone/{name}_quick", f"seed={seed}",
                                        f"trainer.max_steps={args.steps}", f"trainer.val_check_interval={args.steps}",
                                        "data.num_workers=0", "++trainer.enable_progress_bar=false", "logger=csv",
                                        "~callbacks.rich_progress_bar"], run)
                t0 = time.perf_counter()
                train(cfg)
                print(f"[{name} seed {seed}] trained {args.steps} steps in {time.perf_counter() - t0:.0f} s",
                      flush=True)
            for table, data in (("seen", "allinone/test"), ("unseen", "allinone/unseen")):
                if not (run / f"eval_{table}" / "metrics.json").exists():
                    _evaluate(ckpt, data, run / f"eval_{table}", args.images)
    report(args)


def report(args: argparse.Namespace) -> None:
    """Per-task PSNR mean ± std over seeds, BaryIR − plain, from the runs' eval_{seen,unseen}/metrics.json."""
    root = Path(args.out)

    def psnr(name: str, seed: int, table: str) -> dict[str, float]:
        metrics = json.loads((root / f"{name}_seed{seed}" / f"eval_{table}" / "metrics.json").read_text())["metrics"]
        return {task: values["psnr"]["output"] for task, values in metrics.items() if task != "all"}

    def mean_std(values: list[float]) -> tuple[float, float]:
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    print(f"\nPSNR (dB), RGB [0,1] clipped, no crop, seeded noise; mean ± std over seeds {args.seeds}")
    for table in ("seen", "unseen"):
        runs = {name: [psnr(name, s, table) for s in args.seeds] for name in ("plain", "baryir")}
        print(f"\n{table:<7} {'task':<18} {'plain':>13} {'baryir':>13} {'Δ':>7}")
        for task in runs["plain"][0]:
            (pm, ps), (bm, bs) = (mean_std([r[task] for r in runs[n]]) for n in ("plain", "baryir"))
            print(f"{'':<7} {task:<18} {pm:7.2f} ±{ps:4.2f} {bm:7.2f} ±{bs:4.2f} {bm - pm:+7.2f}")
        deltas = [b["average"] - p["average"] for p, b in zip(runs["plain"], runs["baryir"])]
        print(f"{'':<7} {'Δ average per seed':<18} {' '.join(f'{d:+.2f}' for d in deltas)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("steptime")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p = sub.add_parser("compare")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--images", type=int, default=0, help="first K images of every test set (0: all)")
    p.add_argument("--models", nargs="+", default=["baryir", "plain"], choices=["baryir", "plain"])
    p = sub.add_parser("report")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    for p in sub.choices.values():
        p.add_argument("--out", default=str(ROOT / "outputs" / "benchmark_allinone"))
    args = parser.parse_args()
    {"steptime": steptime, "compare": compare, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
