"""ONNX and TorchScript exports of every network config: deploy form, dynamic batch/height/width."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import restore
from restore.export import ExportMismatchError, UnsupportedExportError, export_onnx, export_torchscript
from restore.utils.files import NoSpaceError, WriteError

ROOT = Path(__file__).resolve().parents[1]
NET_CONFIGS = sorted((ROOT / "configs" / "model" / "net").glob("*.yaml"))
# the base configs take ~10× longer to trace and run: left to `pytest -m slow`
CONFIG_PARAMS = [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if "base" in p.stem else [])
                 for p in NET_CONFIGS]
# two sizes off the networks' size multiple (8 or 16), batch 2: height and width differ from the export's 64×64
SIZES = [(2, 24, 41), (1, 37, 30)]
TOLERANCE = 1e-4


def build(config_path: Path) -> nn.Module:
    """The config's network, seeded, with non-trivial BatchNorm statistics (so re-parameterisation matters)."""
    torch.manual_seed(0)
    net = restore.create_model(Path(config_path).stem)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def inputs(channels: int):
    g = torch.Generator().manual_seed(1)
    return [torch.rand(b, channels, h, w, generator=g) for b, h, w in SIZES]


@pytest.mark.parametrize("config_path", CONFIG_PARAMS)
def test_onnx_export_matches_pytorch_at_other_sizes(config_path, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = build(config_path)
    keys = list(net.state_dict())
    uses_fft = "fourier" in str(net.net_config) or "ResFFT" in str(net.net_config)
    if uses_fft:  # torch's TorchScript-based ONNX exporter has no rfft2/irfft2 (TorchScript export works)
        with pytest.raises(UnsupportedExportError, match=r"torch\.fft\.rfft2.*TorchScript instead \(net\.pt"):
            export_onnx(net, tmp_path / "net.onnx", check=False)
        assert not list(tmp_path.iterdir())
        return
    path = export_onnx(net, tmp_path / "net.onnx", check=False)  # checked here, independently
    assert list(net.state_dict()) == keys, "export_onnx changed the caller's network"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == "batch" and dims[2:] == ["height", "width"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for x in inputs(net.in_channels):
        with torch.no_grad():
            expected = net(x).numpy()  # the training form: the export is its re-parameterised twin
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*is deprecated:FutureWarning")
@pytest.mark.parametrize("config_path", CONFIG_PARAMS)
def test_torchscript_export_matches_pytorch_at_other_sizes(config_path, tmp_path):
    net = build(config_path)
    path = export_torchscript(net, tmp_path / "net.pt", check=False)
    loaded = torch.jit.load(str(path))
    for x in inputs(net.in_channels):
        with torch.no_grad():
            expected, got = net(x), loaded(x)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=0)


class ShapeBranchNet(nn.Module):
    """Takes a Python branch on the input's width: tracing bakes in the branch of the example size."""

    def __init__(self) -> None:
        super().__init__()
        self.in_channels = 3
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) if x.shape[-1] % 2 == 0 else x


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_check_catches_a_baked_in_branch(fmt, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    with pytest.warns(torch.jit.TracerWarning), pytest.raises(ExportMismatchError, match="baked in|differs"):
        if fmt == "onnx":
            export_onnx(ShapeBranchNet(), tmp_path / "bad.onnx")
        else:
            export_torchscript(ShapeBranchNet(), tmp_path / "bad.pt")


def test_export_refuses_an_example_smaller_than_the_size_multiple(tmp_path):
    net = build(ROOT / "configs" / "model" / "net" / "nafnet_tiny.yaml")
    with pytest.raises(ValueError, match="size_multiple 8"):
        export_torchscript(net, tmp_path / "net.pt", example_size=4)


def test_fft_network_to_onnx_is_refused_before_tracing(tmp_path, capfd):
    """The exporter's own failure prints the whole traced graph (1,397 lines for deeprft_tiny) to the process's
    stderr before raising: the network's torch.fft calls are found first, and nothing else is printed."""
    pytest.importorskip("onnx")
    net = restore.create_model("deeprft_tiny", width=8).eval()
    with pytest.raises(UnsupportedExportError, match=r"calls torch\.fft\.irfft2, torch\.fft\.rfft2 \(torch\.fft\)"):
        export_onnx(net, tmp_path / "net.onnx")
    out, err = capfd.readouterr()
    assert "graph" not in err and len((out + err).splitlines()) < 5


@pytest.mark.parametrize("opset", [6, 21, 99])
def test_onnx_opset_outside_the_exporters_range_is_refused(opset, tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(UnsupportedExportError, match=f"opset {opset}: .* 7 to 20"):
        export_onnx(build(ROOT / "configs" / "model" / "net" / "nafnet_tiny.yaml"), tmp_path / "net.onnx", opset=opset)


def test_export_to_a_folder_or_under_a_file_names_it(tmp_path):
    net = build(ROOT / "configs" / "model" / "net" / "nafnet_tiny.yaml")
    (tmp_path / "net.pt").mkdir()
    with pytest.raises(WriteError, match="net.pt is a folder"):
        export_torchscript(net, tmp_path / "net.pt")
    (tmp_path / "notes").write_text("a file")
    with pytest.raises(WriteError, match="notes is a file, not a folder"):
        export_torchscript(net, tmp_path / "notes" / "net.pt")


def test_full_disk_leaves_no_file_and_names_the_folder(tmp_path, monkeypatch):
    """A full disk can surface only when the data is flushed (delayed allocation): fsync fails."""
    net = build(ROOT / "configs" / "model" / "net" / "nafnet_tiny.yaml")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(NoSpaceError, match=f"no space left on {tmp_path} \\(writing net.pt\\)"):
        export_torchscript(net, tmp_path / "net.pt")
    assert not list(tmp_path.iterdir())  # neither a truncated net.pt nor a temporary file
