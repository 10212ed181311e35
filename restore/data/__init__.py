"""Data: restoration datasets, on-the-fly degradations, paired augmentation and the datamodule.

Sample contract (every dataset)::

    {"lq": float32 (C, H, W), "gt": float32 (C, H, W) in [0, 1], "task": int, "name": str}

Training sets can leave their degradations to the training device (``RestorationDataModule(...,
degrade_on_device=True)``, on in the configs): the loader then yields uint8 crops plus each sample's
degradation parameters, and the datamodule degrades whole batches on the device
(:class:`BatchedDegradation`, :mod:`restore.data.deferred`).

Layout functions (``gopro_pairs``, ``rain100_pairs``, ``sots_pairs``, ``lol_pairs`` …) find the
(lq, gt) file pairs of a dataset; :class:`PairedImageDataset` loads any list of pairs,
:class:`CleanImageDataset` a folder of clean images and :class:`EmbeddedImagesDataset` the
scikit-image photographs, both degraded on the fly. Configs in ``configs/data/`` build a
:class:`RestorationDataModule` from them; layouts and sources are described in ``docs/data.md``.
"""

from restore.data.camera_shake import CameraShakeBlur, camera_shake_kernel  # noqa: F401 (configs' _target_)
from restore.data.datamodule import RestorationDataModule, TaskTaggedDataset, collate_samples
from restore.data.datasets import (
    CleanImageDataset,
    EmbeddedImagesDataset,
    PairedImageDataset,
    RestorationDataset,
    SharedImageCache,
)
from restore.data.deferred import DeferredBatch, DeferredSample, DeviceDegradations
from restore.data.degradations import (
    AddGaussianNoise,
    BatchedDegradation,
    Degradation,
    GaussianBlur,
    Haze,
    JPEGCompression,
    KernelBlur,
    LowLight,
    MotionBlur,
    RainStreaks,
    apply_degradations,
    is_batched,
)
from restore.data.haze_synthesis import DepthHaze
from restore.data.kernels import (
    center_kernel,
    gaussian_kernel,
    load_kernel,
    random_motion_kernel,
    random_motion_trajectory,
)
from restore.data.layouts import (
    ImagePair,
    gopro_avgframes_pairs,
    gopro_pairs,
    list_images,
    lol_pairs,
    paired_paths_from_folders,
    rain100_pairs,
    sots_pairs,
)
from restore.data.rain_synthesis import LayeredRainStreaks

__all__ = [
    # datamodule
    "RestorationDataModule",
    "TaskTaggedDataset",
    "collate_samples",
    # datasets
    "RestorationDataset",
    "PairedImageDataset",
    "CleanImageDataset",
    "EmbeddedImagesDataset",
    "SharedImageCache",
    # degradations on the device
    "DeferredSample",
    "DeferredBatch",
    "DeviceDegradations",
    # layouts
    "ImagePair",
    "list_images",
    "paired_paths_from_folders",
    "gopro_pairs",
    "gopro_avgframes_pairs",
    "rain100_pairs",
    "sots_pairs",
    "lol_pairs",
    # degradations
    "Degradation",
    "BatchedDegradation",
    "is_batched",
    "AddGaussianNoise",
    "MotionBlur",
    "GaussianBlur",
    "KernelBlur",
    "JPEGCompression",
    "RainStreaks",
    "Haze",
    "LowLight",
    "LayeredRainStreaks",
    "DepthHaze",
    "apply_degradations",
    # kernels
    "random_motion_kernel",
    "random_motion_trajectory",
    "gaussian_kernel",
    "load_kernel",
    "center_kernel",
]
