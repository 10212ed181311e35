"""Training-data throughput: samples/s for each degradation, with 1 and 2 loader workers.

Run by hand:  python benchmarks/data_pipeline.py [--patch 64] [--samples 384] [--batch 8]

Each row builds the default training set (the embedded photographs, random ``--patch``² crops,
flips/rotations) with one degradation and times a full pass of its DataLoader after the first
batch (worker start-up excluded). The last column is the 2-worker / 1-worker speed-up; on a
machine with fewer free cores than workers it stays near 1.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.data import DataLoader


def degradations() -> dict:
    from restore.data import AddGaussianNoise, GaussianBlur, Haze, JPEGCompression, LowLight, MotionBlur, RainStreaks

    return {
        "awgn σ∈[0,50]": AddGaussianNoise((0, 50)),
        "motion blur 21²": MotionBlur(kernel_size=21),
        "gaussian blur σ∈[0.5,3]": GaussianBlur((0.5, 3.0)),
        "jpeg q∈[10,50] (pillow)": JPEGCompression((10, 50)),
        "jpeg q∈[10,50] (kornia)": JPEGCompression((10, 50), backend="kornia"),
        "rain streaks": RainStreaks(),
        "haze": Haze(),
        "low light": LowLight(),
    }


def samples_per_second(degradation, workers: int, patch: int, samples: int, batch: int) -> float:
    from restore.data import EmbeddedImagesDataset, collate_samples

    dataset = EmbeddedImagesDataset("train", degradations=[degradation], patch_size=patch, augment=True,
                                    length=samples)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate_samples,
                        drop_last=True)
    it = iter(loader)
    next(it)  # workers started, first batch ready
    start = time.perf_counter()
    count = sum(b["lq"].shape[0] for b in it)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--samples", type=int, default=384, help="samples per timed pass (one epoch)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--only", nargs="*", help="substrings of the degradation names to run")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a loader worker: compare like with like

    rows = {k: v for k, v in degradations().items() if not args.only or any(s in k for s in args.only)}
    print(f"patch {args.patch}², batch {args.batch}, {args.samples} samples per pass, {os.cpu_count()} CPUs visible")
    print(f"{'degradation':<26}{'1 worker':>12}{'2 workers':>12}{'2w / 1w':>9}   (samples/s)")
    for name, degradation in rows.items():
        one = samples_per_second(degradation, 1, args.patch, args.samples, args.batch)
        two = samples_per_second(degradation, 2, args.patch, args.samples, args.batch)
        print(f"{name:<26}{one:>12.0f}{two:>12.0f}{two / one:>8.2f}×", flush=True)


if __name__ == "__main__":
    main()
