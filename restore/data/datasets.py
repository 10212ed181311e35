"""Restoration datasets: pairs of files (any layout of :mod:`restore.data.layouts`), clean images
with on-the-fly degradations (BSD400, WED, DIV2K, CBSD68 …) and the photographs scikit-image
ships (the default, offline data).

Three classes share one base, :class:`RestorationDataset`, which takes the sampling arguments
(degradations, task, channels, patch_size, augment, crop_size, seed, length, cache) once:

- :class:`PairedImageDataset`: a list of (lq, gt) file pairs, from a layout function
  (``gopro_pairs``, ``rain100_pairs``, ``sots_pairs``, ``lol_pairs`` …), as BasicSR's
  ``paired_paths_from_folder`` feeding its ``PairedImageDataset``;
- :class:`CleanImageDataset`: a folder of clean images, lq made by the degradations;
- :class:`EmbeddedImagesDataset`: the scikit-image photographs, lq made by the degradations.

Every dataset returns the sample contract the Lightning module relies on::

    {"lq": float32 (C, H, W), "gt": float32 (C, H, W) in [0, 1], "task": int, "name": str}

``lq`` is in [0, 1] except for unclipped AWGN. ``task`` is 0 (the dataset's single task,
``dataset.task_name``); :class:`restore.data.RestorationDataModule` renumbers it into its
``task_names`` when it mixes datasets. ``name`` is the file stem (``<sequence>_<stem>`` where a
layout has sub-folders, so saved images do not collide).

Storage: 8-bit files are decoded to uint8 (a quarter of float32's memory) and turned into float in [0, 1]
after cropping (the same numbers: a crop moves pixels, the division is per pixel); with ``cache`` every
image is decoded once into one shared-memory buffer (:class:`SharedImageCache`) that every loader worker
maps, forked or spawned. Crops and flips run on the CPU, in the loader.

Deferred degradations (training): after :meth:`RestorationDataset.defer_degradations` a dataset leaves the
batchable tail of its degradations to the device (:mod:`restore.data.deferred`): samples then carry the
crops as stored (uint8) plus each deferred degradation's parameters, drawn from the sample's generator as
the per-sample path draws them. Validation/test sets are never deferred.

Randomness: each sample draws everything random (crop position, flip, degradation parameters and
noise) from one ``torch.Generator``. With ``seed`` set it is seeded from (seed, index), so every
pass over a validation set sees identical inputs, in any worker; with ``seed=None`` (training) it
is seeded from the global torch RNG, which the DataLoader seeds differently in each worker.

What is checked when:

- construction: folders and pairing (by the layout function: missing folder → ``FileNotFoundError``
  naming it and the layout; empty folder, unmatched stems → ``ValueError`` naming the files), and
  each pair's lq/gt sizes, read from the image headers without decoding (``ValueError`` naming
  both files and sizes; an unreadable header → ``OSError`` naming the file);
- :meth:`RestorationDataset.check_images` (called by the datamodule's ``setup`` for val/test
  sets): every image decoded once, ``OSError`` naming the first unreadable or truncated file;
- loading a sample: the same ``OSError`` (a truncated training image surfaces here).
"""

from __future__ import annotations

import functools
import math
import os
import weakref
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from restore.data.deferred import DeferredSample, to_unit_range
from restore.data.degradations import AddGaussianNoise, Degradation, apply_degradations, is_batched, task_name_of
from restore.data.layouts import ImagePair, list_images
from restore.data.transforms import center_crop, random_channel_permutation_pair, random_crop_pair, random_flip_rot_pair
from restore.utils.image import read_image

__all__ = [
    "RestorationDataset",
    "SharedImageCache",
    "PairedImageDataset",
    "CleanImageDataset",
    "EmbeddedImagesDataset",
    "EMBEDDED_TRAIN",
    "EMBEDDED_VAL",
    "EMBEDDED_TRAIN_COLOR",
]


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: {path}")
    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise OSError(f"Cannot read image {path}: {err}") from err


def _decode_only(path: Path, channels: int) -> None:
    """Decode ``path`` as training would (``OSError`` naming it if it cannot be), keeping nothing."""
    read_image(path, channels)


class SharedImageCache:
    """Decoded images, kept once for every loader worker.

    uint8 images (8-bit files) live in one flat buffer in shared memory: a forked worker shares its pages, a
    spawned one maps it (torch pickles a shared tensor as a handle) instead of copying it, and one buffer is one
    handle however many images it holds. Other images (16-bit, float) are kept as shared float32 tensors.
    Written here: ``torch.multiprocessing`` shares single tensors, not a list of them.

    Args:
        images: the images (C, H, W), uint8 or float; None entries stay None (clean-only data has no lq).
    """

    def __init__(self, images: Sequence[torch.Tensor | None]) -> None:
        eight_bit = [im for im in images if im is not None and im.dtype == torch.uint8]
        self.buffer = torch.empty(sum(im.numel() for im in eight_bit), dtype=torch.uint8).share_memory_()
        self._entries: list[tuple[int, tuple[int, ...]] | torch.Tensor | None] = []
        offset = 0
        for im in images:
            if im is None or im.dtype != torch.uint8:
                self._entries.append(None if im is None else im.float().contiguous().share_memory_())
                continue
            self.buffer[offset:offset + im.numel()].copy_(im.reshape(-1))
            self._entries.append((offset, tuple(im.shape)))
            offset += im.numel()

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        entry = self._entries[i]
        if entry is None or isinstance(entry, torch.Tensor):
            return entry
        offset, shape = entry
        return self.buffer[offset:offset + math.prod(shape)].view(shape)

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held."""
        return self.buffer.numel() + sum(e.numel() * e.element_size() for e in self._entries
                                         if isinstance(e, torch.Tensor))


# (dataset class, files, channels) → the cache of the datasets that read them (RestorationDataset._decode_all)
_SHARED_CACHES: weakref.WeakValueDictionary[tuple, SharedImageCache] = weakref.WeakValueDictionary()


# -- base --------------------------------------------------------------------------------------
class SampleRecipe:
    """How a sample is made from its images: crop, flips/rotations, degradations (per sample, or the batchable
    tail deferred to the device), the sample contract. Shared by :class:`RestorationDataset` (files, folders,
    photographs) and :class:`restore.data.streaming.StreamingImageDataset` (LitData shards).

    Args:
        degradations: applied in order to lq (to gt for clean-only datasets) after cropping.
        task: task name; ``None`` = the degradations' task names joined by ``+``, else ``"restore"``.
        channels: 3 (RGB) or 1 (grayscale).
        patch_size: random crop side for training; ``None`` = full images.
        augment: random flips and 90° rotations (training).
        permute_channels: reorder the colour channels at random, the same for lq and gt (training;
            :func:`restore.data.transforms.random_channel_permutation_pair`).
        crop_size: fixed central crop side (validation on a budget); ``None`` = full images.
        seed: ``None`` draws fresh randomness (training); an int makes sample ``i`` depend only
            on (seed, i) (validation/test).
    """

    def __init__(
        self,
        degradations: Sequence[Degradation] | None = None,
        task: str | None = None,
        channels: int = 3,
        patch_size: int | None = None,
        augment: bool = False,
        crop_size: int | None = None,
        seed: int | None = None,
        permute_channels: bool = False,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
        for name, value in (("patch_size", patch_size), ("crop_size", crop_size)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        self.degradations = list(degradations or [])
        self.task_name = task or (task_name_of(self.degradations) if self.degradations else "restore")
        self.channels = channels
        self.patch_size = patch_size
        self.augment = augment
        self.permute_channels = permute_channels
        self.crop_size = crop_size
        self.seed = seed
        self._deferred: tuple[int, int] | None = None  # (chain id, degradations run per sample)

    @property
    def is_deterministic(self) -> bool:
        """Whether every pass yields identical samples (required of validation/test sets)."""
        return (self.patch_size is None and not self.augment and not self.permute_channels
                and (self.seed is not None or not self.degradations))

    def defer_degradations(self, chain: int) -> list[Degradation]:
        """From now on, leave the batchable tail of :attr:`degradations` to the device (training sets only).

        The longest run of :func:`restore.data.degradations.is_batched` degradations at the end of the list is
        deferred; those before it (and any that cannot batch) still run here, per sample. Samples then carry
        ``lq``/``gt`` as stored (uint8 for 8-bit images; float after a per-sample degradation) and
        ``"deferred"``: a :class:`restore.data.deferred.DeferredSample` tagged with ``chain``, for
        :class:`restore.data.deferred.DeviceDegradations`.

        Returns:
            The deferred degradations, in order (may be empty: the samples still come as stored).

        Raises:
            ValueError: on a deterministic (validation/test) dataset, whose samples must stay as they are.
        """
        if self.seed is not None:
            raise ValueError(f"{type(self).__name__} has a seed (a validation/test set): its degradations stay "
                             "per sample, so its inputs stay identical to every earlier run")
        split = len(self.degradations)
        while split > 0 and is_batched(self.degradations[split - 1]):
            split -= 1
        self._deferred = (chain, split)
        return self.degradations[split:]

    @property
    def deferred_degradations(self) -> list[Degradation]:
        """The degradations left to the device (empty unless :meth:`defer_degradations` was called)."""
        return [] if self._deferred is None else self.degradations[self._deferred[1]:]

    def generator_for(self, index: int) -> torch.Generator:
        """The sample's source of randomness (see the module docstring)."""
        if self.seed is None:
            # the global RNG is seeded per worker by the DataLoader (and by seed_everything(workers=True))
            seed = int(torch.randint(0, 2**62, ()))
        else:
            seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1, np.uint64)[0])
        return torch.Generator().manual_seed(seed)

    def make_sample(self, lq: torch.Tensor | None, gt: torch.Tensor, name: str,
                    generator: torch.Generator) -> dict:
        """The sample of images (C, H, W) as stored (uint8 0–255 or float in [0, 1]; lq None for clean-only
        data): crop, flip/rotate, degrade (or defer), as the sample contract (module docstring)."""
        lq = gt if lq is None else lq  # clean-only data: lq is made from gt by the degradations
        if self.crop_size is not None:
            lq, gt = center_crop(lq, self.crop_size), center_crop(gt, self.crop_size)
        if self.patch_size is not None:
            lq, gt = random_crop_pair(lq, gt, self.patch_size, generator)
        if self.augment:
            lq, gt = random_flip_rot_pair(lq, gt, generator)
        if self.permute_channels:
            lq, gt = random_channel_permutation_pair(lq, gt, generator)
        if self._deferred is not None:
            return self._deferred_sample(lq, gt, name, generator)
        lq, gt = to_unit_range(lq), to_unit_range(gt)
        if self.degradations:
            lq = apply_degradations(lq, self.degradations, generator)
        # clone: gt may be a view of a cached image, which a consumer must not be able to modify
        return {"lq": lq.float().contiguous(), "gt": gt.float().clone(memory_format=torch.contiguous_format),
                "task": 0, "name": name}

    def _deferred_sample(self, lq: torch.Tensor, gt: torch.Tensor, name: str, generator: torch.Generator) -> dict:
        """The per-sample head of the degradations here, the parameters of the deferred tail drawn after it."""
        chain, split = self._deferred
        if split:
            lq = apply_degradations(to_unit_range(lq), self.degradations[:split], generator)
        params = [d.sample(generator, tuple(lq.shape[-2:])) for d in self.degradations[split:]]
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        return {"lq": lq.clone(memory_format=torch.contiguous_format),
                "gt": gt.clone(memory_format=torch.contiguous_format), "task": 0, "name": name,
                "deferred": DeferredSample(chain, params, seed)}


class RestorationDataset(SampleRecipe, Dataset):
    """Base class of the map-style datasets: images by index, their caching, and :class:`SampleRecipe`'s
    crops, augmentation, degradations and sample contract.

    Subclasses set their images and ``names`` (one per image) up, then call
    ``super().__init__(**options)``, and implement :attr:`num_images`, :meth:`decode` and
    :attr:`image_files`.

    Args:
        length: samples per epoch (indices wrap over the images); ``None`` = one per image.
        cache: decode every image once at construction and keep it in memory (sets that fit: BSD400,
            CBSD432, CBSD68; uint8 for 8-bit files, 3 bytes per RGB pixel), in one shared-memory buffer that
            every loader worker maps (:class:`SharedImageCache`).
        **options: :class:`SampleRecipe`'s (degradations, task, channels, patch_size, augment, crop_size, seed).
    """

    def __init__(self, length: int | None = None, cache: bool = False, **options) -> None:
        super().__init__(**options)
        if length is not None and length < 1:
            raise ValueError(f"length must be >= 1 or None, got {length}")
        self.length = length
        self._cache = self._decode_all() if cache else None

    # -- to implement --
    @property
    def num_images(self) -> int:
        raise NotImplementedError

    def decode(self, i: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Image ``i`` as (lq or None for clean-only data, gt), each (C, H, W): uint8 0–255 (8-bit files) or
        float in [0, 1]."""
        raise NotImplementedError

    @property
    def image_files(self) -> list[Path]:
        """Every file the dataset reads (each once), for :meth:`check_images`."""
        raise NotImplementedError

    # -- shared --
    def check_images(self, exclude: Collection[Path] = (), threads: int | None = None) -> list[Path]:
        """Decode every image file once (already done with ``cache=True``), so a truncated or
        unreadable file fails now rather than mid-run.

        Args:
            exclude: files already checked (another split reading the same files).
            threads: decoding threads (PIL releases the GIL while decoding); ``None`` = up to 8.

        Returns:
            The files decoded.

        Raises:
            OSError: naming the first unreadable file (in file order).
        """
        if self._cache is not None:
            return []
        files = [path for path in self.image_files if path not in exclude]
        threads = threads or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            # map re-raises the first failure in input order; no pixels are kept
            for _ in pool.map(functools.partial(_decode_only, channels=self.channels), files):
                pass
        return files

    def _decode_all(self, threads: int | None = None) -> SharedImageCache:
        """Every image, decoded in threads (PIL releases the GIL), into one :class:`SharedImageCache`.

        Datasets of the same class reading the same files with the same channels (the training sets of an
        all-in-one recipe: one folder, one degradation each) share one cache while any of them holds it."""
        key = (type(self), tuple(map(str, self.image_files)), self.channels)
        cache = _SHARED_CACHES.get(key)
        if cache is None:
            with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
                pairs = list(pool.map(self.decode, range(self.num_images)))
            cache = _SHARED_CACHES[key] = SharedImageCache([im for pair in pairs for im in pair])
        return cache

    def __len__(self) -> int:
        return self.length if self.length is not None else self.num_images

    def load(self, i: int) -> tuple[torch.Tensor | None, torch.Tensor, str]:
        """Image ``i`` as stored (uint8 or float; from the cache when there is one) and its name."""
        lq, gt = (self._cache[2 * i], self._cache[2 * i + 1]) if self._cache is not None else self.decode(i)
        return lq, gt, self.names[i]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {len(self)}")
        lq, gt, name = self.load(index % self.num_images)
        return self.make_sample(lq, gt, name, self.generator_for(index))

    def _read(self, path: Path) -> torch.Tensor:
        return read_image(path, self.channels, keep_uint8=True)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(images={self.num_images}, length={len(self)}, task={self.task_name!r}, "
                f"channels={self.channels}, patch_size={self.patch_size}, crop_size={self.crop_size}, "
                f"seed={self.seed}, degradations={self.degradations})")


# -- pairs of files ----------------------------------------------------------------------------
def _as_pair(item: ImagePair | Sequence) -> ImagePair:
    if isinstance(item, ImagePair):
        return item
    if isinstance(item, (str, bytes)) or len(item) not in (2, 3):
        raise ValueError(f"a pair must be (lq_path, gt_path) or (lq_path, gt_path, name), got {item!r}")
    lq, gt = Path(item[0]), Path(item[1])
    return ImagePair(lq, gt, str(item[2]) if len(item) == 3 else lq.stem)


class PairedImageDataset(RestorationDataset):
    """Degraded/clean pairs of image files, loaded lazily (or all at construction with ``cache``).

    Each pair's lq and gt sizes are compared at construction from the image headers (no
    decoding), so a mismatch fails here, naming both files.

    Args:
        pairs: (lq, gt[, name]) pairs, e.g. from a layout function of :mod:`restore.data.layouts`
            (in a config, a nested ``_target_: restore.data.rain100_pairs`` …); ``name`` defaults
            to the lq stem.
        **options: the sampling arguments of :class:`RestorationDataset` (degradations are added
            on top of lq, e.g. extra noise).

    Raises:
        ValueError: no pairs, or a pair whose lq and gt differ in size (naming both files).
        OSError / FileNotFoundError: a file whose header cannot be read, or that does not exist.
    """

    def __init__(self, pairs: Sequence[ImagePair | Sequence], **options: Any) -> None:
        self.pairs = [_as_pair(item) for item in pairs]
        if not self.pairs:
            raise ValueError("PairedImageDataset got no (lq, gt) pairs")
        self.names = [pair.name for pair in self.pairs]
        sizes = {}  # several lq images may share one gt (SOTS): read each header once
        for lq, gt, _ in self.pairs:
            for path in (lq, gt):
                if path not in sizes:
                    sizes[path] = _image_size(path)
            if sizes[lq] != sizes[gt]:
                raise ValueError(f"lq/gt sizes differ: lq {lq} is {sizes[lq][0]}×{sizes[lq][1]}, "
                                 f"gt {gt} is {sizes[gt][0]}×{sizes[gt][1]} (width×height)")
        super().__init__(**options)

    @property
    def num_images(self) -> int:
        return len(self.pairs)

    @property
    def image_files(self) -> list[Path]:
        return list(dict.fromkeys(path for lq, gt, _ in self.pairs for path in (lq, gt)))

    def decode(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        lq_path, gt_path, _ = self.pairs[i]
        lq, gt = self._read(lq_path), self._read(gt_path)
        if lq.shape[-2:] != gt.shape[-2:]:  # checked at construction; a file replaced since is caught here
            raise ValueError(f"lq/gt sizes differ: lq {lq_path} is {lq.shape[-1]}×{lq.shape[-2]}, "
                             f"gt {gt_path} is {gt.shape[-1]}×{gt.shape[-2]} (width×height)")
        return lq, gt


# -- clean images + synthetic degradations -----------------------------------------------------
class CleanImageDataset(RestorationDataset):
    """A folder of clean images; lq is synthesised on the fly (BSD400, WED, DIV2K, CBSD68 …).

    Args:
        root: folder of clean images.
        degradations: at least one, applied in order to each (cropped) clean image.
        recursive: also take images in sub-folders (names become ``<subdir>_<stem>``).
        exclude: names of images to leave out (e.g. the scenes of a test set that the folder also holds); each
            must be in the folder, so a misspelt name is an error rather than a test scene trained on.
        made_by: the command that makes the folder (a generated split), named by the missing-folder error.
        **options: the other sampling arguments of :class:`RestorationDataset`.
    """

    LAYOUT = "<root>/*.png (or .jpg, .bmp …) clean images, e.g. BSD400 / WED / DIV2K_train_HR"

    def __init__(self, root: str | Path, degradations: Sequence[Degradation], recursive: bool = False,
                 exclude: Collection[str] = (), made_by: str | None = None, **options: Any) -> None:
        root = Path(root)
        if not root.is_dir():
            how = f"; make it with `{made_by}`" if made_by else " (see docs/data.md)"
            raise FileNotFoundError(f"clean-image folder {root} not found; expected {self.LAYOUT}{how}")
        if not degradations:
            raise ValueError(f"CleanImageDataset({root}) needs at least one degradation to make lq images from")
        self.root = root
        files = list_images(root, recursive, what="clean-image folder", layout=self.LAYOUT)
        names = ["_".join(p.relative_to(root).with_suffix("").parts) for p in files]
        excluded = {str(name) for name in exclude}
        unknown = sorted(excluded - set(names))
        if unknown:
            raise ValueError(f"CleanImageDataset({root}): exclude names {unknown[:5]} ({len(unknown)} in all) are not "
                             "images of the folder (names are file stems)")
        self.files = [p for p, n in zip(files, names) if n not in excluded]
        self.names = [n for n in names if n not in excluded]
        if not self.files:
            raise ValueError(f"CleanImageDataset({root}): every image is excluded")
        super().__init__(degradations=degradations, **options)

    @property
    def num_images(self) -> int:
        return len(self.files)

    @property
    def image_files(self) -> list[Path]:
        return list(self.files)

    def decode(self, i: int) -> tuple[None, torch.Tensor]:
        return None, self._read(self.files[i])


# -- embedded photographs ----------------------------------------------------------------------
EMBEDDED_VAL = ("chelsea", "camera")
EMBEDDED_TRAIN = ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                  "stereo_motorcycle_left", "stereo_motorcycle_right",
                  "moon", "coins", "clock", "brick", "grass", "gravel", "page", "text")
# the colour photographs of natural scenes among EMBEDDED_TRAIN (no gray, microscopy, fundus or deep-sky images)
EMBEDDED_TRAIN_COLOR = ("astronaut", "coffee", "rocket", "stereo_motorcycle_left", "stereo_motorcycle_right")


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


class EmbeddedImagesDataset(RestorationDataset):
    """The photographs scikit-image ships: real data that loads offline, the toolkit's default.

    Fixed split: ``"val"`` = chelsea (RGB) + camera (gray); ``"train"`` = astronaut, coffee,
    rocket, hubble_deep_field, immunohistochemistry, retina, stereo_motorcycle (left and right),
    moon, coins, clock, brick, grass, gravel, page, text. Gray photographs are replicated to RGB
    when ``channels=3`` (colour ones converted to luma when ``channels=1``). Images are decoded once
    per process and kept in memory (``cache`` changes nothing).

    Args:
        split: ``"train"`` or ``"val"``.
        names: the photographs to use instead of the split's whole list, each one of that list
            (``EMBEDDED_TRAIN_COLOR``: the colour photographs of natural scenes, for colour denoisers).
        degradations: ``None`` = AWGN, σ ∈ [0, 50] for train, σ = 25 for val (blind denoising).
        max_side: downscale images whose long side exceeds this (retina is 1411²); ``None`` keeps all.
        **options: the other sampling arguments of :class:`RestorationDataset`.
    """

    def __init__(self, split: str = "train", degradations: Sequence[Degradation] | None = None,
                 max_side: int | None = 512, names: Sequence[str] | None = None, **options: Any) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"EmbeddedImagesDataset split must be 'train' or 'val', got {split!r}")
        allowed = EMBEDDED_TRAIN if split == "train" else EMBEDDED_VAL
        if names is not None:
            names = [names] if isinstance(names, str) else list(names)
            unknown = [n for n in names if n not in allowed]
            if unknown or not names:
                raise ValueError(f"EmbeddedImagesDataset({split!r}) names {unknown or names!r}: choose one or more "
                                 f"of the {split} photographs {list(allowed)}")
        if degradations is None:
            degradations = [AddGaussianNoise(sigma=(0.0, 50.0) if split == "train" else 25.0)]
        self.split = split
        self.max_side = max_side
        self.names = list(allowed if names is None else dict.fromkeys(names))
        channels = options.get("channels", 3)
        if channels in (1, 3):  # anything else is refused by the base class
            self.images = [_embedded_image(name, channels, max_side) for name in self.names]
        super().__init__(degradations=degradations, **options)

    @property
    def num_images(self) -> int:
        return len(self.names)

    @property
    def image_files(self) -> list[Path]:
        return []  # decoded at construction

    def decode(self, i: int) -> tuple[None, torch.Tensor]:
        return None, self.images[i]
