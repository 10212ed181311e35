"""The `restore` command as users run it: `restore run` over files and folders, `restore export`."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

import restore
from restore.cli import EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, main, output_name

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A seeded tiny UniRepLKNet U-Net exported as safetensors (re-parameterisable: --deploy matters)."""
    config = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "model" / "net" / "unireplknet_tiny.yaml"))
    torch.manual_seed(0)
    net = instantiate(config)
    return restore.export_model(net, tmp_path_factory.mktemp("model") / "tiny.safetensors", net_config=config)


def write_png16_rgb(path: Path, arr: np.ndarray) -> None:
    """A 16-bit RGB PNG, written by hand (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def images(tmp_path) -> Path:
    """A folder of good images (PNG/JPEG, gray/RGB, 16-bit), one unreadable file and a non-image."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((20, 27, 3)) * 255).astype(np.uint8)).save(folder / "rgb.png")
    Image.fromarray((rng.random((19, 22, 3)) * 255).astype(np.uint8)).save(folder / "photo.jpg", quality=90)
    Image.fromarray((rng.random((21, 18)) * 255).astype(np.uint8)).save(folder / "gray.jpeg")
    Image.fromarray((rng.random((17, 26)) * 65535).astype(np.uint16)).save(folder / "gray16.png")
    # brackets in the name: printed as they are, not read as rich markup
    (folder / "[b]broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "notes.txt").write_text("not an image: ignored")
    return folder


EXPECTED = {  # output name → (PIL mode, size) for the `images` fixture
    "rgb.png": ("RGB", (27, 20)), "photo.png": ("RGB", (22, 19)), "gray.png": ("L", (18, 21)),
    "gray16.png": ("I;16", (26, 17)),
}


def test_run_folder_writes_every_good_image_and_names_the_unreadable_one(model_file, images, tmp_path, capsys):
    out = tmp_path / "out" / "nested"
    code = main(["run", "--model", str(model_file), str(images), str(out)])
    err = capsys.readouterr().err
    assert code == EXIT_SKIPPED
    assert "Warning" in err and "skipped" in err and "[b]broken.png" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPECTED)  # no broken one, no notes.txt, no .part left
    net = restore.load_model(model_file)
    for src in sorted(images.iterdir()):
        if src.name in ("[b]broken.png", "notes.txt"):
            continue
        with Image.open(out / output_name(src)) as written:
            assert (written.mode, written.size) == EXPECTED[output_name(src)], src.name
            expected = np.asarray(restore.restore_image(net, src))
            np.testing.assert_array_equal(np.asarray(written), expected)  # lossless, same dtype: 16-bit stays 16-bit
    with Image.open(out / "gray16.png") as g16:
        assert np.asarray(g16).max() > 255  # really 16-bit values, not 8-bit ones in a 16-bit file


def test_run_refuses_existing_outputs_unless_overwrite(model_file, images, tmp_path, capsys):
    (images / "[b]broken.png").unlink()
    out = tmp_path / "out"
    assert main(["run", "--model", str(model_file), str(images / "rgb.png"), str(out)]) == EXIT_OK
    before = (out / "rgb.png").read_bytes()
    (out / "rgb.png").write_bytes(b"user's file")
    assert main(["run", "--model", str(model_file), str(images), str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert (out / "rgb.png").read_bytes() == b"user's file" and not (out / "photo.png").exists()  # nothing written
    assert main(["run", "--model", str(model_file), str(images), str(out), "--overwrite"]) == EXIT_OK
    assert (out / "rgb.png").read_bytes() == before


def test_run_never_writes_over_an_input(model_file, images, capsys):
    original = (images / "rgb.png").read_bytes()
    code = main(["run", "--model", str(model_file), str(images / "rgb.png"), str(images), "--overwrite"])
    assert code == EXIT_USAGE
    assert "refusing to write over the input" in capsys.readouterr().err
    assert (images / "rgb.png").read_bytes() == original


def test_run_refuses_two_inputs_with_one_output_name(model_file, images, tmp_path, capsys):
    Image.open(images / "rgb.png").save(images / "rgb.jpg")
    assert main(["run", "--model", str(model_file), str(images), str(tmp_path / "out")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "rgb.jpg" in err and "rgb.png" in err and "both" in err
    assert not (tmp_path / "out").exists()


def test_run_passes_tile_ensemble_and_deploy_through(model_file, images, tmp_path):
    out = tmp_path / "out"
    args = ["run", "--model", str(model_file), str(images / "rgb.png"), str(out), "--tile", "16", "--tile-overlap",
            "4", "--ensemble", "--deploy", "--device", "cpu"]
    assert main(args) == EXIT_OK
    net = restore.load_model(model_file)  # training form: the deploy form must give the same image
    expected = np.asarray(restore.restore_image(net, images / "rgb.png", tile=16, tile_overlap=4, ensemble=True))
    got = np.asarray(Image.open(out / "rgb.png"))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # float rounding at a .5 boundary at most


def test_run_warns_that_16bit_colour_png_is_read_at_8_bits(model_file, tmp_path, capsys):
    src = tmp_path / "rgb16.png"
    write_png16_rgb(src, (np.random.default_rng(0).random((12, 13, 3)) * 65535).astype(np.uint16))
    assert main(["run", "--model", str(model_file), str(src), str(tmp_path / "out")]) == EXIT_OK
    assert "16-bit colour PNG" in capsys.readouterr().err
    assert Image.open(tmp_path / "out" / "rgb16.png").mode == "RGB"


@pytest.mark.parametrize("spec, message", [
    ("nafnet_colour_denoise", "Unknown model 'nafnet_colour_denoise'"),
    ("missing/best.ckpt", "not found: missing/best.ckpt"),
])
def test_bad_model_gives_a_clear_error(spec, message, images, tmp_path, capsys):
    assert main(["run", "--model", spec, str(images), str(tmp_path / "out")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    if "Unknown" in message:
        assert "restore.list_models()" in err and ".ckpt" in err
    assert not (tmp_path / "out").exists()


def test_corrupt_model_file_is_named(images, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    assert main(["run", "--model", str(bad), str(images), str(tmp_path / "out")]) == EXIT_USAGE
    assert "bad.safetensors" in capsys.readouterr().err


def test_bad_tile_arguments_are_refused(model_file, images, tmp_path, capsys):
    args = ["run", "--model", str(model_file), str(images), str(tmp_path / "out"), "--tile", "16"]
    assert main(args) == EXIT_USAGE  # default overlap 32 ≥ tile 16
    assert "--tile-overlap" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*is deprecated:FutureWarning")
def test_export_command_writes_a_torchscript_module(model_file, tmp_path, capsys):
    out = tmp_path / "net.pt"
    assert main(["export", "--model", str(model_file), str(out)]) == EXIT_OK
    assert main(["export", "--model", str(model_file), str(out)]) == EXIT_USAGE  # exists: refused
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "--model", str(model_file), str(tmp_path / "net.bin")]) == EXIT_USAGE
    assert "--format" in capsys.readouterr().err
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(out))(x), restore.load_model(model_file)(x), atol=1e-4, rtol=0)


def test_console_script_and_python_m_restore(tmp_path):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["restore"] == "restore.cli:main"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "restore", "run", "--help"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for option in ("--model", "--tile", "--tile-overlap", "--ensemble", "--device", "--deploy", "--overwrite"):
        assert option in proc.stdout


# ------------------------------------------------- one clear line for every failure (exit 2: usage, nothing written)
def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture
def fft_model_file(tmp_path) -> Path:
    torch.manual_seed(0)
    net = restore.create_model("deeprft_tiny", width=8)
    return restore.export_model(net, tmp_path / "deeprft.safetensors")


def test_export_to_a_folder_says_it_is_one(model_file, tmp_path, capsys):
    (tmp_path / "net.pt").mkdir()
    for extra in ([], ["--overwrite"]):  # not "already exists: pass --overwrite", which then failed raw
        assert main(["export", "--model", str(model_file), str(tmp_path / "net.pt"), *extra]) == EXIT_USAGE
        assert f"net.pt is a folder: give the file to write, e.g. {tmp_path / 'net.pt' / 'net.pt'}" in last_line(
            capsys.readouterr().err)


@pytest.mark.parametrize("where, message", [
    ("file", "notes is a file, not a folder"),
    ("loop", "loop is a symbolic link loop"),
    ("dangling", "dangling is a symbolic link to"),
])
@pytest.mark.parametrize("command", ["export", "run"])
def test_output_under_a_file_or_a_broken_link_is_named(command, where, message, model_file, images, tmp_path, capsys):
    (tmp_path / "notes").write_text("a file")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    folder = tmp_path / {"file": "notes", "loop": "loop", "dangling": "dangling"}[where] / "sub"
    args = (["export", "--model", str(model_file), str(folder / "net.pt")] if command == "export"
            else ["run", "--model", str(model_file), str(images), str(folder)])
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in last_line(err) and len(err.strip().splitlines()) == 1


def test_export_into_proc_is_one_line(model_file, capsys):
    if not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    assert main(["export", "--model", str(model_file), "/proc/net.pt"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "/proc" in last_line(err) and "choose another" in last_line(err) and len(err.strip().splitlines()) == 1


def test_export_opset_out_of_range(model_file, tmp_path, capsys):
    assert main(["export", "--model", str(model_file), str(tmp_path / "net.onnx"), "--opset", "99"]) == EXIT_USAGE
    assert "opset 99: PyTorch's TorchScript-based ONNX exporter writes opsets 7 to 20" in last_line(
        capsys.readouterr().err)
    assert not (tmp_path / "net.onnx").exists()


def test_export_fft_model_to_onnx_says_to_use_pt(fft_model_file, tmp_path, capfd):
    pytest.importorskip("onnx")
    assert main(["export", "--model", str(fft_model_file), str(tmp_path / "net.onnx")]) == EXIT_USAGE
    err = capfd.readouterr().err  # the exporter's graph dump goes to the process's stderr, not sys.stderr
    assert len(err.strip().splitlines()) == 1, err[:2000]
    assert "torch.fft" in err and "TorchScript instead (net.pt" in err
    assert not (tmp_path / "net.onnx").exists()


def test_out_of_memory_skips_that_file_names_tile_and_goes_on(model_file, images, tmp_path, capsys, monkeypatch):
    import restore.inference
    from restore.inference import NonFiniteOutputError

    (images / "[b]broken.png").unlink()
    real = restore.inference.restore_image

    def restore_image(net, src, **kwargs):
        if Path(src).name == "photo.jpg":  # as torch's CPU allocator reports it (a RuntimeError)
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 40000000000000 bytes. Error code 12 (Cannot allocate "
                               "memory)\nframe #0: c10::ThrowEnforceNotMet(...)")
        if Path(src).name == "gray.jpeg":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if Path(src).name == "gray16.png":  # skipped too, without the memory hint
            raise NonFiniteOutputError("RestorationUNet produced NaN or Inf values")
        return real(net, src, **kwargs)

    monkeypatch.setattr(restore.inference, "restore_image", restore_image)
    out = tmp_path / "out"
    assert main(["run", "--model", str(model_file), str(images), str(out), "--tile", "64"]) == EXIT_SKIPPED
    err = capsys.readouterr().err
    for name in ("photo.jpg", "gray.jpeg"):
        line = next(ln for ln in err.splitlines() if f"skipped {images / name}" in ln)
        assert "out of memory: restore it alone with --tile 32 or smaller" in line and "frame #0" not in line
    assert f"skipped {images / 'gray16.png'}: RestorationUNet produced NaN or Inf values\n" in err
    assert [p.name for p in out.iterdir()] == ["rgb.png"]  # the others were restored


def test_full_disk_stops_the_run_naming_the_folder(model_file, images, tmp_path, capsys, monkeypatch):
    (images / "[b]broken.png").unlink()
    written = []

    def save(self, fp, *args, **kwargs):
        written.append(fp)
        fp.write(b"\x89PNG\r\n\x1a\n partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save)
    out = tmp_path / "out"
    assert main(["run", "--model", str(model_file), str(images), str(out)]) == EXIT_SKIPPED
    err = capsys.readouterr().err
    assert f"no space left on {out} (writing gray.png)" in err and "stopped before 4 file(s)" in err
    assert len(written) == 1  # not tried again for every later file
    assert not list(out.iterdir())  # no partial output, no temporary file


def test_tile_below_the_size_multiple_is_refused(model_file, images, tmp_path, capsys):
    assert main(["run", "--model", str(model_file), str(images), str(tmp_path / "out"), "--tile", "0"]) == EXIT_USAGE
    assert "tile size 0 is below RestorationUNet's size multiple (8)" in last_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_broken_and_looping_symlinks_in_the_input_folder_are_named(model_file, images, tmp_path, capsys):
    (images / "[b]broken.png").unlink()
    (images / "gone.png").symlink_to(tmp_path / "deleted.png")
    (images / "loop_a.png").symlink_to(images / "loop_b.png")
    (images / "loop_b.png").symlink_to(images / "loop_a.png")
    out = tmp_path / "out"
    assert main(["run", "--model", str(model_file), str(images), str(out)]) == EXIT_SKIPPED
    err = capsys.readouterr().err
    assert f"skipped {images / 'gone.png'}: it is a symbolic link to {tmp_path / 'deleted.png'}, which does not" in err
    for name in ("loop_a.png", "loop_b.png"):
        assert f"skipped {images / name}: it is a symbolic link loop" in err
    assert "Restored 4 of 7" in err and len(list(out.iterdir())) == 4


KILLED_WHILE_SAVING = """
import os, signal, sys, time
from PIL import Image
from restore.cli import main

save = Image.Image.save
def save_then_get_killed(self, fp, *args, **kwargs):
    save(self, fp, *args, **kwargs)  # the image is in the temporary file, not yet renamed
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
Image.Image.save = save_then_get_killed
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_saving_leaves_no_file_behind(model_file, images, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_SAVING, "run", "--model", str(model_file),
                           str(images / "rgb.png"), str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 128 + 15, proc.stderr[-2000:]  # SIGTERM's status, as if killed
    assert list(out.iterdir()) == []  # neither rgb.png nor a hidden temporary file


def test_a_temporary_file_left_by_a_killed_run_is_removed_by_the_next(model_file, images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".rgb.png.1f2e3d4c.tmp").write_bytes(b"half an image")  # SIGKILL cannot be caught: left behind
    assert main(["run", "--model", str(model_file), str(images / "rgb.png"), str(out)]) == EXIT_OK
    assert [p.name for p in out.iterdir()] == ["rgb.png"]
