"""Hostile and damaged weights files: what ``restore.load_model`` does with each, and its peak memory.

Run by hand (each load in a fresh process, one thread; ``--baseline`` adds another checkout of the
toolkit, e.g. the main branch, measured side by side with this one):

    python benchmarks/hostile_files.py [--baseline /path/to/other/checkout] [--bomb-gib 2] [--limit-gib 8]

Cases, built in a temporary folder from a tiny NAFNet U-Net:

* ``import only``: ``import restore``, nothing loaded (the floor of every peak below);
* ``genuine``: the network exported with ``restore.export_model``;
* ``flipped bytes``: the same file with the lowest mantissa bit of 4 values flipped (weights stay finite);
* ``zip bomb``: a genuine ``.ckpt`` whose state dict also holds a ``bomb`` tensor of ``--bomb-gib`` GiB of
  zeros, stored deflated (a few MB on disk);
* ``sparse 34 GB``: a restore-sparse export declaring a 92682² float32 tensor (34.4 GB dense) with
  no non-zeros.

Each child runs under an address-space limit (``--limit-gib``), so a checkout that tries to
allocate what a file declares fails there instead of exhausting the machine. Peak memory is the
child's maximum resident set size (``getrusage``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = {"_target_": "restore.models.unet.RestorationUNet", "in_channels": 3, "width": 8, "enc_blocks": [1, 1],
          "middle_blocks": 1, "dec_blocks": [1, 1],
          "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True}}

CHILD = """
import json, resource, sys, time, warnings
sys.path.insert(0, sys.argv[1])
warnings.simplefilter("ignore")
import restore
start = time.perf_counter()
try:
    if sys.argv[2] != "-":
        restore.load_model(sys.argv[2])
    outcome = "loaded"
except BaseException as err:
    outcome = f"{type(err).__name__}: {' '.join(str(err).split())[:160]}"
print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build(folder: Path, bomb_gib: float) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    import torch
    from safetensors.torch import save_file

    import restore
    from restore.checkpoint import build_net
    from restore.weights_io import weights_digest
    from tests.conftest import flip_weight_bits

    torch.manual_seed(0)
    net = build_net(CONFIG).eval()
    genuine = restore.export_model(net, folder / "genuine.safetensors", net_config=CONFIG)
    flipped = folder / "flipped.safetensors"
    flipped.write_bytes(genuine.read_bytes())
    flip_weight_bits(flipped)

    raw, bomb = folder / "raw.ckpt", folder / "bomb.ckpt"
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    state["net.bomb"] = torch.zeros(int(bomb_gib * 2**30) // 4)  # held here while building, not in the children
    torch.save({"state_dict": state, "net_config": CONFIG}, raw)
    del state
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            with src.open(info) as reader, dst.open(info.filename, "w", force_zip64=True) as writer:
                while chunk := reader.read(2**24):
                    writer.write(chunk)
    raw.unlink()

    side = 92_682
    tensors = {"intro.weight::values": torch.zeros(0), "intro.weight::indices": torch.zeros(0, dtype=torch.int32)}
    sparse = folder / "sparse34.safetensors"
    save_file(tensors, str(sparse), metadata={
        "format": "restore-sparse", "format_version": "1", "net_config": json.dumps(CONFIG), "deploy": "false",
        "sparse": json.dumps({"intro.weight": {"shape": [side, side], "dtype": "float32", "encoding": "indices",
                                               "nnz": 0}}), "digest": weights_digest(tensors)})
    return {"import only": "-", "genuine": str(genuine), "flipped bytes": str(flipped),
            f"zip bomb ({bomb.stat().st_size / 2**20:.1f} MiB on disk)": str(bomb), "sparse 34 GB": str(sparse)}


def measure(checkout: Path, path: str, limit_gib: float) -> dict:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit_gib * 2**30),) * 2)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(checkout), path], capture_output=True, text=True,
                          env=env, cwd=checkout, preexec_fn=limit)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"outcome": f"process died (exit {done.returncode}): {done.stderr.strip()[-160:]}", "seconds": None,
                "peak_mib": None}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another checkout of the toolkit to measure side by side")
    parser.add_argument("--bomb-gib", type=float, default=2.0)
    parser.add_argument("--limit-gib", type=float, default=8.0)
    args = parser.parse_args()
    checkouts = {"this checkout": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory() as tmp:
        cases = build(Path(tmp), args.bomb_gib)
        for case, path in cases.items():
            for label, checkout in checkouts.items():
                r = measure(checkout, path, args.limit_gib)
                peak = "—" if r["peak_mib"] is None else f"{r['peak_mib']:.0f} MiB"
                secs = "—" if r["seconds"] is None else f"{r['seconds']:.2f} s"
                print(f"{case:<32} {label:<14} peak {peak:>9}  {secs:>8}  {r['outcome']}", flush=True)


if __name__ == "__main__":
    main()
