"""The LightningDataModule of the toolkit: datasets in, loaders with the sample contract out.

Datasets come ready-made (Hydra instantiates them from nested ``_target_`` configs). A list of
datasets is concatenated for all-in-one training, each repeated by its replication factor
(``repeat``, as PromptIR repeats its rain set 120× and each noise level 3×); each sample's
``task`` is renumbered into :attr:`RestorationDataModule.task_names`, the distinct ``task_name``
of every dataset in order of first appearance (train, then val, then test), so ids mean the same
in every loader.

Degradations on the device (``degrade_on_device``, on in the configs): each training dataset leaves the
batchable tail of its degradations to the device (:meth:`RestorationDataset.defer_degradations`); its loader
yields uint8 crops plus each sample's parameters, and :meth:`RestorationDataModule.on_after_batch_transfer`
(a Lightning hook, called once the batch is on the training device) degrades the whole batch there
(:class:`restore.data.deferred.DeviceDegradations`), so every LightningModule receives the usual float
batches. Validation/test sets always take the per-sample path.

Start-up checks: validation/test sets must be deterministic (at construction), and in
:meth:`RestorationDataModule.setup` every val/test image is decoded once, so an unreadable file
stops the run before the first training step rather than at the first validation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from lightning import LightningDataModule
from torch.utils.data import ConcatDataset, DataLoader, Dataset, IterableDataset, default_collate

from restore.data.deferred import DeviceDegradations, collate_deferred, to_unit_range

__all__ = ["RestorationDataModule", "TaskTaggedDataset", "collate_samples"]

DatasetOrList = Dataset | Sequence[Dataset]


class TaskTaggedDataset(Dataset):
    """A dataset whose samples' ``task`` is set to ``task_id`` (an index into the datamodule's ``task_names``)."""

    def __init__(self, dataset: Dataset, task_id: int) -> None:
        self.dataset = dataset
        self.task_id = task_id

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[index]
        sample["task"] = self.task_id
        return sample


def collate_samples(samples: list[dict]) -> dict:
    """``default_collate``, with a clear message when full images of different sizes meet in a batch.

    Deferred samples (``"deferred"``) have their parameters grouped by chain (:func:`collate_deferred`); where
    uint8 and float images meet in one batch (datasets of different kinds mixed), all become float in [0, 1].
    """
    shapes = {tuple(s["lq"].shape) for s in samples} | {tuple(s["gt"].shape) for s in samples}
    if len(shapes) > 1:
        names = ", ".join(f"{s['name']} {tuple(s['gt'].shape)}" for s in samples)
        raise ValueError(f"cannot batch images of different sizes ({names}); use a batch size of 1 for full images "
                         "(val_batch_size=1) or give the dataset a crop_size / patch_size")
    if not any("deferred" in s for s in samples):
        return default_collate(samples)
    deferred = [s.get("deferred") for s in samples]
    samples = [{k: v for k, v in s.items() if k != "deferred"} for s in samples]
    for key in ("lq", "gt"):
        if len({s[key].dtype for s in samples}) > 1:
            samples = [{**s, key: to_unit_range(s[key])} for s in samples]
    batch = default_collate(samples)
    batch["deferred"] = collate_deferred(deferred)
    return batch


def _as_list(datasets: DatasetOrList | None) -> list[Dataset]:
    if datasets is None:
        return []
    if isinstance(datasets, Dataset):
        return [datasets]
    return list(datasets)  # list, tuple or an OmegaConf ListConfig of datasets


def _check_repeat(repeat: Sequence[int] | None, num_train: int) -> list[int] | None:
    if repeat is None:
        return None
    factors = list(repeat)
    if len(factors) != num_train or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1
                                            for k in factors):
        raise ValueError(f"repeat must give one integer factor >= 1 per training dataset ({num_train} given), "
                         f"got {factors}")
    return factors


def _task_name(dataset: Dataset) -> str:
    return str(getattr(dataset, "task_name", "restore"))


class RestorationDataModule(LightningDataModule):
    """Train / val / test loaders over restoration datasets.

    Args:
        train: training dataset, or a list of them (all-in-one: concatenated, shuffled together).
        val: validation dataset(s); must be deterministic (seeded, no random crops or flips), so
            every validation pass sees identical inputs. Full images or fixed centre crops.
        test: test dataset(s); ``None`` = ``val``.
        batch_size: training batch size.
        val_batch_size: validation/test batch size; 1 because full images differ in size.
        num_workers: loader worker processes (0 = load in the main process).
        pin_memory: pin batches for faster host-to-GPU copies.
        persistent_workers: keep workers between epochs; ``None`` = whenever ``num_workers > 0``.
        root: the dataset folder, for layouts whose splits share one (GoPro): the split configs
            interpolate it (``root: ${data.root}``), so ``data.root=<path>`` moves them all. Recorded
            only; the datasets themselves check it.
        repeat: replication factor of each training dataset (one int per dataset in ``train``,
            each >= 1), e.g. ``[3, 1, 1]`` to see the first task's samples three times per epoch.
            ``None`` = once each.
        check_images: decode every val/test image once in :meth:`setup` (before training or
            testing starts); ``False`` skips it (e.g. a huge test set you trust).
        degrade_on_device: leave each training dataset's batchable degradations to the training device, applied
            to whole batches in :meth:`on_after_batch_transfer` (module docstring); ``False`` degrades every
            sample in the loader. Needs the datamodule to be given to the Trainer (``trainer.fit(model,
            datamodule=dm)``); a loader used on its own yields the deferred batches, which :meth:`degrade`
            finishes.

    Raises:
        ValueError: no validation dataset, a validation/test dataset that is random, or a
            ``repeat`` that does not give one factor >= 1 per training dataset.
    """

    def __init__(
        self,
        train: DatasetOrList | None,
        val: DatasetOrList,
        test: DatasetOrList | None = None,
        batch_size: int = 8,
        val_batch_size: int = 1,
        num_workers: int = 2,
        pin_memory: bool = False,
        persistent_workers: bool | None = None,
        root: str | None = None,
        repeat: Sequence[int] | None = None,
        check_images: bool = True,
        degrade_on_device: bool = False,
    ) -> None:
        super().__init__()
        self.root = root
        train_sets, val_sets = _as_list(train), _as_list(val)
        test_sets = _as_list(test) if test is not None else val_sets
        self.repeat = _check_repeat(repeat, len(train_sets))
        self.check_images = check_images
        self._val_sets, self._test_sets = val_sets, test_sets
        self._checked: set[int] = set()  # ids of the datasets checked by setup
        self._checked_files: set = set()  # and their files, decoded once even where splits share them
        if not val_sets:
            raise ValueError("RestorationDataModule needs a validation dataset (val)")
        for split, datasets in (("val", val_sets), ("test", test_sets)):
            for ds in datasets:
                if not getattr(ds, "is_deterministic", True):
                    raise ValueError(
                        f"{split} dataset {type(ds).__name__} is random ({ds!r}); validation and test sets need a "
                        "seed and no patch_size/augment, so every pass sees identical inputs")
        self._task_names = list(dict.fromkeys(_task_name(ds) for ds in train_sets + val_sets + test_sets))
        self.degrade_on_device = degrade_on_device
        chains = []
        for ds in train_sets if degrade_on_device else []:
            defer = getattr(ds, "defer_degradations", None)
            chains.append(defer(len(chains)) if defer is not None else [])
        self.device_degradations = DeviceDegradations(chains)
        self.train_dataset = self._combine(train_sets, self.repeat)
        self.val_dataset = self._combine(val_sets)
        self.test_dataset = self._combine(test_sets)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        # persistent workers need workers at all
        self.persistent_workers = (num_workers > 0) and (persistent_workers is None or persistent_workers)

    @property
    def task_names(self) -> list[str]:
        """Names of the task ids in batches (``batch["task"] == i`` ↔ ``task_names[i]``)."""
        return list(self._task_names)

    def describe_sets(self, split: str = "test") -> list[dict]:
        """The ``"test"`` (or ``"val"``) sets as a metrics file names them: per dataset its task (the row of the
        results table), its images (a folder; the scikit-image photographs) and its degradation (each
        degradation's repr: σ, kernel file, quality…; paired sets read theirs from disk)."""
        described = []
        for ds in self._test_sets if split == "test" else self._val_sets:
            if getattr(ds, "root", None) is not None:
                source = os.path.normpath(ds.root)
            elif getattr(ds, "split", None) is not None:
                source = f"scikit-image photographs ({ds.split} split)"
            else:
                files = [str(p) for p in getattr(ds, "image_files", [])]
                source = os.path.normpath(os.path.commonpath(files)) if files else type(ds).__name__
            degradations = [repr(d) for d in getattr(ds, "degradations", [])]
            # images tested: the set's length (a `length` below the folder's image count tests the first ones)
            described.append({"task": _task_name(ds), "dataset": type(ds).__name__, "images": len(ds), "source": source,
                              "degradation": "; ".join(degradations) or "degraded images read from disk (pairs)"})
        return described

    def _combine(self, datasets: list[Dataset], repeat: Sequence[int] | None = None) -> Dataset | None:
        if not datasets:
            return None
        if any(isinstance(ds, IterableDataset) for ds in datasets):  # streamed (restore.data.streaming)
            if len(datasets) > 1 or repeat:
                raise ValueError(f"a streaming training set ({type(datasets[0]).__name__}) must be the only one, "
                                 f"without repeat: prepare one set of shards from the mixed images instead "
                                 f"({len(datasets)} sets, repeat={repeat})")
            datasets[0].task_id = self._task_names.index(_task_name(datasets[0]))
            return datasets[0]
        tagged = []
        for ds, times in zip(datasets, repeat or [1] * len(datasets)):
            tagged += [TaskTaggedDataset(ds, self._task_names.index(_task_name(ds)))] * times
        return tagged[0] if len(tagged) == 1 else ConcatDataset(tagged)

    def setup(self, stage: str | None = None) -> None:
        """Decode every image of the val and test sets once (``check_images``), before anything runs; a streamed
        training set learns the DDP world here (the process group exists by now).

        ``fit`` checks the val and the test sets (train.py tests after fitting), ``validate`` the
        val sets, ``test`` the test sets; each dataset, and each file, is checked once per process.

        Raises:
            OSError: naming the split, the dataset and the first unreadable file.
        """
        refresh = getattr(self.train_dataset, "refresh_distributed_env", None)
        if refresh is not None:  # a streamed training set: shard it over the DDP ranks that now exist
            refresh()
        if not self.check_images:
            return
        splits = {"fit": ("val", "test"), "validate": ("val",), "test": ("test",)}.get(stage or "fit", ())
        for split in splits:
            for ds in self._val_sets if split == "val" else self._test_sets:
                check = getattr(ds, "check_images", None)
                if check is None or id(ds) in self._checked:
                    continue
                try:
                    self._checked_files.update(check(exclude=self._checked_files))
                except OSError as err:
                    raise OSError(f"{split} dataset {type(ds).__name__} ({len(ds)} samples): {err}; every val/test "
                                  "image is decoded at start-up (data.check_images=false skips this)") from err
                self._checked.add(id(ds))

    def degrade(self, batch: dict) -> dict:
        """Finish a training batch whose degradations were deferred (uint8 → float, degradations applied where
        the batch is); any other batch is returned as it is."""
        return self.device_degradations(batch)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        # the batch is on the training device: deferred degradations run there, on the whole batch
        return self.degrade(batch)

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        own_loader = getattr(dataset, "dataloader", None)
        if own_loader is not None:  # a streamed set brings its loader (shuffles and shards itself)
            return own_loader(batch_size=batch_size, num_workers=self.num_workers, collate_fn=collate_samples,
                              pin_memory=self.pin_memory, persistent_workers=self.persistent_workers)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            # training: equal-size batches; an epoch shorter than a batch still yields one
            drop_last=shuffle and len(dataset) >= batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=collate_samples,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ValueError("RestorationDataModule was built without a training dataset (train=None)")
        return self._loader(self.train_dataset, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, self.val_batch_size, shuffle=False)
