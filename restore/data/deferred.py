"""Degradations deferred to the training device: drawn per sample in the loader, applied to the whole batch
after it reaches the device (Real-ESRGAN's pattern; the :class:`restore.data.BatchedDegradation` protocol).

Loader side: a training dataset switched to deferred samples (:meth:`RestorationDataset.defer_degradations`)
crops and flips its images as before, but yields them as they are stored (uint8 for 8-bit files) and, under
``"deferred"``, a :class:`DeferredSample`: which chain of degradations (its dataset's batchable tail), the
parameters each drew from the sample's generator, and a seed for the sample's noise fields.
:func:`collate_deferred` groups a batch's samples by chain into a :class:`DeferredBatch`.

Device side: :class:`DeviceDegradations` (called by ``RestorationDataModule.on_after_batch_transfer``) turns
uint8 into float in [0, 1] and runs each chain's degradations on its samples, one batched op per degradation,
noise fields drawn from one generator per sample on the device, seeded with the sample's seed. So a sample's
result depends on that sample alone, not on the batch it landed in: the same seed gives the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import default_collate

from restore.data.degradations import BatchedDegradation, Params

__all__ = ["DeferredSample", "DeferredBatch", "DeviceDegradations", "collate_deferred", "to_unit_range"]


class DeferredSample:
    """What one training sample leaves to the device: its dataset's chain id, each deferred degradation's
    parameters (in chain order) and the seed of its noise generator."""

    __slots__ = ("chain", "params", "seed")

    def __init__(self, chain: int, params: list[Params], seed: int) -> None:
        self.chain, self.params, self.seed = chain, params, seed

    def __repr__(self) -> str:
        return f"DeferredSample(chain={self.chain}, params={[sorted(p) for p in self.params]}, seed={self.seed})"


class DeferredBatch:
    """The deferred part of a collated batch, per chain: the batch positions of its samples, their parameters
    collated per degradation ((B_chain, …) CPU tensors) and their seeds.

    A plain object, not a collection: Lightning's transfer leaves it on the CPU (parameters may be float64,
    which some devices lack), and each degradation's ``apply`` moves what it uses.
    """

    __slots__ = ("groups",)

    def __init__(self, groups: list[tuple[int, torch.Tensor, list[Params], torch.Tensor]]) -> None:
        self.groups = groups

    def __repr__(self) -> str:
        return f"DeferredBatch({[(chain, index.tolist()) for chain, index, _, _ in self.groups]})"


def collate_deferred(samples: Sequence[DeferredSample | None]) -> DeferredBatch:
    """Group a batch's deferred samples (None: a sample with nothing deferred) by chain, collating each
    degradation's parameters with ``default_collate``."""
    groups = []
    for chain in sorted({s.chain for s in samples if s is not None}):
        index = [i for i, s in enumerate(samples) if s is not None and s.chain == chain]
        members = [samples[i] for i in index]
        params = [default_collate([m.params[k] for m in members]) for k in range(len(members[0].params))]
        groups.append((chain, torch.tensor(index), params, torch.tensor([m.seed for m in members])))
    return DeferredBatch(groups)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 0–255 → float32 in [0, 1] (the division ``read_image`` makes, so the same numbers); float as is."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


class DeviceDegradations:
    """Applies a batch's deferred degradations where the batch is (the device).

    Args:
        chains: chain id → the degradations deferred by the datasets that use it (in order).
    """

    def __init__(self, chains: Sequence[Sequence[BatchedDegradation]]) -> None:
        self.chains = [list(chain) for chain in chains]

    def __call__(self, batch: dict) -> dict:
        """A batch with ``"deferred"`` → the sample contract (float ``lq``/``gt`` in [0, 1] on the batch's
        device); any other batch is returned as it is."""
        deferred = batch.pop("deferred", None) if isinstance(batch, dict) else None
        if deferred is None:
            return batch
        lq, gt = to_unit_range(batch["lq"]), to_unit_range(batch["gt"])
        for chain, index, params, seeds in deferred.groups:
            degradations = self.chains[chain]
            if not degradations:
                continue
            whole = len(index) == len(lq)  # one chain fills the batch (positions 0…B-1): no gather/scatter
            images = lq if whole else lq[index.to(lq.device)]
            generators = [torch.Generator(device=lq.device).manual_seed(seed) for seed in seeds.tolist()]
            for degradation, p in zip(degradations, params):
                images = degradation.apply(images, p, generators)
            lq = images if whole else lq.index_copy(0, index.to(lq.device), images.to(lq.dtype))
        batch["lq"], batch["gt"] = lq, gt
        return batch

    def __repr__(self) -> str:
        return f"DeviceDegradations({self.chains})"
