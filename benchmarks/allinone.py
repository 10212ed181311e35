"""All-in-one restoration: the synthesis figure, the dev split, and BaryIR heads vs the plain baseline.

Run by hand (one thread per training run, CPU):

    python benchmarks/allinone.py figure                     docs/methods/allinone_synthesis.png
    python benchmarks/allinone.py scenes                     CBSD432 images that are Rain100L/H clean scenes
    python benchmarks/allinone.py dev-split                  outputs/allinone_dev/{train,dev}: links into CBSD432
    python benchmarks/allinone.py dev [--variants ...] [--steps 1000] [--lanes 2]
    python benchmarks/allinone.py steptime [--batch 8] [--patch 64] [--steps 20]
    python benchmarks/allinone.py compare [--steps 1000] [--seeds 0 1 2] [--tasks 4] [--images 20] [--lanes 2]
    python benchmarks/allinone.py report [--seeds 0 1 2] [--tasks 1 2 3 4]

``figure``: synthetic samples (``LayeredRainStreaks`` light / heavy, ``DepthHaze``) on CBSD432 crops next to crops of
the real Rain100L / Rain100H / SOTS inputs and of the older synthesis (``RainStreaks``, ``Haze``) on the same crops.

``scenes``: the CBSD432 images that are clean scenes of Rain100L / Rain100H (thumbnail correlation), the list
``allinone/cbsd432_rain100style`` excludes from training.

``dev-split``: CBSD432 without those scenes (365 images); every 9th file (sorted; 41 images) becomes the dev set,
the other 324 the dev training set, as symbolic links (nothing is copied). ``dev`` trains
``experiment=allinone/baryir_cbsd432`` on the 324 images, one run per recipe variant (``VARIANTS``: which rain
presets, their ranges and weight, the haze's strength, the potentials' activation), and evaluates each with
``eval.py data=allinone/dev`` (the 41 held-out images under every training degradation, rain of a rendering no
variant trains on, and no degradation at all; the average leaves that last row out): the recipe's settings are
chosen there, never on the test sets.

``steptime``: one training step of each (plain: forward + L1 + backward + AdamW; BaryIR: forward with latents,
generator loss, backward, AdamW, then the potential loss, backward, RMSprop: the two steps of
``BaryIRModule.training_step``), interleaved so both see the same machine load; prints the ratio.

``compare``: trains ``experiment=allinone/baryir_cbsd432`` and ``allinone/plain_cbsd432`` (tiny NAFNet U-Net with
and without the heads, the model zoo's synthesis of CBSD432 at 64²) for ``--steps`` steps per seed, on the first
``--tasks`` K degradation types (noise; + rain; + haze; + low light: K = 1…4), then evaluates each final (EMA)
checkpoint with ``data=allinone/test4`` (seen tasks on the real sets) and ``data=allinone/unseen`` (noise σ 60/75,
JPEG q 20, Rain100L + noise, Rain100H). ``--images K`` keeps the first K images of every test set but the 7 SOTS
and 15 LOL pairs (0: all). ``--lanes N`` runs N trainings at a time (separate processes). Protocol: RGB [0,1],
clipped, no crop, noise seeded (the all-in-one papers'). ``report`` prints per-task PSNR mean ± std over seeds, the
unseen and seen task averages, and BaryIR − plain per seed, for every K.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
DEV_ROOT = ROOT / "outputs" / "allinone_dev"
#: the degradation types in the order the generalisation axis adds them (K = 1 … 4), by their datasets' first
#: degradation
TYPES = {"AddGaussianNoise": "denoise", "LayeredRainStreaks": "derain", "DepthHaze": "dehaze", "LowLight": "lowlight"}
ORDER = ["denoise", "derain", "dehaze", "lowlight"]
#: the light preset's ranges widened (overrides of the light rain set, data.train.1)
LIGHT_WIDE = [f"++data.train.1.degradations.0.{key}={value}" for key, value in
              {"density": "[0.001,0.008]", "length": "[10,60]", "width": "[0.2,1.0]", "opacity": "[0.2,0.9]"}.items()]
#: recipe variants compared on the dev split: (rain presets trained on, repeat factor of the rain sets, overrides)
VARIANTS = {
    "light_heavy": (("light", "heavy"), 1, []),
    "light": (("light",), 1, []),
    "leaky_potentials": (("light", "heavy"), 1, ["model.potentials.first_activation=true"]),
    "rain_x2": (("light", "heavy"), 2, []),
    # light rain drawn from wider ranges (fainter, denser, longer, wider drops): a model that has seen more kinds of
    # light rain should carry further to rain it was not trained on (dev row rain_other)
    "light_wide": (("light", "heavy"), 1, LIGHT_WIDE),
    "light_wide_x2": (("light", "heavy"), 2, LIGHT_WIDE),
    # haze from nearly none (β from 0.1, RESIDE's indoor range starts at 0.6): a dehazer that has seen faint haze
    # should not dehaze what is not hazy (dev row clean)
    "rain_x2_faint_haze": (("light", "heavy"), 2, ["++data.train.3.degradations.0.beta=[0.1,1.8]"]),
}


def compose(config_name: str, overrides: list[str], output_dir: Path):
    """Compose configs/<config_name>.yaml as the entry points do, with a set run folder."""
    from restore.utils.config import compose_config

    return compose_config(config_name, overrides, output_dir, configs_dir=ROOT / "configs")


# -- the synthesis figure ----------------------------------------------------------------------
def figure(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from restore.data import DepthHaze, Haze, LayeredRainStreaks, RainStreaks

    size = args.crop

    def load(path: Path, box: tuple[int, int]) -> torch.Tensor:
        image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        top, left = box
        return torch.from_numpy(image[top:top + size, left:left + size].copy()).permute(2, 0, 1)

    train = SHARED / "train" / "CBSD432"
    sots = SHARED / "dehaze" / "SOTS_samples"
    rows = [  # label, real test input (file, crop corner), training image (file, crop corner), new, old synthesis
        ("rain, light", SHARED / "derain" / "Rain100L" / "rainy" / "rain-001.png", (40, 40), train / "118015.jpg",
         (120, 200), LayeredRainStreaks("light"), RainStreaks()),
        ("rain, heavy", SHARED / "derain" / "Rain100H" / "inputcrop" / "1.png", (40, 40), train / "67079.jpg",
         (60, 60), LayeredRainStreaks("heavy"), RainStreaks()),
        ("haze", sots / "indoor" / "hazy" / "1400_9.png", (100, 200), train / "145053.jpg", (40, 120),
         DepthHaze(), Haze()),
        ("haze", sots / "outdoor" / "input" / "0001_0.8_0.2.jpg", (60, 300), train / "202000.jpg", (20, 160),
         DepthHaze(), Haze()),
    ]
    header = 18
    sheet = Image.new("RGB", (3 * size + 4, len(rows) * (size + header) + header), "white")
    draw = ImageDraw.Draw(sheet)
    for col, title in enumerate(("test-set input", "new synthesis", "previous synthesis")):
        draw.text((col * (size + 2) + 4, 2), title, fill="black")
    for row, (label, real, real_box, clean, clean_box, new, old) in enumerate(rows):
        image = load(clean, clean_box)
        tiles = [load(real, real_box), new(image, torch.Generator().manual_seed(args.seed + row)),
                 old(image, torch.Generator().manual_seed(args.seed + row))]
        y = header + row * (size + header)
        draw.text((4, y + 2), f"{label}: {real.relative_to(SHARED)}", fill="black")
        for col, tile in enumerate(tiles):
            pixels = (tile.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            sheet.paste(Image.fromarray(pixels), (col * (size + 2), y + header - 2))
    out = Path(args.out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a 256-colour palette keeps the PNG small (the streaks and haze survive it)
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


# -- test scenes inside the training folder -----------------------------------------------------
def _thumbnail(image, size: tuple[int, int] = (24, 16)):
    """Gray, landscape, zero-mean unit-norm thumbnail: identical scenes correlate at ~1, others far below."""
    import numpy as np
    from PIL import Image

    a = np.asarray(image.convert("L").resize(size, Image.BILINEAR), dtype=np.float64)
    a = a - a.mean()
    return a / max(float(np.linalg.norm(a)), 1e-9)


def scenes(args: argparse.Namespace) -> None:
    """The CBSD432 images whose scene is a clean image of Rain100L / Rain100H (the ``exclude`` of
    allinone/cbsd432_rain100style)."""
    import numpy as np
    from PIL import Image

    from restore.data import list_images

    train = list_images(SHARED / "train" / "CBSD432")
    thumbs = []
    for path in train:
        image = Image.open(path)
        thumbs.append(_thumbnail(image.transpose(Image.ROTATE_90) if image.height > image.width else image))
    thumbs = np.stack(thumbs)
    sets = {"Rain100L": sorted((SHARED / "derain" / "Rain100L").glob("norain-*.png")),
            "Rain100H": sorted((SHARED / "derain" / "Rain100H" / "cleancrop").glob("*.png"))}
    found: set[str] = set()
    for name, files in sets.items():
        hits = 0
        for path in files:
            image = Image.open(path)
            views = [image] if image.width >= image.height else [image.transpose(Image.ROTATE_90),
                                                                   image.transpose(Image.ROTATE_270)]
            scores = np.stack([(thumbs * _thumbnail(v)).sum((1, 2)) for v in views]).max(0)
            if scores.max() > args.threshold:
                hits += 1
                found.add(train[int(scores.argmax())].stem)
        print(f"{name}: {hits} of {len(files)} clean images are CBSD432 scenes (thumbnail correlation > "
              f"{args.threshold})")
    print(f"{len(found)} CBSD432 images in all:\n[{', '.join(sorted(found))}]")


# -- the dev split -----------------------------------------------------------------------------
def dev_split(args: argparse.Namespace) -> None:
    from restore.data import list_images

    excluded = set(compose("train", ["data=allinone/cbsd432_rain100style"], DEV_ROOT).data.train[0].exclude)
    files = [p for p in list_images(SHARED / "train" / "CBSD432") if p.stem not in excluded]
    for split in ("train", "dev"):
        (DEV_ROOT / split).mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        link = DEV_ROOT / ("dev" if i % 9 == 0 else "train") / path.name
        if not link.exists():
            link.symlink_to(path)
    print(f"{DEV_ROOT}: train {len(list((DEV_ROOT / 'train').iterdir()))} images, "
          f"dev {len(list((DEV_ROOT / 'dev').iterdir()))} (links into {SHARED / 'train' / 'CBSD432'}, without its "
          f"{len(excluded)} Rain100L/H scenes)")


def _keep_types(cfg, types: list[str], rain: tuple[str, ...] = ("light", "heavy"), rain_repeat: int | None = None
                ) -> None:
    """Restrict a composed all-in-one config to the degradation types ``types`` (and these rain presets; the rain
    sets repeated ``rain_repeat`` times if given)."""
    from omegaconf import open_dict

    with open_dict(cfg):
        kept, repeat = [], []
        for dataset, times in zip(cfg.data.train, cfg.data.repeat):
            degradation = dataset.degradations[0]
            task = TYPES[degradation._target_.rsplit(".", 1)[-1]]
            if task in types and (task != "derain" or degradation.preset in rain):
                kept.append(dataset)
                repeat.append(rain_repeat if task == "derain" and rain_repeat else times)
        if len(rain) == 1:  # one preset: its set takes the whole rain share
            for dataset in kept:
                if TYPES[dataset.degradations[0]._target_.rsplit(".", 1)[-1]] == "derain":
                    dataset.length = cfg.data.train[0].length
        cfg.data.train, cfg.data.repeat = kept, repeat
        cfg.data.val = [v for v in cfg.data.val if v.task in types]
        if "sources" in cfg.model:
            cfg.model.sources = [t for t in ORDER if t in types]


def _train(run: Path, experiment: str, overrides: list[str], edit=None) -> float:
    """Train one run into ``run`` (skipped when its last.ckpt exists); returns the seconds it took."""
    from train import train

    if (run / "checkpoints" / "last.ckpt").exists():
        return 0.0
    cfg = compose("train", [f"experiment={experiment}", "data.num_workers=0", "++trainer.enable_progress_bar=false",
                            "logger=csv", "~callbacks.rich_progress_bar", *overrides], run)
    if edit is not None:
        edit(cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    train(cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    (run / "timing.json").write_text(json.dumps({"wall_s": wall, "cpu_s": cpu}))
    print(f"[{run.name}] trained in {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    return wall


def _evaluate(ckpt: Path, data: str, out: Path, images: int) -> None:
    from omegaconf import open_dict

    from eval import evaluate

    if (out / "metrics.json").exists():
        return
    cfg = compose("eval", [f"ckpt_path={ckpt}", f"data={data}", "data.num_workers=0", "trainer.accelerator=cpu",
                           "++trainer.enable_progress_bar=false"], out)
    if images:
        with open_dict(cfg):
            for dataset in cfg.data.test:
                where = str(dataset.get("root") or dataset.get("pairs", {}).get("root"))
                if "SOTS" not in where and "LOL" not in where:  # 7 and 15 pairs: all of them
                    dataset.length = images  # the first `images` images
    evaluate(cfg)


def _run_lanes(args: argparse.Namespace, command: str) -> None:
    """Run this command line in ``args.lanes`` processes, lane i taking jobs i, i + N, …; wait for all."""
    argv = [sys.executable, __file__, *_strip_lanes(sys.argv[1:])]
    procs = [subprocess.Popen([*argv, "--shard", f"{lane}/{args.lanes}"]) for lane in range(args.lanes)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"{command}: a lane failed (exit codes {codes})")


def _strip_lanes(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--lanes":
            skip = True
            continue
        if not a.startswith("--lanes="):
            out.append(a)
    return out


def _shard(jobs: list, shard: str | None) -> list:
    if not shard:
        return jobs
    lane, lanes = (int(v) for v in shard.split("/"))
    return jobs[lane::lanes]


def dev(args: argparse.Namespace) -> None:
    if not (DEV_ROOT / "dev").is_dir():
        dev_split(args)
    if args.lanes > 1 and not args.shard:
        _run_lanes(args, "dev")
        return dev_report(args)
    # the dev folders hold no Rain100L/H scene: nothing to exclude there
    roots = [f"data.train.{i}.{key}" for i in range(5) for key in (f"root={DEV_ROOT / 'train'}", "exclude=[]")]
    roots += [f"data.val.{i}.{key}" for i in range(4) for key in (f"root={DEV_ROOT / 'dev'}", "exclude=[]")]
    for name in _shard(args.variants, args.shard):
        rain, rain_repeat, overrides = VARIANTS[name]
        run = Path(args.out) / name
        _train(run, "allinone/baryir_cbsd432", [f"seed={args.seed}", f"trainer.max_steps={args.steps}",
                                                f"trainer.val_check_interval={args.steps}", *roots, *overrides],
               edit=lambda cfg, rain=rain, times=rain_repeat: _keep_types(cfg, ORDER, rain, times))
        _evaluate(run / "checkpoints" / "last.ckpt", "allinone/dev", run / "eval_dev", 0)
    if not args.shard:
        dev_report(args)


def dev_report(args: argparse.Namespace) -> None:
    tables = {}
    for name in args.variants:
        path = Path(args.out) / name / "eval_dev" / "metrics.json"
        if path.exists():
            tables[name] = json.loads(path.read_text())["metrics"]
    if not tables:
        print("no dev evaluations yet")
        return
    first = next(iter(tables.values()))
    tasks = [t for t in first if t not in ("all", "average")]
    # the clean row's input is the target itself (infinite PSNR): it is left out of the average
    degraded = [t for t in tasks if math.isfinite(first[t]["psnr"]["input"])]
    print(f"\ndev split (41 held-out CBSD432 images, 256² crops), PSNR dB (RGB [0,1]); {args.steps} steps, "
          f"seed {args.seed}")
    print(f"{'task':<12} {'input':>7} " + " ".join(f"{n:>17}" for n in tables))
    for task in tasks:
        cells = [f"{t[task]['psnr']['output']:17.2f}" if task in t else f"{'—':>17}" for t in tables.values()]
        print(f"{task:<12} {first[task]['psnr']['input']:7.2f} " + " ".join(cells))
    mean = statistics.mean
    print(f"{'average':<12} {mean(first[t]['psnr']['input'] for t in degraded):7.2f} "
          + " ".join(f"{mean(t[k]['psnr']['output'] for k in degraded):17.2f}" for t in tables.values())
          + "   (rows with a degraded input)")


# -- heads vs plain ----------------------------------------------------------------------------
def steptime(args: argparse.Namespace) -> None:
    import torch
    from hydra.utils import instantiate

    torch.set_num_threads(1)
    out = Path("/tmp/allinone_steptime")
    plain_cfg = compose("train", ["experiment=allinone/plain_cbsd432"], out)
    bary_cfg = compose("train", ["experiment=allinone/baryir_cbsd432"], out)
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


def _run_name(name: str, tasks: int, seed: int) -> str:
    return f"{name}_t{tasks}_seed{seed}"


def compare(args: argparse.Namespace) -> None:
    if args.lanes > 1 and not args.shard:
        _run_lanes(args, "compare")
        return report(args)
    root = Path(args.out)
    jobs = [(tasks, seed, name) for tasks in args.tasks for seed in args.seeds for name in args.models]
    for tasks, seed, name in _shard(jobs, args.shard):
        run = root / _run_name(name, tasks, seed)
        _train(run, f"allinone/{name}_cbsd432", [f"seed={seed}", f"trainer.max_steps={args.steps}",
                                                 f"trainer.val_check_interval={args.steps}", *args.override],
               edit=lambda cfg, k=tasks: _keep_types(cfg, ORDER[:k]))
        for table, data in (("seen", "allinone/test4"), ("unseen", "allinone/unseen")):
            _evaluate(run / "checkpoints" / "last.ckpt", data, run / f"eval_{table}", args.images)
    if not args.shard:
        report(args)


def report(args: argparse.Namespace) -> None:
    """Per-task PSNR mean ± std over seeds, BaryIR − plain, from the runs' eval_{seen,unseen}/metrics.json."""
    root = Path(args.out)

    def psnr(name: str, tasks: int, seed: int, table: str) -> dict[str, float] | None:
        path = root / _run_name(name, tasks, seed) / f"eval_{table}" / "metrics.json"
        if not path.exists():
            return None
        metrics = json.loads(path.read_text())["metrics"]
        return {task: values["psnr"]["output"] for task, values in metrics.items() if task != "all"}

    def mean_std(values: list[float]) -> tuple[float, float]:
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    print(f"\nPSNR (dB), RGB [0,1] clipped, no crop, seeded noise; mean ± std over seeds {args.seeds}")
    for tasks in args.tasks:
        for table in ("unseen", "seen"):
            runs = {name: [psnr(name, tasks, s, table) for s in args.seeds] for name in ("plain", "baryir")}
            if any(r is None for rs in runs.values() for r in rs):
                print(f"\nK = {tasks} {table}: runs missing")
                continue
            print(f"\nK = {tasks} training degradation types ({'+'.join(ORDER[:tasks])}), {table}")
            print(f"  {'task':<18} {'plain':>13} {'baryir':>13} {'Δ':>7}")
            for task in runs["plain"][0]:
                (pm, ps), (bm, bs) = (mean_std([r[task] for r in runs[n]]) for n in ("plain", "baryir"))
                print(f"  {task:<18} {pm:7.2f} ±{ps:4.2f} {bm:7.2f} ±{bs:4.2f} {bm - pm:+7.2f}")
            deltas = [b["average"] - p["average"] for p, b in zip(runs["plain"], runs["baryir"])]
            print(f"  {'Δ average per seed':<18} {' '.join(f'{d:+.2f}' for d in deltas)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("figure")
    p.add_argument("--crop", type=int, default=144)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--out-png", default=str(ROOT / "docs" / "methods" / "allinone_synthesis.png"))
    p = sub.add_parser("scenes")
    p.add_argument("--threshold", type=float, default=0.99)
    sub.add_parser("dev-split")
    p = sub.add_parser("dev")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lanes", type=int, default=1)
    p.add_argument("--shard", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(ROOT / "outputs" / "benchmark_allinone_dev"))
    p = sub.add_parser("steptime")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    for name in ("compare", "report"):
        p = sub.add_parser(name)
        p.add_argument("--steps", type=int, default=1000)
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        p.add_argument("--tasks", type=int, nargs="+", default=[4], choices=[1, 2, 3, 4],
                       help="numbers K of training degradation types (noise, + rain, + haze, + low light)")
        p.add_argument("--images", type=int, default=20, help="first K images of every test set (0: all)")
        p.add_argument("--models", nargs="+", default=["baryir", "plain"], choices=["baryir", "plain"])
        p.add_argument("--override", nargs="*", default=[], help="Hydra overrides for every training run")
        p.add_argument("--lanes", type=int, default=1)
        p.add_argument("--shard", default=None, help=argparse.SUPPRESS)
        p.add_argument("--out", default=str(ROOT / "outputs" / "benchmark_allinone"))
    args = parser.parse_args()
    {"figure": figure, "scenes": scenes, "dev-split": dev_split, "dev": dev, "steptime": steptime, "compare": compare,
     "report": report}[args.command](args)


if __name__ == "__main__":
    main()
