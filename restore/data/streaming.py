"""Training sets larger than a disk: LitData shards of uint8 images, streamed from a local folder or a bucket.

``restore prepare <folder> <out>`` (:func:`prepare_shards`) writes the images of a folder as LitData-optimised
chunks (``litdata.optimize``): each item an image as :func:`restore.utils.image.read_image` gives it (uint8
(C, H, W) for 8-bit files) and its name. :class:`StreamingImageDataset` reads them back with
``litdata.StreamingDataset`` from a local folder, ``s3://bucket/prefix`` (or ``gs://``, ``azure://``: whatever
LitData reads), downloading chunks ahead of use into a bounded local cache, and makes each sample as the
folder datasets do (:class:`restore.data.datasets.SampleRecipe`: the same crops, flips and degradations, per
sample or deferred to the device). LitData shards the chunks across DDP ranks, nodes and loader workers (each
sample read once per epoch across them) and reshuffles every epoch.

Needs the optional ``litdata`` package: ``pip install 'restore[stream]'``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from restore.data.datasets import SampleRecipe, _image_size
from restore.data.degradations import Degradation
from restore.data.layouts import list_images
from restore.utils.image import read_image

try:
    import litdata
    from litdata.utilities.env import _DistributedEnv
except ImportError as err:  # pragma: no cover - the message is the point
    raise ImportError("streaming datasets (restore.data.streaming, `restore prepare`) need LitData: "
                      "pip install 'restore[stream]' (or pip install litdata)") from err

__all__ = ["StreamingImageDataset", "prepare_shards"]

LAYOUT = "<folder>/*.png (or .jpg, .bmp …) clean images, e.g. DIV2K_train_HR, WED, CBSD432"


def _read_item(job: tuple[str, str, int]) -> dict:
    """One image of :func:`prepare_shards` (runs in LitData's worker processes: a module-level function)."""
    path, name, channels = job
    return {"image": read_image(path, channels, keep_uint8=True).contiguous(), "name": name}


def prepare_shards(folder: str | Path, output_dir: str, channels: int = 3, recursive: bool = False,
                   chunk_bytes: str = "64MB", num_workers: int | None = None) -> int:
    """Write the images of ``folder`` as LitData shards in ``output_dir`` (a new or empty folder, or a bucket URL).

    Args:
        folder: folder of images (see :data:`LAYOUT`).
        output_dir: where the chunks and ``index.json`` go; a local folder must not hold files already.
        channels: 3 (RGB) or 1 (gray): the images are converted now, as the folder datasets convert them.
        recursive: also take images in sub-folders (names become ``<subdir>_<stem>``).
        chunk_bytes: chunk size (LitData's ``chunk_bytes``): big enough to stream efficiently.
        num_workers: LitData's writer processes (``None``: its default, one per CPU).

    Returns:
        The number of images written.

    Raises:
        FileNotFoundError: ``folder`` does not exist; ValueError: it holds no images, ``channels`` is not 1 or
        3, or a local ``output_dir`` already holds files (nothing is overwritten); OSError: an image cannot be
        read, named (headers are read before anything is written; a file that fails later, truncated, leaves
        no shards behind in a local ``output_dir``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} not found; expected {LAYOUT}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    if "://" not in str(output_dir) and Path(output_dir).is_dir() and any(Path(output_dir).iterdir()):
        raise ValueError(f"{output_dir} already holds files; give a new or empty folder (nothing is overwritten)")
    files = list_images(folder, recursive, what="image folder", layout=LAYOUT)
    for path in files:  # a file that is not an image fails here, before anything is written
        _image_size(path)
    jobs = [(str(p), "_".join(p.relative_to(folder).with_suffix("").parts), channels) for p in files]
    local = None if "://" in str(output_dir) else Path(output_dir)
    try:
        litdata.optimize(fn=_read_item, inputs=jobs, output_dir=str(output_dir), chunk_bytes=chunk_bytes,
                         num_workers=num_workers, verbose=False, start_method="spawn")
    except RuntimeError as err:
        if local is not None and local.is_dir():  # it was new or empty: remove the partial shards
            shutil.rmtree(local)
        unreadable = re.search(r"OSError: (Cannot read image .*)", str(err))
        if unreadable is None:
            raise
        raise OSError(f"{unreadable.group(1)}; fix or remove it, then run again (no shards were kept)") from None
    return len(jobs)


class StreamingImageDataset(litdata.StreamingDataset):
    """Clean images streamed from LitData shards (:func:`prepare_shards`), degraded on the fly: a training set.

    Each item is made by a :class:`restore.data.datasets.SampleRecipe` (random ``patch_size`` crop, flips,
    degradations) with a generator seeded from the worker's global RNG, as the folder datasets' training
    samples; with ``degrade_on_device`` the datamodule defers the batchable degradations to the device.

    Args:
        input_dir: the shards: a local folder or a bucket URL (``s3://bucket/prefix``; credentials as LitData
            and the cloud's client read them, e.g. ``AWS_ACCESS_KEY_ID``/``AWS_PROFILE``, or ``storage_options``).
        degradations: applied in order to each crop (at least one: the images are clean).
        task, channels, patch_size, augment: as :class:`restore.data.datasets.SampleRecipe`'s; ``channels``
            must be the shards' (``restore prepare --channels``).
        shuffle: reshuffle chunks and items every epoch (LitData's shuffle; its ``seed`` is ``shuffle_seed``).
        cache_dir: where chunks from a bucket are kept (``None``: LitData's default); max_cache_size bounds it.
        storage_options: passed to LitData (cloud client options).

    Raises:
        ValueError: no degradations, or shards whose images do not have ``channels`` channels.
    """

    def __init__(self, input_dir: str, degradations: Sequence[Degradation], task: str | None = None,
                 channels: int = 3, patch_size: int | None = 128, augment: bool = True, shuffle: bool = True,
                 shuffle_seed: int = 42, cache_dir: str | None = None, max_cache_size: str = "50GB",
                 storage_options: dict | None = None) -> None:
        if not degradations:
            raise ValueError(f"StreamingImageDataset({input_dir}) needs at least one degradation to make lq images")
        super().__init__(str(input_dir), cache_dir=cache_dir, shuffle=shuffle, seed=shuffle_seed,
                         max_cache_size=max_cache_size, storage_options=dict(storage_options or {}))
        self.recipe = SampleRecipe(degradations=degradations, task=task, channels=channels, patch_size=patch_size,
                                   augment=augment)
        self.task_name = self.recipe.task_name
        self.task_id = 0  # the datamodule's id of task_name
        self.is_deterministic = False

    def defer_degradations(self, chain: int) -> list[Degradation]:
        """:meth:`restore.data.datasets.SampleRecipe.defer_degradations` of this set's recipe."""
        return self.recipe.defer_degradations(chain)

    def refresh_distributed_env(self) -> None:
        """Read the DDP world again: built before the process group exists (as train.py builds its datamodule),
        LitData would see one process and give every rank every chunk. The datamodule calls this in ``setup``."""
        self.distributed_env = _DistributedEnv.detect()
        if self.distributed_env.world_size > 1:
            self.drop_last = True  # every rank the same number of batches, or collectives wait forever

    def __getitem__(self, index) -> dict:
        item = super().__getitem__(index)
        image, name = item["image"], str(item["name"])
        if image.shape[0] != self.recipe.channels:
            raise ValueError(f"shard image {name} of {self.input_dir.url or self.input_dir.path} has "
                             f"{image.shape[0]} channels, the dataset {self.recipe.channels}: prepare the shards with "
                             f"`restore prepare --channels {self.recipe.channels}` or set channels to match")
        sample = self.recipe.make_sample(None, image, name, self.recipe.generator_for(0))
        sample["task"] = self.task_id
        return sample

    def dataloader(self, batch_size: int, num_workers: int, collate_fn, pin_memory: bool = False,
                   persistent_workers: bool = False) -> torch.utils.data.DataLoader:
        """LitData's loader (it sets each epoch's shuffle and keeps the position for resuming)."""
        return litdata.StreamingDataLoader(self, batch_size=batch_size, num_workers=num_workers,
                                           collate_fn=collate_fn, pin_memory=pin_memory,
                                           persistent_workers=persistent_workers and num_workers > 0,
                                           drop_last=True)

    def __repr__(self) -> str:
        return (f"StreamingImageDataset(input_dir={self.input_dir.url or self.input_dir.path!r}, items={len(self)}, "
                f"task={self.task_name!r}, channels={self.recipe.channels}, patch_size={self.recipe.patch_size}, "
                f"degradations={self.recipe.degradations})")
