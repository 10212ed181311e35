"""Shared fixtures: Hydra composition of the project's configs, tiny in-memory data."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import signal
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
# one thread: tiny tensors gain nothing from two, and two threads stall badly on a shared CPU
torch.set_num_threads(1)


def _return_freed_memory_to_the_os() -> None:
    """glibc keeps the freed blocks of large tensors in its heap (its mmap threshold rises to 32 MB as they are
    freed), so one test process's memory ratchets up with every training run it makes. A fixed 1 MB threshold
    maps each large block on its own and unmaps it when freed (no slower here: tests/lightning ran in the same
    time). A no-op without glibc."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 26)  # M_TRIM_THRESHOLD: trim the heap's top above 64 MB free


_return_freed_memory_to_the_os()


def compose_config(config_name: str, overrides: list[str], output_dir: Path):
    """Compose configs/<config_name>.yaml as the entry points do, with a set run folder."""
    from restore.utils.config import compose_config as compose_with_run_folder

    return compose_with_run_folder(config_name, overrides, output_dir, configs_dir=ROOT / "configs")


@pytest.fixture(autouse=True)
def _hydra_config_of_no_earlier_test():
    """Composing a config with its run folder sets Hydra's global HydraConfig; clear it after each test, so a
    later one does not see an earlier one's command line (e.g. in the divergence guard's advice)."""
    yield
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None


@pytest.fixture(scope="session")
def load_root_script():
    """``load_root_script("train")``: ``train.py`` / ``eval.py`` at the repository root, imported as a module of
    its own (``<name>_script``)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def compose(tmp_path):
    def _compose(config_name: str = "train", overrides: list[str] | None = None):
        return compose_config(config_name, overrides or [], tmp_path / "run")

    return _compose


class PairDataset(Dataset):
    """Fixed noisy/clean pairs following the sample contract of restore.data."""

    def __init__(self, n: int = 8, size: int = 32, channels: int = 3, sigma: float = 0.1, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        base = torch.rand(n, channels, size // 4, size // 4, generator=g)
        self.gt = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
        self.lq = self.gt + sigma * torch.randn(self.gt.shape, generator=g)

    def __len__(self) -> int:
        return len(self.gt)

    def __getitem__(self, i: int) -> dict:
        return {"lq": self.lq[i], "gt": self.gt[i], "task": 0, "name": f"img{i:03d}"}


@pytest.fixture
def pair_dataset():
    return PairDataset


@pytest.fixture
def torch_hub_dir(tmp_path):
    """An empty torch hub cache for the test (restored afterwards)."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


@pytest.fixture
def lpips_weights(torch_hub_dir):
    """Stand-in ImageNet AlexNet weights (seeded random) where LPIPS looks for them: the real LPIPS code
    path runs without a download."""
    from torchvision.models import AlexNet_Weights, alexnet

    torch.manual_seed(0)
    path = torch_hub_dir / "checkpoints" / Path(AlexNet_Weights.DEFAULT.url).name
    path.parent.mkdir(parents=True)
    torch.save(alexnet().state_dict(), path)
    return path


@pytest.fixture
def offline_loggers(monkeypatch, tmp_path):
    """MLflow and W&B (skipped when not installed) that send nothing anywhere, their caches in the test's folder."""
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    for name, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
                        "WANDB_CACHE_DIR": tmp_path / "wandb_cache", "WANDB_CONFIG_DIR": tmp_path / "wandb_config",
                        "WANDB_DATA_DIR": tmp_path / "wandb_data"}.items():
        monkeypatch.setenv(name, str(value))


@pytest.fixture
def sigint_restored():
    """For tests that raise KeyboardInterrupt inside ``fit``: Lightning then ignores SIGINT; restored after."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def flip_weight_bits(path: Path, count: int = 4) -> None:
    """Damage a weights file in place as a bad disk or transfer would: flip the lowest mantissa bit of
    ``count`` float32 values spread over its largest float32 tensor (a safetensors file) or storage (a
    torch zip ``.ckpt``). The file still parses and the weights stay finite."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    if path.suffix == ".safetensors":
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n])
        spans = [v["data_offsets"] for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32"]
        start, end = (8 + n + offset for offset in max(spans, key=lambda s: s[1] - s[0]))
    else:
        with zipfile.ZipFile(path) as archive:
            entry = max((e for e in archive.infolist() if "/data/" in e.filename), key=lambda e: e.file_size)
        name_len, extra_len = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])
        start = entry.header_offset + 30 + name_len + extra_len
        end = start + entry.file_size
    floats = (end - start) // 4
    for k in range(count):
        data[start + 4 * (floats * (k + 1) // (count + 1))] ^= 1  # little-endian: the mantissa's lowest byte
    path.write_bytes(data)


@pytest.fixture
def damage_weights():
    """``damage_weights(path)``: :func:`flip_weight_bits`."""
    return flip_weight_bits
