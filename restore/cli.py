"""The ``restore`` command (also ``python -m restore``): restore image files, export networks.

::

    restore run --model net.safetensors noisy/ restored/ [--tile 512] [--ensemble] [--device cuda]
    restore export --model net.ckpt net.onnx
    restore prepare DIV2K_train_HR/ shards/div2k      (LitData shards for streaming training sets)

``run`` writes one file per input, same name, into the output folder: PNG, TIFF and BMP keep their
format; JPEG and WebP inputs are written as PNG (re-encoding a restored image lossily would add new
artefacts). Gray stays gray, 16-bit gray PNG/TIFF stays 16-bit (Pillow reads 16-bit colour PNGs at
8 bits: those come out 8-bit, with a warning). It never writes over an input file and refuses to
replace existing outputs unless ``--overwrite``. A file that cannot be read (also a broken or
looping symbolic link), whose result is not finite, or that runs out of memory (the warning names
``--tile``) is skipped with a warning naming it; the others are still processed, and the exit status
is then 1. A full disk stops the run, naming the folder. Every output is written whole or not at
all (a temporary file renamed over it): a run stopped by Ctrl-C or SIGTERM leaves no partial file.

Every failure is one line naming the culprit and the fix. Exit status: 0 all done; 1 some inputs
not restored (each named); 2 bad arguments, model or paths, or an export that failed (nothing written).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
from pathlib import Path
from typing import Iterator, Sequence

__all__ = ["main", "build_parser", "output_name", "EXIT_OK", "EXIT_SKIPPED", "EXIT_USAGE"]

EXIT_OK, EXIT_SKIPPED, EXIT_USAGE = 0, 1, 2

# formats written as they came (lossless, or what the user chose); anything else becomes PNG
_KEPT_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")


class UsageError(Exception):
    """A problem with the arguments, model or paths, found before anything is written."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restore",
        description="Restore images with a trained network, or export one to ONNX / TorchScript.",
        epilog="Examples:\n"
               "  restore run --model outputs/<task_name>/<timestamp>/checkpoints/best.ckpt noisy/ restored/\n"
               "  restore run --model net.safetensors photo.jpg out/ --tile 512 --device cuda\n"
               "  restore export --model best.ckpt net.onnx\n\n"
               "`restore <command> --help` describes each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{run,export,prepare}", required=True)

    run = sub.add_parser(
        "run", help="restore an image file or every image in a folder",
        description="Restore an image file, or every image in a folder (not recursive), into OUTPUT_DIR.",
        epilog="Outputs keep the input's file name. PNG, TIFF and BMP keep their format; JPEG and WebP\n"
               "are written as PNG (lossless). Gray stays gray, 16-bit gray stays 16-bit; alpha is dropped.\n"
               "An input file is never overwritten; existing outputs are refused unless --overwrite.\n"
               "Unreadable files (and broken symbolic links) are skipped with a warning naming them, as are\n"
               "files that run out of memory (try --tile); the others are restored, and the exit status is 1.\n"
               "Bad arguments, model or paths: exit status 2, nothing written.\n\n"
               "Example:\n  restore run --model best.ckpt noisy/ restored/ --tile 512 --device cuda",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_argument(run)
    run.add_argument("input", type=Path, help="an image file, or a folder of images "
                     "(.png .jpg .jpeg .bmp .tif .tiff .webp)")
    run.add_argument("output_dir", type=Path, help="folder for the restored images (created if needed)")
    run.add_argument("--tile", type=int, default=None, metavar="N",
                     help="restore in N×N tiles to bound memory on large images, N ≥ the network's size multiple "
                          "(default: whole image)")
    run.add_argument("--tile-overlap", type=int, default=32, metavar="N",
                     help="overlap between tiles, blended linearly (default: 32; must be < --tile)")
    run.add_argument("--ensemble", action="store_true",
                     help="average over the 8 flips/rotations (self-ensemble; 8× slower)")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1… (default: cuda when available, else cpu)")
    run.add_argument("--deploy", action="store_true",
                     help="re-parameterise the network to its deploy form first (same output, faster)")
    run.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")

    export = sub.add_parser(
        "export", help="export a network's deploy form to ONNX or TorchScript",
        description="Export a network's deploy form (re-parameterised) to ONNX or TorchScript, with dynamic "
                    "batch, height and width (H, W ≥ the network's size multiple), checked against PyTorch "
                    "on a second input size (ONNX: when onnxruntime is installed).")
    _add_model_argument(export)
    export.add_argument("output", type=Path, help="file to write: .onnx, or .pt for TorchScript")
    export.add_argument("--format", choices=("onnx", "torchscript"), default=None,
                        help="default: from OUTPUT's suffix (.onnx → onnx; .pt .pth .ts → torchscript)")
    export.add_argument("--opset", type=int, default=None, help="ONNX opset version, 7 to 20 (default: 17)")
    export.add_argument("--device", default="cpu", help="device the network is traced on (default: cpu)")
    export.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    _add_prepare_parser(sub)
    return parser


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="NAME|FILE",
                        help="a .ckpt from train.py, a .safetensors from restore.export_model, or the name of a "
                             "pretrained model (restore.list_models())")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``restore`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False)
    try:
        with _sigterm_as_exit():
            return {"run": _run, "export": _export, "prepare": _prepare}[args.command](args, console)
    except UsageError as err:  # messages hold paths and ranges like [0, 1]: escaped, not read as markup
        console.print(f"[bold red]restore {args.command}: error:[/] {escape(str(err))}", soft_wrap=True)
        return EXIT_USAGE


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM (``kill``) raises ``SystemExit(143)`` instead of ending the process on the spot, so a file
    being written is cleaned up (:func:`restore.utils.files.atomic_write`) as on Ctrl-C."""

    def exit_now(signum, frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, exit_now)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------------- run
def output_name(path: Path) -> str:
    """The output's file name for an input file: same name; JPEG, WebP and others become ``.png``."""
    return path.name if path.suffix.lower() in _KEPT_SUFFIXES else path.stem + ".png"


def _list_inputs(path: Path) -> tuple[list[Path], dict[Path, str]]:
    """→ (image files to restore, {image-named symbolic link that leads nowhere: why}) of a folder or a file."""
    from restore.utils.image import IMAGE_EXTENSIONS

    if path.is_dir():
        named = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        files = [p for p in named if p.is_file()]
        broken = {p: _broken_link(p) for p in named if p.is_symlink() and not p.exists()}
        if not files:
            links = f" (only broken symbolic links: {', '.join(f'{p.name} {why}' for p, why in broken.items())})"
            raise UsageError(f"no image files ({' '.join(IMAGE_EXTENSIONS)}) in {path}" + (links if broken else ""))
        return files, broken
    if path.is_file():
        return [path], {}  # an explicitly named file is tried whatever its suffix
    if path.is_symlink():
        raise UsageError(f"input {path} is a broken symbolic link: {_broken_link(path)}")
    raise UsageError(f"input not found: {path}")


def _broken_link(path: Path) -> str:
    """Why the symbolic link ``path`` leads to no file: a loop, or a target that does not exist."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a symbolic link loop"
    return f"is a symbolic link to {os.readlink(path)}, which does not exist"


def _plan_outputs(inputs: list[Path], out_dir: Path, overwrite: bool) -> list[tuple[Path, Path]]:
    """→ (input, output) pairs; refuses an unusable folder, collisions, writing over an input, and existing
    outputs."""
    from restore.utils.files import WriteError, check_output_folder

    try:
        check_output_folder(out_dir)
    except WriteError as err:
        raise UsageError(f"output folder {out_dir}: {err}") from None
    pairs = [(p, out_dir / output_name(p)) for p in inputs]
    by_output: dict[Path, list[Path]] = {}
    for src, dst in pairs:
        by_output.setdefault(dst, []).append(src)
    clashes = {dst: srcs for dst, srcs in by_output.items() if len(srcs) > 1}
    if clashes:
        dst, srcs = next(iter(clashes.items()))
        raise UsageError(f"{' and '.join(map(str, srcs))} would both be written to {dst}"
                         + (f" (and {len(clashes) - 1} more such clashes)" if len(clashes) > 1 else "")
                         + ": rename one, or restore them into different folders")
    resolved_inputs = {p.resolve() for p in inputs}
    onto_input = [dst for _, dst in pairs if dst.resolve() in resolved_inputs]
    if onto_input:
        raise UsageError(f"refusing to write over the input file {onto_input[0]}: choose another output folder")
    existing = [dst for _, dst in pairs if dst.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(f"output {existing[0]}{more} already exists: pass --overwrite to replace, or choose another "
                         "output folder")
    return pairs


def _pick_device(name: str | None):
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"--device {name!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def _load(spec: str, device, deploy: bool):
    from restore.checkpoint import load_model
    from restore.model_zoo import UnknownModelError, resolve_model

    try:
        return load_model(resolve_model(spec), map_location=device, deploy=deploy)
    except (UnknownModelError, FileNotFoundError, OSError, ValueError, RuntimeError) as err:
        # ValueError covers UnsafeCheckpointError, MissingNetConfigError and NonFiniteWeightsError
        raise UsageError(f"cannot load --model {spec}: {err}") from None


def _run(args: argparse.Namespace, console) -> int:
    files, broken = _list_inputs(args.input)
    pairs = _plan_outputs(files, args.output_dir, args.overwrite)
    device = _pick_device(args.device)
    net = _load(args.model, device, args.deploy)

    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from restore.inference import NonFiniteOutputError, check_tile, restore_image
    from restore.utils.files import NoSpaceError

    try:
        check_tile(net, args.tile, args.tile_overlap)
    except ValueError as err:
        raise UsageError(f"--tile {args.tile} --tile-overlap {args.tile_overlap}: {err}") from None
    args.output_dir.mkdir(parents=True, exist_ok=True)
    skipped = list(broken)
    for link, why in broken.items():
        console.print(f"[yellow]Warning:[/] skipped {escape(str(link))}: it {why}", soft_wrap=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[name]}"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("Restoring", total=len(pairs), name="")
        for i, (src, dst) in enumerate(pairs):
            progress.update(task, name=src.name)
            if _is_16bit_colour_png(src):
                progress.console.print(f"[yellow]Warning:[/] {escape(str(src))}: 16-bit colour PNG, read at 8 bits "
                                       "per channel (Pillow has no 16-bit RGB mode); written as 8-bit", soft_wrap=True)
            try:
                image = restore_image(net, src, tile=args.tile, tile_overlap=args.tile_overlap,
                                      ensemble=args.ensemble, device=device)
                _save(image, dst)
            except NoSpaceError as err:  # every later file would fail the same way
                progress.console.print(f"[bold red]Error:[/] {escape(str(err))}; stopped before "
                                       f"{len(pairs) - i} file(s)", soft_wrap=True)
                skipped += [s for s, _ in pairs[i:]]
                break
            except Exception as err:
                # OSError/ValueError/TypeError: unreadable, truncated or unsupported image (named in the message)
                out_of_memory = _out_of_memory(err)
                if not (out_of_memory or isinstance(err, (OSError, ValueError, TypeError, NonFiniteOutputError))):
                    raise
                hint = f" (out of memory: restore it alone with --tile {_smaller_tile(args.tile, net)})" \
                    if out_of_memory else ""
                progress.console.print(f"[yellow]Warning:[/] skipped {escape(str(src))}: {escape(_one_line(err))}"
                                       f"{hint}", soft_wrap=True)
                skipped.append(src)
            progress.advance(task)
    done = len(pairs) - len(skipped) + len(broken)
    console.print(f"Restored {done} of {len(pairs) + len(broken)} image(s) into {escape(str(args.output_dir))}",
                  soft_wrap=True)
    if skipped:
        names = escape(", ".join(str(p) for p in skipped))
        console.print(f"[bold yellow]{len(skipped)} file(s) skipped:[/] {names}", soft_wrap=True)
        return EXIT_SKIPPED
    return EXIT_OK


def _out_of_memory(err: BaseException) -> bool:
    """CUDA's ``torch.OutOfMemoryError``, Python's ``MemoryError``, or the CPU allocator's ``RuntimeError``."""
    import torch

    return isinstance(err, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(err, RuntimeError) and "DefaultCPUAllocator" in str(err))


def _smaller_tile(tile: int | None, net) -> str:
    """The ``--tile`` to retry an image that ran out of memory with: 512, or half the tile that failed."""
    if tile is None:
        return "512"
    return f"{max(int(getattr(net, 'size_multiple', 1)), tile // 2)} or smaller"


def _one_line(err: BaseException) -> str:
    """The first line of an error's message (torch's allocator errors carry a C++ backtrace after it)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _save(image, path: Path) -> None:
    """Write a PIL image whole or not at all (:func:`restore.utils.files.atomic_write`)."""
    from PIL import Image

    from restore.utils.files import atomic_write

    with atomic_write(path) as f:
        image.save(f, format=Image.registered_extensions()[path.suffix.lower()])


def _is_16bit_colour_png(path: Path) -> bool:
    """Whether ``path`` is a PNG with 16 bits per sample in colour (IHDR bit depth 16, colour type 2 or 6)."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return False
    return head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 6)


# ------------------------------------------------------------------------------------------ export
def _export(args: argparse.Namespace, console) -> int:
    fmt = args.format
    suffix = args.output.suffix.lower()
    if fmt is None:
        if suffix == ".onnx":
            fmt = "onnx"
        elif suffix in _TORCHSCRIPT_SUFFIXES:
            fmt = "torchscript"
        else:
            raise UsageError(f"cannot tell the format from {args.output.name!r}: name it .onnx or .pt, or pass "
                             "--format onnx|torchscript")
    from restore.export import (
        DEFAULT_OPSET,
        ExportMismatchError,
        UnsupportedExportError,
        check_export_path,
        check_opset,
        export_onnx,
        export_torchscript,
    )
    from restore.utils.files import WriteError

    if args.opset is not None and fmt != "onnx":
        raise UsageError("--opset applies to ONNX exports only")
    try:  # before the model is loaded: these fail fast
        check_opset(args.opset or DEFAULT_OPSET)
        check_export_path(args.output)
    except (UnsupportedExportError, WriteError) as err:
        raise UsageError(str(err)) from None
    if args.output.exists() and not args.overwrite:
        raise UsageError(f"{args.output} already exists: pass --overwrite to replace it")
    net = _load(args.model, _pick_device(args.device), deploy=False)

    from rich.markup import escape

    try:
        if fmt == "onnx":
            path = export_onnx(net, args.output, opset=args.opset or DEFAULT_OPSET)
        else:
            path = export_torchscript(net, args.output)
    except (ImportError, UnsupportedExportError, ExportMismatchError, WriteError) as err:
        raise UsageError(str(err)) from None
    console.print(f"Wrote {escape(str(path))} ({fmt}, deploy form, dynamic batch/height/width; input 'input' (B, "
                  f"{getattr(net, 'in_channels', 'C')}, H, W) float32 in [0, 1])", soft_wrap=True)
    return EXIT_OK


# ----------------------------------------------------------------------------------------- prepare
def _add_prepare_parser(sub) -> None:
    prepare = sub.add_parser(
        "prepare", help="write a folder of training images as LitData shards, for streaming",
        description="Write the images of FOLDER as LitData-optimised shards (uint8 images and their names) in OUT, "
                    "for a streaming training set (restore.data.streaming.StreamingImageDataset, config "
                    "data=denoise/streaming): read from a local folder or a bucket, sharded over DDP ranks and "
                    "nodes.",
        epilog="OUT is a new or empty folder, or a bucket URL (s3://bucket/prefix; upload credentials as\n"
               "LitData reads them). Needs LitData: pip install 'restore[stream]'.\n\n"
               "Example:\n  restore prepare DIV2K_train_HR/ shards/div2k\n"
               "  python train.py data=denoise/streaming data.train.input_dir=shards/div2k",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    prepare.add_argument("folder", type=Path,
                         help="folder of training images (.png .jpg .jpeg .bmp .tif .tiff .webp)")
    prepare.add_argument("out", help="folder (new or empty) or bucket URL for the shards")
    prepare.add_argument("--channels", type=int, choices=(1, 3), default=3,
                         help="3: RGB (default), 1: gray (converted now, as the folder datasets convert)")
    prepare.add_argument("--recursive", action="store_true", help="also take images in sub-folders")
    prepare.add_argument("--chunk-bytes", default="64MB", help="shard chunk size (default: 64MB)")
    prepare.add_argument("--workers", type=int, default=None, help="writer processes (default: one per CPU)")


def _prepare(args: argparse.Namespace, console) -> int:
    try:
        from restore.data.streaming import prepare_shards
    except ImportError as err:
        raise UsageError(str(err)) from None
    from rich.markup import escape

    try:
        count = prepare_shards(args.folder, args.out, channels=args.channels, recursive=args.recursive,
                               chunk_bytes=args.chunk_bytes, num_workers=args.workers)
    except (OSError, ValueError) as err:  # a missing folder, files in OUT, an unreadable image: named
        raise UsageError(str(err)) from None
    console.print(f"Wrote {count} images as LitData shards to {escape(str(args.out))}", soft_wrap=True)
    return EXIT_OK
