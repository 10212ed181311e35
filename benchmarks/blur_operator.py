"""The semi-blind 'valid' blur operator's FFT grid: scipy's ``next_fast_len`` sizes vs the extended domain's own
size, side by side in one process.

Run by hand:  python benchmarks/blur_operator.py [--size 256] [--kernels 11 13 … 25] [--rounds 5] [--threads 1]

For each straight-line kernel of length ``--kernels`` (its kh × kh box, printed, is 2 px larger) on a ``--size``²
image, the extended domain is (size + kh − 1)²: 268 = 4·67, 274 = 2·137, 282 = 2·3·47 are slow FFT sizes. It times
one TV deconvolution (the angle search's misfit solve, ``MISFIT_TV``: 12 HQS × 10 CG steps, each an AᵀA) with
:class:`~restore.semiblind.operators.BlurOperator` on its fast grid and on the bare extended grid (the former code),
rounds alternating so both see the same machine load; medians over rounds. It also prints the largest difference
between the two solutions (float32 rounding only: both grids compute the same linear convolution).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--kernels", nargs="*", type=int, default=[11, 13, 15, 17, 19, 21, 23, 25])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from restore.semiblind import line_motion_kernel
    from restore.semiblind.kernel_refinement import MISFIT_TV
    from restore.semiblind.operators import BlurOperator
    from restore.semiblind.plug_and_play import tv_deconvolution

    y = torch.rand(1, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))
    print(f"{args.size}² image, TV solve ({MISFIT_TV.iterations} HQS × {MISFIT_TV.cg_iterations} CG), "
          f"{args.threads} thread(s), median of {args.rounds} rounds")
    print(f"{'kernel':>6} {'ext grid':>9} {'fast grid':>9} | {'ext s':>7} {'fast s':>7} {'ratio':>6} | max |Δx|")
    for kh in args.kernels:
        k = torch.from_numpy(line_motion_kernel(kh, 30.0)).float()
        fast = BlurOperator(k, (args.size, args.size))
        bare = BlurOperator(k, (args.size, args.size))
        bare.fft_hw, bare.otf = bare.ext_hw, torch.fft.rfft2(k, s=bare.ext_hw)  # the former grid
        times: dict[str, list[float]] = {"ext": [], "fast": []}
        out = {}
        for _ in range(args.rounds):
            for name, op in (("ext", bare), ("fast", fast)):
                t = time.perf_counter()
                out[name] = tv_deconvolution(y, op, MISFIT_TV, 0.01)
                times[name].append(time.perf_counter() - t)
        ext_s, fast_s = statistics.median(times["ext"]), statistics.median(times["fast"])
        diff = float((out["ext"] - out["fast"]).abs().max())
        print(f"{k.shape[0]:>6} {bare.ext_hw[0]:>9} {fast.fft_hw[0]:>9} | {ext_s:7.3f} {fast_s:7.3f} "
              f"{ext_s / fast_s:5.2f}× | {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
