"""Training throughput: the loader's CPU time per sample with degradations per sample vs deferred to the device,
and the toolkit's training step vs a bare PyTorch loop, each pair measured side by side in one process.

Run by hand:  python benchmarks/throughput.py [--patch 128] [--batch 16] [--rounds 5] [--steps 20]
              [--only loader|step|jpeg] [--device cpu|cuda]

1. Loader (``--only loader``): for each degradation, the default training set (the embedded photographs,
   random ``--patch``² crops, flips/rotations) builds and collates batches as a loader worker does (one intra-op
   thread), once with the degradations applied per sample in the loader (``degrade_on_device=false``: the
   former path, bit-identical to the former code) and once with them deferred (uint8 crops + parameters; the
   work left to the device is timed apart, "device ms"). libjpeg cannot batch and stays in the loader either
   way; the former code's libjpeg round trip (PIL image objects, float arrays) has its own row. CPU time
   (``time.process_time``) per sample, rounds alternating between the two paths so both see the same machine
   load; medians over rounds.
2. Step (``--only step``): the default recipe (``python train.py``: tiny NAFNet, AdamW, EMA, 8×64² patches,
   degradations on the device, CSV/TensorBoard logging, progress bar, its loader workers) through Lightning vs a
   bare loop with the same network, optimiser, gradient clipping, EMA and batch on ready-made tensors (the loop
   of benchmarks/train_step.py); wall time per step after warm-up, rounds alternating, medians.
3. JPEG (``--only jpeg``): how far kornia's differentiable JPEG is from libjpeg (PSNR between their outputs) and
   how strong its artefacts are (PSNR to the clean image, each codec), on 128² centre crops of the embedded
   photographs.
4. Cache (``--only cache``): the memory of ../shared/data/train/CBSD432 cached as uint8 in shared memory vs as
   float32 (as before), and what a spawned loader worker receives when the dataset is pickled.

``--device cuda`` runs the step comparison on the GPU (with the GPU recipe zoo/denoise_color, bf16, batch 16 of
128²) when one is present, ``--compile reduce-overhead`` with CUDA graphs; without a GPU it says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's restore/ and benchmarks/ (not another installed copy)
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

from benchmarks.train_step import bare_training_step  # noqa: E402


class _PillowJPEG:
    """The former per-sample JPEG code (libjpeg through PIL image objects and float arrays), for comparison."""

    task = "dejpeg"

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        import io

        import numpy as np
        from PIL import Image

        quality = 10 + 40 * float(torch.rand((), generator=generator))
        buffer = io.BytesIO()
        Image.fromarray((image.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()).save(
            buffer, format="JPEG", quality=int(round(quality)))
        buffer.seek(0)
        decoded = np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
        return torch.from_numpy(decoded.copy()).permute(2, 0, 1)


def _degradations() -> dict:
    from restore.data import AddGaussianNoise, Haze, JPEGCompression, LowLight, MotionBlur, RainStreaks

    return {  # the data configs' settings
        "awgn σ∈[0,50]": [AddGaussianNoise((0, 50))],
        "motion blur 25² + σ≤2.55": [MotionBlur(25, (0.25, 1.0)), AddGaussianNoise((0, 2.55), task="deblur")],
        "rain streaks": [RainStreaks()],
        "jpeg libjpeg, former (PIL)": [_PillowJPEG()],
        "jpeg q∈[10,50] libjpeg": [JPEGCompression((10, 50))],
        "jpeg q∈[10,50] kornia": [JPEGCompression((10, 50), backend="kornia")],
        "haze": [Haze()],
        "low light": [LowLight()],
    }


def loader_costs(patch: int, batch: int, rounds: int) -> None:
    from restore.data import EmbeddedImagesDataset, RestorationDataModule, collate_samples

    torch.set_num_threads(1)  # as in a loader worker
    print(f"\n1. Loader CPU time per training sample, {patch}² patches, batches of {batch}, one thread "
          f"(median of {rounds} rounds of {2 * batch} samples)")
    print(f"{'degradation':<28}{'per sample':>12}{'deferred':>10}{'ratio':>8}{'device ms':>11}   (ms per sample)")
    for name, chain in _degradations().items():
        def datamodule(on_device: bool) -> RestorationDataModule:
            train = EmbeddedImagesDataset("train", degradations=chain, patch_size=patch, augment=True, length=10**6)
            return RestorationDataModule(train=train, val=EmbeddedImagesDataset("val", seed=0), num_workers=0,
                                         batch_size=batch, degrade_on_device=on_device)

        modules = {"per sample": datamodule(False), "deferred": datamodule(True)}
        times: dict[str, list[float]] = {"per sample": [], "deferred": [], "device": []}
        index = 0
        for _ in range(rounds + 1):  # the first round warms up (kernels, caches), left out
            for key, dm in modules.items():
                start = time.process_time()
                batches = []
                for _ in range(2):
                    batches.append(collate_samples([dm.train_dataset[index + i] for i in range(batch)]))
                    index += batch
                times[key].append((time.process_time() - start) / (2 * batch))
                if key == "deferred":
                    start = time.process_time()
                    for b in batches:
                        dm.degrade(b)
                    times["device"].append((time.process_time() - start) / (2 * batch))
        per_sample, deferred, device = (1e3 * statistics.median(times[k][1:]) for k in times)
        print(f"{name:<28}{per_sample:>12.3f}{deferred:>10.3f}{deferred / per_sample:>7.2f}×{device:>11.3f}",
              flush=True)
    print("ratio: deferred / per sample (loader CPU time); device ms: the deferred work, batched, on this CPU's "
          "main process (on a GPU it runs there instead)")


def step_costs(steps: int, rounds: int, device: str, compile_mode: str | None = None) -> None:
    import lightning as L
    from hydra.utils import instantiate
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from restore.utils.config import compose_config, instantiate_group, instantiate_node

    recipe = [] if device == "cpu" else ["experiment=zoo/denoise_color", "trainer=gpu"]
    placement = ["trainer=cpu"] if device == "cpu" else []
    warmup = 5
    cfg = compose_config("train", recipe + placement + [f"trainer.max_steps={warmup + steps}",
                                                        "trainer.val_check_interval=100000",
                                                        "++trainer.limit_val_batches=0", "test=false"],
                         output_dir=tempfile.mkdtemp(prefix="throughput_"))
    if cfg.get("cpu_threads"):
        torch.set_num_threads(int(cfg.cpu_threads))
    batch, patch = int(cfg.data.batch_size), int(cfg.data.train.patch_size)
    clip, decay = cfg.trainer.gradient_clip_val, float(cfg.callbacks.ema.decay)
    print(f"\n2. Training step, {'the default recipe' if device == 'cpu' else 'zoo/denoise_color'} "
          f"({cfg.model.net._target_.split('.')[-1]}, batch {batch} of {patch}², {torch.get_num_threads()} "
          f"thread(s), {device}): toolkit (Lightning, loader, callbacks, loggers) vs a bare loop "
          f"(same net, AdamW, clipping {clip}, EMA {decay})"
          f"{f', torch.compile mode {compile_mode}' if compile_mode else ''}; "
          f"median of {rounds} rounds of {steps} steps")

    class StepClock(L.Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            self.starts.append(time.perf_counter())

        def on_train_end(self, trainer, pl_module) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            self.starts.append(time.perf_counter())

    def toolkit() -> float:
        L.seed_everything(0, workers=True)
        clock = StepClock()
        trainer = instantiate_node(cfg, "trainer", callbacks=[*instantiate_group(cfg, "callbacks"), clock],
                                   logger=instantiate_group(cfg, "logger") or False, enable_model_summary=False)
        model = instantiate_node(cfg, "model")
        if compile_mode:
            model.net.compile(mode=compile_mode)  # what train.py compile="{mode: ...}" does
        trainer.fit(model=model, datamodule=instantiate_node(cfg, "data"))
        spans = [b - a for a, b in zip(clock.starts, clock.starts[1:])][warmup:]
        return statistics.median(spans)

    def bare() -> float:
        torch.manual_seed(0)
        net = instantiate(cfg.model.net).to(device)
        if compile_mode:
            net.compile(mode=compile_mode)
        opt = torch.optim.AdamW(net.parameters(), lr=float(cfg.model.optimizer.lr),
                                weight_decay=float(cfg.model.optimizer.weight_decay))
        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        x = torch.rand(batch, 3, patch, patch, device=device)
        y = torch.rand_like(x)
        autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")
        spans = []
        for i in range(warmup + steps):
            start = time.perf_counter()
            with autocast:
                bare_training_step(net, opt, x, y, clip=clip, ema=ema)
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                spans.append(time.perf_counter() - start)
        return statistics.median(spans)

    results: dict[str, list[float]] = {"toolkit": [], "bare": []}
    for _ in range(rounds):
        results["bare"].append(bare())
        results["toolkit"].append(toolkit())
    tk, br = (1e3 * statistics.median(results[k]) for k in ("toolkit", "bare"))
    print(f"  toolkit {tk:.1f} ms/step, bare loop {br:.1f} ms/step: toolkit / bare = {tk / br:.3f}×  "
          f"(rounds, ms: toolkit {[round(1e3 * t, 1) for t in results['toolkit']]}, "
          f"bare {[round(1e3 * t, 1) for t in results['bare']]})")


def jpeg_fidelity(patch: int) -> None:
    from kornia.enhance import jpeg_codec_differentiable

    from restore.data import JPEGCompression
    from restore.data.datasets import EMBEDDED_TRAIN, _embedded_image

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(10 * torch.log10(1 / (a - b).pow(2).mean()))

    crops = []
    for name in EMBEDDED_TRAIN:
        image = _embedded_image(name, 3, 512)
        h, w = image.shape[-2:]
        if min(h, w) >= patch:
            crop = image[:, (h - patch) // 2:(h + patch) // 2, (w - patch) // 2:(w + patch) // 2]
            crops.append((crop * 255).round() / 255)  # 8-bit, as a JPEG encoder takes it
    print(f"\n3. kornia's differentiable JPEG vs libjpeg, {len(crops)} centre crops {patch}² of the embedded "
          "photographs (mean PSNR, dB)")
    print(f"{'quality':>8}{'kornia vs libjpeg':>19}{'libjpeg vs clean':>18}{'kornia vs clean':>17}")
    for quality in (10, 20, 30, 40, 50):
        libjpeg = [JPEGCompression(quality)(c, torch.Generator()) for c in crops]
        kornia = [jpeg_codec_differentiable(c[None], torch.tensor([float(quality)]))[0].clamp(0, 1) for c in crops]
        rows = [statistics.mean(psnr(a, b) for a, b in zip(x, y))
                for x, y in ((kornia, libjpeg), (libjpeg, crops), (kornia, crops))]
        print(f"{quality:>8}{rows[0]:>19.2f}{rows[1]:>18.2f}{rows[2]:>17.2f}")


def cache_memory() -> None:
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401  (registers torch's shared-memory pickling)

    from restore.data import AddGaussianNoise, CleanImageDataset

    folder = ROOT.parent / "shared" / "data" / "train" / "CBSD432"
    if not folder.is_dir():
        print(f"\n4. Image cache: {folder} not present, skipped")
        return
    start = time.perf_counter()
    dataset = CleanImageDataset(folder, [AddGaussianNoise((0, 50))], patch_size=128, augment=True, cache=True)
    built = time.perf_counter() - start
    cache = dataset._cache
    pixels = sum(cache[2 * i + 1].numel() for i in range(dataset.num_images))
    print(f"\n4. Image cache of CBSD432 ({dataset.num_images} JPEGs): {cache.nbytes / 2**20:.0f} MiB of uint8 in one "
          f"shared-memory buffer (float32, as before: {4 * pixels / 2**20:.0f} MiB), decoded in {built:.1f} s; "
          f"the dataset pickled for a spawned worker: {len(ForkingPickler.dumps(dataset)) / 2**10:.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", type=int, default=128, help="loader patch side")
    parser.add_argument("--batch", type=int, default=16, help="loader batch size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round (step comparison)")
    parser.add_argument("--only", choices=["loader", "step", "jpeg", "cache"], nargs="*")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--compile", default=None, metavar="MODE",
                        help="torch.compile both networks in the step comparison (e.g. reduce-overhead: CUDA graphs)")
    args = parser.parse_args()
    only = set(args.only or ["loader", "step", "jpeg", "cache"])
    print(f"{os.cpu_count()} CPUs visible; torch {torch.__version__}; "
          + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU on this machine: the device "
             "is the CPU, and the GPU targets (steps/s vs a bare loop on a GPU) are not measured here"))
    if "loader" in only:
        loader_costs(args.patch, args.batch, args.rounds)
    if "step" in only:
        if args.device == "cuda" and not torch.cuda.is_available():
            print("\n2. --device cuda: no GPU on this machine; the GPU step comparison is not run")
        else:
            step_costs(args.steps, args.rounds, args.device, args.compile)
    if "jpeg" in only:
        jpeg_fidelity(args.patch)
    if "cache" in only:
        cache_memory()


if __name__ == "__main__":
    main()
