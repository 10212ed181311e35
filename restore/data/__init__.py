"""Data: restoration datasets, on-the-fly degradations, paired augmentation and the datamodule.

Sample contract (every dataset)::

    {"lq": float32 (C, H, W), "gt": float32 (C, H, W) in [0, 1], "task": int, "name": str}

Configs in ``configs/data/`` build a :class:`RestorationDataModule` from these classes; dataset
layouts and sources are described in ``data/README.md``.
"""

from restore.data.datamodule import RestorationDataModule, TaskTaggedDataset, collate_samples
from restore.data.datasets import (
    CleanFolderDataset,
    EmbeddedImages,
    GoProDataset,
    PairedFolderDataset,
    Rain100Dataset,
    RestorationDataset,
    SOTSDataset,
    list_images,
)
from restore.data.degradations import (
    AddGaussianNoise,
    Degradation,
    GaussianBlur,
    Haze,
    JPEGCompression,
    LowLight,
    MotionBlur,
    RainStreaks,
    apply_degradations,
)
from restore.data.kernels import gaussian_kernel, load_kernel, random_motion_kernel, random_motion_trajectory

__all__ = [
    # datamodule
    "RestorationDataModule",
    "TaskTaggedDataset",
    "collate_samples",
    # datasets
    "RestorationDataset",
    "PairedFolderDataset",
    "GoProDataset",
    "Rain100Dataset",
    "SOTSDataset",
    "CleanFolderDataset",
    "EmbeddedImages",
    "list_images",
    # degradations
    "Degradation",
    "AddGaussianNoise",
    "MotionBlur",
    "GaussianBlur",
    "JPEGCompression",
    "RainStreaks",
    "Haze",
    "LowLight",
    "apply_degradations",
    # kernels
    "random_motion_kernel",
    "random_motion_trajectory",
    "gaussian_kernel",
    "load_kernel",
]
