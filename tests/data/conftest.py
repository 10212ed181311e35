"""Tiny on-disk datasets in each supported layout, written with PIL into temporary folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def write_png(path: Path, size: tuple[int, int] = (24, 20), seed: int = 0, gray: bool = False) -> Path:
    """A smooth random image of ``size`` = (width, height), so blur/crop tests have structure
    (any extension PIL writes: ``.jpg`` gives a JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.random((max(2, h // 4), max(2, w // 4), 1 if gray else 3))
    img = Image.fromarray((coarse * 255).astype(np.uint8).squeeze()).resize((w, h), Image.BILINEAR)
    img.save(path)
    return path


@pytest.fixture
def make_png():
    return write_png


@pytest.fixture
def paired_dirs(tmp_path) -> tuple[Path, Path]:
    """lq/ and gt/ with three matching stems."""
    for i in range(3):
        write_png(tmp_path / "lq" / f"{i}.png", seed=i)
        write_png(tmp_path / "gt" / f"{i}.png", seed=10 + i)
    return tmp_path / "lq", tmp_path / "gt"


def build_layouts(root: Path) -> Path:
    """Every layout the data configs expect, under ``root`` (a stand-in for paths.data_dir)."""
    for split in ("train", "test"):
        for seq in ("GOPR0001_00", "GOPR0002_00"):
            for k in range(2):
                write_png(root / "GoPro_Large" / split / seq / "blur" / f"{k:06d}.png", (40, 36), seed=k)
                write_png(root / "GoPro_Large" / split / seq / "sharp" / f"{k:06d}.png", (40, 36), seed=k + 5)
    for k in range(1, 3):  # Rain100 in the JORDER naming and in the inputcrop/cleancrop naming
        write_png(root / "RainTrainL" / "rainy" / f"rain-{k}.png", seed=k)
        write_png(root / "RainTrainL" / "norain" / f"norain-{k}.png", seed=k + 5)
        write_png(root / "Rain100L" / "inputcrop" / f"{k}.png", seed=k)
        write_png(root / "Rain100L" / "cleancrop" / f"{k}.png", seed=k + 5)
    for sots in ("RESIDE/OTS", "SOTS/outdoor"):
        for k in range(1, 3):
            write_png(root / sots / "clear" / f"{k:04d}.png", seed=k)
            for beta in ("0.8_0.2", "0.9_0.1"):
                write_png(root / sots / "hazy" / f"{k:04d}_{beta}.png", seed=k + 7)
    for k in range(3):
        write_png(root / "BSD400" / f"test_{k:03d}.png", (32, 32), seed=k)
        write_png(root / "CBSD68" / f"{k}.png", (32, 28), seed=k + 3)
    return root


def _rain100_scenes() -> list[str]:
    """The CBSD432 names configs/data/allinone/cbsd432_rain100style.yaml excludes (Rain100L/H clean scenes)."""
    config = OmegaConf.load(Path(__file__).resolve().parents[2] / "configs/data/allinone/cbsd432_rain100style.yaml")
    return list(config.train[0].exclude)


def build_shared_layouts(root: Path) -> Path:
    """The layouts of the reference sets in ../shared/data (see its README), tiny, under ``root``
    (a stand-in for ``<paths.shared_dir>/data``)."""
    for k in (1, 2, 10):  # PReNet's Rain100L: clean images at the top level
        write_png(root / "derain" / "Rain100L" / "rainy" / f"rain-{k:03d}.png", seed=k)
        write_png(root / "derain" / "Rain100L" / f"norain-{k:03d}.png", seed=k + 5)
        write_png(root / "derain" / "Rain100H" / "inputcrop" / f"{k}.png", seed=k)
        write_png(root / "derain" / "Rain100H" / "cleancrop" / f"{k}.png", seed=k + 5)
        write_png(root / "lowlight" / "LOL_eval15" / "low" / f"{k}.png", seed=k)
        write_png(root / "lowlight" / "LOL_eval15" / "high" / f"{k}.png", seed=k + 5)
        write_png(root / "deblur" / "GoPro_avgframes" / "blur" / f"GOPR0374_11_00_st_frame-{k}_n_avg-8.png", seed=k)
        write_png(root / "deblur" / "GoPro_avgframes" / "gt" / f"GOPR0374_11_00_st_frame-{k}_n_avg-8_gt.png",
                  seed=k + 5)
    for image_id, k in ((1400, 9), (1402, 9), (1403, 8)):
        write_png(root / "dehaze" / "SOTS_samples" / "indoor" / "hazy" / f"{image_id}_{k}.png", seed=k)
        write_png(root / "dehaze" / "SOTS_samples" / "indoor" / "gt" / f"{image_id}.png", seed=k + 1)
    for image_id, beta in (("0001", "0.8_0.2"), ("0002", "0.8_0.08")):
        write_png(root / "dehaze" / "SOTS_samples" / "outdoor" / "input" / f"{image_id}_{beta}.jpg", seed=3)
        write_png(root / "dehaze" / "SOTS_samples" / "outdoor" / "target" / f"{image_id}.png", seed=4)
    # CBSD432 (training photographs; dev and all-in-one val sets read it): a few images, and the scenes the
    # Rain100-style recipe excludes by name (an exclusion that names no image of the folder is an error)
    for k, name in enumerate(["1", "2", "3", *_rain100_scenes()]):
        write_png(root / "train" / "CBSD432" / f"{name}.png", (32, 28), seed=k)
    for k in range(3):
        write_png(root / "denoise" / "CBSD68" / f"{k}.png", (32, 28), seed=k)
        write_png(root / "denoise" / "BSD68" / f"test{k:03d}.png", (32, 28), seed=k, gray=True)
        write_png(root / "denoise" / "Set12" / f"{k:02d}.png", (32, 32), seed=k, gray=True)
    return root


@pytest.fixture
def data_root(tmp_path) -> Path:
    return build_layouts(tmp_path / "data")


@pytest.fixture
def shared_root(tmp_path) -> Path:
    """A stand-in for ``paths.shared_dir``: its ``data/`` holds every reference set's layout, tiny."""
    build_shared_layouts(tmp_path / "shared" / "data")
    return tmp_path / "shared"


def needs_shared(*parts: str):
    """Skip unless ``../shared/data/<parts>`` exists."""
    folder = SHARED_DATA.joinpath(*parts)
    return pytest.mark.skipif(not folder.is_dir(), reason=f"{folder} not present (../shared/data)")
