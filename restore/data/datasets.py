"""Restoration datasets: paired folders (GoPro, Rain100, SOTS, any lq/gt pair of folders), clean
images with on-the-fly degradations (BSD400, WED, DIV2K, CBSD68 …) and the photographs
scikit-image ships (the default, offline data).

Every dataset returns the sample contract the Lightning module relies on::

    {"lq": float32 (C, H, W), "gt": float32 (C, H, W) in [0, 1], "task": int, "name": str}

``lq`` is in [0, 1] except for unclipped AWGN. ``task`` is 0 (the dataset's single task,
``dataset.task_name``); :class:`restore.data.RestorationDataModule` renumbers it into its
``task_names`` when it mixes datasets. ``name`` is the file stem (``<sequence>_<stem>`` where a
layout has sub-folders, so saved images do not collide).

Randomness: each sample draws everything random (crop position, flip, degradation parameters and
noise) from one ``torch.Generator``. With ``seed`` set it is seeded from (seed, index), so every
pass over a validation set sees identical inputs, in any worker; with ``seed=None`` (training) it
is seeded from the global torch RNG, which the DataLoader seeds differently in each worker.

Layouts and errors: a missing root raises ``FileNotFoundError`` naming the path and the layout
expected; an empty folder, unmatched lq/gt stems or count, and lq/gt of different sizes raise
``ValueError`` naming the files; an unreadable image raises ``OSError`` naming the file.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from torch.utils.data import Dataset

from restore.data.degradations import Degradation, apply_degradations, task_name_of
from restore.data.transforms import center_crop, random_crop_pair, random_flip_rot_pair
from restore.utils.image import IMAGE_EXTENSIONS, read_image

__all__ = [
    "RestorationDataset",
    "PairedFolderDataset",
    "GoProDataset",
    "Rain100Dataset",
    "SOTSDataset",
    "CleanFolderDataset",
    "EmbeddedImages",
    "list_images",
    "pair_by_stem",
    "EMBEDDED_TRAIN",
    "EMBEDDED_VAL",
]


# -- files -------------------------------------------------------------------------------------
def _natural_key(path: Path) -> list:
    """Sort ``2.png`` before ``10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def list_images(folder: str | Path, recursive: bool = False, what: str = "image folder") -> list[Path]:
    """Image files (``IMAGE_EXTENSIONS``) in ``folder``, naturally sorted.

    Raises:
        FileNotFoundError: ``folder`` does not exist (the message names it as ``what``).
        ValueError: ``folder`` holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} not found: {folder}")
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted((p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
    if not files:
        raise ValueError(f"{what} {folder} contains no images ({', '.join(IMAGE_EXTENSIONS)})"
                         f"{' in any sub-folder' if recursive else ''}")
    return files


def _stem_index(files: Sequence[Path], folder: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in files:
        if path.stem in index:
            raise ValueError(f"two images with stem {path.stem!r} in {folder}: {index[path.stem].name} and {path.name}")
        index[path.stem] = path
    return index


def pair_by_stem(
    lq_dir: Path,
    gt_dir: Path,
    gt_stems: Callable[[str], Sequence[str]] = lambda stem: (stem,),
    one_to_one: bool = True,
) -> list[tuple[Path, Path]]:
    """Pair every lq image with the gt image whose stem is the first of ``gt_stems(lq_stem)`` found.

    Args:
        one_to_one: also require every gt image to be used (same counts); off where several lq
            images share one gt (SOTS: ``hazy/1400_1..10`` → ``clear/1400``).

    Raises:
        ValueError: naming the first lq image without gt (or, one-to-one, the first unused gt).
    """
    lq_files = list_images(lq_dir, what="lq folder")
    gt_index = _stem_index(list_images(gt_dir, what="gt folder"), gt_dir)
    pairs, used = [], set()
    for lq in lq_files:
        candidates = list(dict.fromkeys(gt_stems(lq.stem)))
        gt = next((gt_index[s] for s in candidates if s in gt_index), None)
        if gt is None:
            raise ValueError(f"lq/gt mismatch: {len(lq_files)} lq images in {lq_dir}, {len(gt_index)} gt images in "
                             f"{gt_dir}; first unmatched: lq {lq} has no gt image with stem "
                             f"{' or '.join(repr(s) for s in candidates)} in {gt_dir}")
        pairs.append((lq, gt))
        used.add(gt.stem)
    if one_to_one and len(used) != len(gt_index):
        unused = next(p for s, p in gt_index.items() if s not in used)
        raise ValueError(f"lq/gt mismatch: {len(lq_files)} lq images in {lq_dir}, {len(gt_index)} gt images in "
                         f"{gt_dir}; first unmatched: gt {unused} has no lq image")
    return pairs


def _regex_stem_map(stem_map: Sequence[str] | None) -> Callable[[str], Sequence[str]]:
    """``[pattern, replacement]`` → lq stem ↦ gt stem (``re.fullmatch`` + ``expand``)."""
    if stem_map is None:
        return lambda stem: (stem,)
    if isinstance(stem_map, str) or len(stem_map) != 2:
        raise ValueError(f"stem_map must be [pattern, replacement], e.g. ['(.*)_\\d+', '\\1'], got {stem_map!r}")
    pattern, replacement = re.compile(stem_map[0]), str(stem_map[1])

    def gt_stems(stem: str) -> Sequence[str]:
        match = pattern.fullmatch(stem)
        return (match.expand(replacement),) if match else (stem,)

    return gt_stems


def _find_subdir(root: Path, pattern: str) -> Path | None:
    """First sub-folder of ``root`` whose name fully matches ``pattern`` (case-insensitive)."""
    regex = re.compile(pattern, re.IGNORECASE)
    return next((d for d in sorted(root.iterdir()) if d.is_dir() and regex.fullmatch(d.name)), None)


# -- base --------------------------------------------------------------------------------------
class RestorationDataset(Dataset):
    """Base class: sampling, crops, augmentation, degradations and the sample contract.

    Subclasses implement :attr:`num_images` and :meth:`load`.

    Args:
        degradations: applied in order to lq (to gt for clean-only datasets) after cropping.
        task: task name; ``None`` = the degradations' task names joined by ``+``, or the
            dataset's own (``"deblur"`` for GoPro, …).
        channels: 3 (RGB) or 1 (grayscale).
        patch_size: random crop side for training; ``None`` = full images.
        augment: random flips and 90° rotations (training).
        crop_size: fixed central crop side (validation on a budget); ``None`` = full images.
        seed: ``None`` draws fresh randomness (training); an int makes sample ``i`` depend only
            on (seed, i) (validation/test).
        length: samples per epoch (indices wrap over the images); ``None`` = one per image.
    """

    default_task = "restore"

    def __init__(
        self,
        degradations: Sequence[Degradation] | None = None,
        task: str | None = None,
        channels: int = 3,
        patch_size: int | None = None,
        augment: bool = False,
        crop_size: int | None = None,
        seed: int | None = None,
        length: int | None = None,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
        for name, value in (("patch_size", patch_size), ("crop_size", crop_size), ("length", length)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        self.degradations = list(degradations or [])
        self.task_name = task or (task_name_of(self.degradations) if self.degradations else self.default_task)
        self.channels = channels
        self.patch_size = patch_size
        self.augment = augment
        self.crop_size = crop_size
        self.seed = seed
        self.length = length

    # -- to implement --
    @property
    def num_images(self) -> int:
        raise NotImplementedError

    def load(self, i: int) -> tuple[torch.Tensor | None, torch.Tensor, str]:
        """Image ``i`` as (lq or None for clean-only data, gt, name), each (C, H, W) in [0, 1]."""
        raise NotImplementedError

    # -- shared --
    @property
    def is_deterministic(self) -> bool:
        """Whether every pass yields identical samples (required of validation/test sets)."""
        return self.patch_size is None and not self.augment and (self.seed is not None or not self.degradations)

    def __len__(self) -> int:
        return self.length if self.length is not None else self.num_images

    def generator_for(self, index: int) -> torch.Generator:
        """The sample's source of randomness (see the module docstring)."""
        if self.seed is None:
            # the global RNG is seeded per worker by the DataLoader (and by seed_everything(workers=True))
            seed = int(torch.randint(0, 2**62, ()))
        else:
            seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1, np.uint64)[0])
        return torch.Generator().manual_seed(seed)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {len(self)}")
        generator = self.generator_for(index)
        lq, gt, name = self.load(index % self.num_images)
        lq = gt if lq is None else lq  # clean-only data: lq is made from gt by the degradations
        if self.crop_size is not None:
            lq, gt = center_crop(lq, self.crop_size), center_crop(gt, self.crop_size)
        if self.patch_size is not None:
            lq, gt = random_crop_pair(lq, gt, self.patch_size, generator)
        if self.augment:
            lq, gt = random_flip_rot_pair(lq, gt, generator)
        if self.degradations:
            lq = apply_degradations(lq, self.degradations, generator)
        # clone: gt may be a view of a cached image, which a consumer must not be able to modify
        return {"lq": lq.float().contiguous(), "gt": gt.float().clone(memory_format=torch.contiguous_format),
                "task": 0, "name": name}

    def _read(self, path: Path) -> torch.Tensor:
        return read_image(path, self.channels)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(images={self.num_images}, length={len(self)}, task={self.task_name!r}, "
                f"channels={self.channels}, patch_size={self.patch_size}, crop_size={self.crop_size}, "
                f"seed={self.seed}, degradations={self.degradations})")


# -- paired folders ----------------------------------------------------------------------------
class _PairedDataset(RestorationDataset):
    """Pairs of files, loaded lazily (or all at construction with ``cache=True``)."""

    def __init__(self, pairs: list[tuple[Path, Path]], names: list[str] | None = None, cache: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.pairs = pairs
        self.names = names or [lq.stem for lq, _ in pairs]
        # loaded in the main process, before the DataLoader forks: workers share the memory
        self._cache = [self._load_pair(i) for i in range(len(pairs))] if cache else None

    @property
    def num_images(self) -> int:
        return len(self.pairs)

    def _load_pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        lq_path, gt_path = self.pairs[i]
        lq, gt = self._read(lq_path), self._read(gt_path)
        if lq.shape[-2:] != gt.shape[-2:]:
            raise ValueError(f"lq/gt sizes differ: lq {lq_path} is {lq.shape[-1]}×{lq.shape[-2]}, "
                             f"gt {gt_path} is {gt.shape[-1]}×{gt.shape[-2]} (width×height)")
        return lq, gt

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        lq, gt = self._cache[i] if self._cache is not None else self._load_pair(i)
        return lq, gt, self.names[i]


class PairedFolderDataset(_PairedDataset):
    """Degraded images in ``lq_dir`` matched by file stem to clean images in ``gt_dir``.

    Args:
        lq_dir: folder of degraded images.
        gt_dir: folder of ground-truth images.
        stem_map: ``[pattern, replacement]`` turning an lq stem into its gt stem (``re.fullmatch``
            then ``Match.expand``); stems the pattern does not match are used as they are.
            E.g. ``['(.*)_\\d+', '\\1']`` (SOTS ``1400_1`` → ``1400``), ``['(.*)', '\\1_gt']``
            (``S`` → ``S_gt``). With a map, several lq images may share one gt.
        cache: decode every pair once at construction (small sets; surfaces bad files early).
        task: task name (default ``"restore"``, or the degradations').
        degradations, channels, patch_size, augment, crop_size, seed, length: see
            :class:`RestorationDataset` (degradations are added on top of lq, e.g. extra noise).
    """

    def __init__(
        self,
        lq_dir: str | Path,
        gt_dir: str | Path,
        stem_map: Sequence[str] | None = None,
        cache: bool = False,
        task: str | None = None,
        degradations: Sequence[Degradation] | None = None,
        channels: int = 3,
        patch_size: int | None = None,
        augment: bool = False,
        crop_size: int | None = None,
        seed: int | None = None,
        length: int | None = None,
    ) -> None:
        lq_dir, gt_dir = Path(lq_dir), Path(gt_dir)
        for what, folder in (("lq", lq_dir), ("gt", gt_dir)):
            if not folder.is_dir():
                raise FileNotFoundError(f"{what} folder {folder} not found; expected degraded images in "
                                        f"{lq_dir} matched by file stem to clean images in {gt_dir}")
        pairs = pair_by_stem(lq_dir, gt_dir, _regex_stem_map(stem_map), one_to_one=stem_map is None)
        self.lq_dir, self.gt_dir = lq_dir, gt_dir
        super().__init__(pairs, cache=cache, task=task, degradations=degradations, channels=channels,
                         patch_size=patch_size, augment=augment, crop_size=crop_size, seed=seed, length=length)


class GoProDataset(_PairedDataset):
    """GoPro deblurring (Nah et al., CVPR 2017): ``<root>/{train,test}/<sequence>/{blur,sharp}/*.png``.

    Args:
        root: the ``GoPro_Large`` folder (a folder containing ``GoPro_Large/`` also works).
        split: ``"train"`` or ``"test"``.
        blur_dir: ``"blur"`` or ``"blur_gamma"`` (the gamma-corrected variant).
        Other arguments: see :class:`PairedFolderDataset`. Names are ``<sequence>_<frame stem>``.
    """

    default_task = "deblur"
    LAYOUT = "GoPro_Large/{train,test}/<sequence>/{blur,sharp}/*.png"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        blur_dir: str = "blur",
        cache: bool = False,
        task: str | None = None,
        degradations: Sequence[Degradation] | None = None,
        channels: int = 3,
        patch_size: int | None = None,
        augment: bool = False,
        crop_size: int | None = None,
        seed: int | None = None,
        length: int | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"GoPro root {root} not found; expected {self.LAYOUT} (see data/README.md)")
        if not (root / split).is_dir() and (root / "GoPro_Large" / split).is_dir():
            root = root / "GoPro_Large"
        split_dir = root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"GoPro split folder {split_dir} not found; expected {self.LAYOUT}")
        sequences = sorted(d for d in split_dir.iterdir() if d.is_dir())
        if not sequences:
            raise ValueError(f"GoPro split folder {split_dir} has no <sequence> folders; expected {self.LAYOUT}")
        pairs, names = [], []
        for seq in sequences:
            for folder in (seq / blur_dir, seq / "sharp"):
                if not folder.is_dir():
                    raise FileNotFoundError(f"GoPro sequence folder {folder} not found; expected {self.LAYOUT}")
            seq_pairs = pair_by_stem(seq / blur_dir, seq / "sharp")
            pairs += seq_pairs
            names += [f"{seq.name}_{lq.stem}" for lq, _ in seq_pairs]
        self.root, self.split = root, split
        super().__init__(pairs, names, cache=cache, task=task, degradations=degradations, channels=channels,
                         patch_size=patch_size, augment=augment, crop_size=crop_size, seed=seed, length=length)


class Rain100Dataset(_PairedDataset):
    """Rain100L / Rain100H deraining (Yang et al., CVPR 2017), in either distributed layout.

    ``<root>/{rainy | rain | input | inputcrop}/`` ↔ ``<root>/{norain | clean | cleancrop | target | gt}/``,
    with the same stems (``inputcrop/N.png`` ↔ ``cleancrop/N.png``) or JORDER/PReNet's
    ``rain-N`` ↔ ``norain-N``.

    Args:
        root: the ``Rain100L`` or ``Rain100H`` folder.
        lq_dir, gt_dir: sub-folder names, when auto-detection is not wanted.
        Other arguments: see :class:`PairedFolderDataset`.
    """

    default_task = "derain"
    LQ_DIRS, GT_DIRS = r"rainy|rain|input.*", r"norain|clean.*|target|gt|groundtruth"
    LAYOUT = ("<root>/{rainy,input,inputcrop}/<name>.png ↔ <root>/{norain,clean,cleancrop,target}/<name>.png "
              "(or rain-N.png ↔ norain-N.png)")

    def __init__(
        self,
        root: str | Path,
        lq_dir: str | None = None,
        gt_dir: str | None = None,
        cache: bool = False,
        task: str | None = None,
        degradations: Sequence[Degradation] | None = None,
        channels: int = 3,
        patch_size: int | None = None,
        augment: bool = False,
        crop_size: int | None = None,
        seed: int | None = None,
        length: int | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"Rain100 root {root} not found; expected {self.LAYOUT} (see data/README.md)")
        lq = root / lq_dir if lq_dir else _find_subdir(root, self.LQ_DIRS)
        gt = root / gt_dir if gt_dir else _find_subdir(root, self.GT_DIRS)
        if lq is None or gt is None or not lq.is_dir() or not gt.is_dir():
            found = sorted(d.name for d in root.iterdir() if d.is_dir())
            raise FileNotFoundError(f"Rain100 root {root}: no {'rainy' if lq is None or not lq.is_dir() else 'clean'} "
                                    f"image folder; expected {self.LAYOUT}; found sub-folders {found}")

        def gt_stems(stem: str) -> Sequence[str]:
            return (stem, re.sub(r"^rain", "norain", stem), "no" + stem)

        pairs = pair_by_stem(lq, gt, gt_stems)
        self.root = root
        super().__init__(pairs, cache=cache, task=task, degradations=degradations, channels=channels,
                         patch_size=patch_size, augment=augment, crop_size=crop_size, seed=seed, length=length)


class SOTSDataset(_PairedDataset):
    """RESIDE SOTS dehazing (Li et al., TIP 2019): ``<root>/hazy/<id>_<k>.png`` ↔ ``<root>/{clear,gt}/<id>.png``.

    Several hazy images (airlight/β variants ``_k``, or outdoor ``<id>_<A>_<β>``) share one clear
    image; the gt stem is the hazy stem up to its first ``_``.

    Args:
        root: the ``SOTS/indoor`` or ``SOTS/outdoor`` folder.
        Other arguments: see :class:`PairedFolderDataset`.
    """

    default_task = "dehaze"
    LAYOUT = "<root>/hazy/<id>_<k>.png ↔ <root>/{clear,gt}/<id>.png"

    def __init__(
        self,
        root: str | Path,
        cache: bool = False,
        task: str | None = None,
        degradations: Sequence[Degradation] | None = None,
        channels: int = 3,
        patch_size: int | None = None,
        augment: bool = False,
        crop_size: int | None = None,
        seed: int | None = None,
        length: int | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"SOTS root {root} not found; expected {self.LAYOUT} (see data/README.md)")
        hazy, clear = root / "hazy", _find_subdir(root, r"clear|gt")
        if not hazy.is_dir() or clear is None:
            raise FileNotFoundError(f"SOTS root {root}: needs hazy/ and clear/ (or gt/) sub-folders; "
                                    f"expected {self.LAYOUT}")
        pairs = pair_by_stem(hazy, clear, lambda stem: (stem.split("_", 1)[0], stem), one_to_one=False)
        self.root = root
        super().__init__(pairs, cache=cache, task=task, degradations=degradations, channels=channels,
                         patch_size=patch_size, augment=augment, crop_size=crop_size, seed=seed, length=length)


# -- clean images + synthetic degradations -----------------------------------------------------
class CleanFolderDataset(RestorationDataset):
    """A folder of clean images; lq is synthesised on the fly (BSD400, WED, DIV2K, CBSD68 …).

    Args:
        root: folder of clean images.
        degradations: at least one, applied in order to each (cropped) clean image.
        recursive: also take images in sub-folders (names become ``<subdir>_<stem>``).
        cache: decode every image once at construction (small sets such as BSD400 / CBSD68).
        Other arguments: see :class:`RestorationDataset`.
    """

    def __init__(
        self,
        root: str | Path,
        degradations: Sequence[Degradation],
        recursive: bool = False,
        cache: bool = False,
        task: str | None = None,
        channels: int = 3,
        patch_size: int | None = None,
        augment: bool = False,
        crop_size: int | None = None,
        seed: int | None = None,
        length: int | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"clean-image folder {root} not found; expected <root>/*.png (or .jpg, .bmp …) "
                                    "clean images, e.g. BSD400 / WED / DIV2K_train_HR (see data/README.md)")
        if not degradations:
            raise ValueError(f"CleanFolderDataset({root}) needs at least one degradation to make lq images from")
        super().__init__(degradations=degradations, task=task, channels=channels, patch_size=patch_size,
                         augment=augment, crop_size=crop_size, seed=seed, length=length)
        self.root = root
        self.files = list_images(root, recursive, what="clean-image folder")
        self.names = ["_".join(p.relative_to(root).with_suffix("").parts) for p in self.files]
        self._cache = [self._read(p) for p in self.files] if cache else None

    @property
    def num_images(self) -> int:
        return len(self.files)

    def load(self, i: int) -> tuple[None, torch.Tensor, str]:
        gt = self._cache[i] if self._cache is not None else self._read(self.files[i])
        return None, gt, self.names[i]


# -- embedded photographs ----------------------------------------------------------------------
EMBEDDED_VAL = ("chelsea", "camera")
EMBEDDED_TRAIN = ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                  "stereo_motorcycle_left", "stereo_motorcycle_right",
                  "moon", "coins", "clock", "brick", "grass", "gravel", "page", "text")


@functools.lru_cache(maxsize=None)
def _embedded_image(name: str, channels: int, max_side: int | None) -> torch.Tensor:
    """One scikit-image photograph as (channels, H, W) float32 in [0, 1], long side ≤ ``max_side``.

    Cached per process: the train and val datasets, and forked workers, share one copy.
    """
    from skimage import data

    if name.startswith("stereo_motorcycle_"):
        left, right, _disparity = data.stereo_motorcycle()
        array = left if name.endswith("left") else right
    else:
        array = getattr(data, name)()
    image = torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
    image = image.permute(2, 0, 1) if image.dim() == 3 else image[None]
    if image.shape[0] == 4:  # RGBA
        image = image[:3]
    if channels == 3 and image.shape[0] == 1:
        image = image.repeat(3, 1, 1)
    elif channels == 1 and image.shape[0] == 3:
        image = rgb_to_grayscale(image)  # ITU-R 601 luma, as PIL's convert("L") in read_image
    if max_side is not None and max(image.shape[-2:]) > max_side:
        scale = max_side / max(image.shape[-2:])
        size = (max(1, round(image.shape[-2] * scale)), max(1, round(image.shape[-1] * scale)))
        image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    return image.clamp(0, 1).contiguous()


class EmbeddedImages(RestorationDataset):
    """The photographs scikit-image ships: real data that loads offline, the toolkit's default.

    Fixed split: ``"val"`` = chelsea (RGB) + camera (gray); ``"train"`` = astronaut, coffee,
    rocket, hubble_deep_field, immunohistochemistry, retina, stereo_motorcycle (left and right),
    moon, coins, clock, brick, grass, gravel, page, text. Gray photographs are replicated to RGB
    when ``channels=3`` (colour ones converted to luma when ``channels=1``). Images are decoded once
    per process and kept in memory.

    Args:
        split: ``"train"`` or ``"val"``.
        degradations: ``None`` = AWGN, σ ∈ [0, 50] for train, σ = 25 for val (blind denoising).
        max_side: downscale images whose long side exceeds this (retina is 1411²); ``None`` keeps all.
        Other arguments: see :class:`RestorationDataset`.
    """

    def __init__(
        self,
        split: str = "train",
        degradations: Sequence[Degradation] | None = None,
        task: str | None = None,
        channels: int = 3,
        patch_size: int | None = None,
        augment: bool = False,
        crop_size: int | None = None,
        seed: int | None = None,
        length: int | None = None,
        max_side: int | None = 512,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"EmbeddedImages split must be 'train' or 'val', got {split!r}")
        if degradations is None:
            from restore.data.degradations import AddGaussianNoise

            degradations = [AddGaussianNoise(sigma=(0.0, 50.0) if split == "train" else 25.0)]
        super().__init__(degradations=degradations, task=task, channels=channels, patch_size=patch_size,
                         augment=augment, crop_size=crop_size, seed=seed, length=length)
        self.split = split
        self.max_side = max_side
        self.names = list(EMBEDDED_TRAIN if split == "train" else EMBEDDED_VAL)
        self.images = [_embedded_image(name, channels, max_side) for name in self.names]

    @property
    def num_images(self) -> int:
        return len(self.images)

    def load(self, i: int) -> tuple[None, torch.Tensor, str]:
        return None, self.images[i], self.names[i]
