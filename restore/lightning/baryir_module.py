"""Two-player training of BaryIR (Tang et al., TPAMI 2026; official ``trainer_bary.py``) in Lightning.

Each batch runs two steps (manual optimisation, two optimisers):

1. **generator** (network parameters; potentials frozen), per sample i of source k_i with weight λ_{k_i}
   (``BaryIR_train_loss`` in trainer_bary.py)::

       L_G = L1(x̂, y) + wb_weight · mean_i λ_{k_i} [ RMS(z_s,i − z_b,i) + 0.05·orth_i + 0.05·con_i − f_{k_i}(z_b,i) ]

2. **potentials** (network frozen: z_b of the same forward, detached), over the whole batch
   (``potential_train_loss`` + ``potential_constraint_loss`` in trainer_bary.py)::

       L_f = mean_i λ_{k_i} f_{k_i}(z_b,i) + 10 · mean_i (Σ_k λ_k f_k(z_b,i))²

λ_k is inverse task frequency in the training set, normalised (the official ``Lambda``). Weights are
config values. Departures from the official code:

- ``wb_weight = 1e-4``: the official code multiplies L1 by 1e4 and the WB terms by 1 (``--Sigma``);
  under RMSprop (scale-free up to ε) that is L1 + 1e-4·WB. Here L1 keeps weight 1, so the logged loss
  is on the same scale as every other model's.
- The congruence penalty is over the whole batch (the official code uses the last sample only) and
  is in the same step as the potential loss (officially a second optimiser step).
- The potential step uses the z_b of the generator's forward (detached), not a second forward after
  the generator update: one fewer encoder pass per step.
- Sources are the datamodule's task names (``sources``); the official code merges σ 15/25/50 into one
  potential but keeps them apart as contrastive positives; here a source is one task for both.

Only the generator step counts as a training step (``trainer.global_step`` = batches seen): the
potential step goes through the strategy (AMP scaling, hooks, gradient clipping) without advancing
the step counter, so ``max_steps``, validation intervals, EMA and checkpoints count batches as for
every other model. Gradient clipping: ``gradient_clip_val`` of this module (Lightning's
``trainer.gradient_clip_val`` must be null under manual optimisation), applied in
``on_before_optimizer_step``, after AMP unscaling.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import ConcatDataset

from restore.lightning.hyperparameters import OptimizerSpec
from restore.lightning.module import RestorationModule
from restore.models.baryir import (
    barycenter_distance,
    congruence_penalty,
    contrastive_loss,
    inverse_frequency_weights,
    orthogonality_loss,
)

__all__ = ["BaryIRModule"]

log = logging.getLogger(__name__)


class BaryIRModule(RestorationModule):
    """Trains a :class:`restore.models.baryir.BaryIRNet` with its Kantorovich potentials.

    The potentials are this module's (``self.potentials``), not the network's: checkpoints hold them
    under ``potentials.*`` (resumed with both optimisers), and :func:`restore.load_model` reads only
    ``net.*``, so the inference network is the plain image-to-image net.

    Args:
        net: a :class:`BaryIRNet` (anything with ``forward_latents`` and ``latent_channels``).
        loss: restoration loss ``(pred, target) -> scalar`` (L1).
        optimizer: partial optimiser of the network parameters.
        potential_optimizer: partial optimiser of the potentials.
        sources: task names of the source degradations, one potential each (``["denoise", "derain",
            "dehaze"]``); every training sample's task must be one of them.
        potentials: partial ``(num_potentials=K, channels=C) -> nn.Module`` returning (B, K)
            (:class:`restore.models.baryir.KantorovichPotentials`).
        scheduler: partial ``(optimizer, total_steps) -> LRScheduler`` of the network's optimiser,
            stepped every batch, or None.
        potential_scheduler: the same for the potentials' optimiser.
        source_weights: λ_k per source; ``None`` = inverse frequency of the training set's samples.
        wb_weight: weight of the Wasserstein-barycenter terms against the restoration loss.
        distance_weight: weight of RMS(z_s − z_b) inside the bracket (1, as the official code).
        orthogonality_weight: weight of the orthogonality term (0.05).
        contrastive_weight: weight of the InfoNCE term (0.05).
        potential_weight: weight of − f_k(z_b) (1).
        congruence_weight: weight of (Σ_k λ_k f_k)² in the potential step (10).
        temperature: InfoNCE temperature τ (0.07).
        gradient_clip_val: clip each optimiser's gradient norm to this (None: no clipping).
        **kwargs: :class:`RestorationModule`'s (``metrics``, ``task_names``, ``log_images``, …).
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        potential_optimizer: Callable[..., torch.optim.Optimizer],
        sources: Sequence[str],
        potentials: Callable[..., nn.Module],
        scheduler: Callable[..., Any] | None = None,
        potential_scheduler: Callable[..., Any] | None = None,
        source_weights: Sequence[float] | None = None,
        wb_weight: float = 1e-4,
        distance_weight: float = 1.0,
        orthogonality_weight: float = 0.05,
        contrastive_weight: float = 0.05,
        potential_weight: float = 1.0,
        congruence_weight: float = 10.0,
        temperature: float = 0.07,
        gradient_clip_val: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(net=net, loss=loss, optimizer=optimizer, scheduler=scheduler, **kwargs)
        # the generator's loss is backpropagated first, the potentials' second (training_step); the potential
        # loss is signed (−f terms), so the divergence guard only stops it on NaN/Inf
        self.optimizer_specs[0] = dataclasses.replace(self.optimizer_specs[0], loss="generator loss")
        self.optimizer_specs.append(OptimizerSpec(potential_optimizer, potential_scheduler,
                                                  "model.potential_optimizer", "model.potential_scheduler",
                                                  loss="potential loss", signed_loss=True))
        # partials and modules stay out of the hyper-parameters (checkpoints load with weights_only=True)
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler", "potential_optimizer",
                                          "potentials", "potential_scheduler"], logger=False)
        if not hasattr(net, "forward_latents"):
            raise TypeError(f"BaryIRModule needs a network with forward_latents (restore.models.baryir.BaryIRNet), "
                            f"got {type(net).__name__}; train a plain network with RestorationModule")
        self.sources = [str(s) for s in sources]
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ValueError(f"sources must be distinct task names, got {self.sources}")
        self.automatic_optimization = False
        self.potentials = potentials(num_potentials=len(self.sources), channels=net.latent_channels)
        if source_weights is not None and len(source_weights) != len(self.sources):
            raise ValueError(f"source_weights has {len(source_weights)} values for {len(self.sources)} sources "
                             f"{self.sources}")
        self._given_weights = None if source_weights is None else [float(w) for w in source_weights]
        self.source_weights = torch.full((len(self.sources),), 1.0 / len(self.sources))
        self._source_of_task: torch.Tensor | None = None  # datamodule task id → source index (−1: none)
        self.wb_weight = wb_weight
        self.term_weights = {"distance": distance_weight, "orthogonality": orthogonality_weight,
                             "contrastive": contrastive_weight, "potential": potential_weight}
        self.congruence_weight = congruence_weight
        self.temperature = temperature
        self.gradient_clip_val = gradient_clip_val

    # -- sources -----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        names = self.task_names or list(getattr(dm, "task_names", None) or [])
        if names:
            self.task_names = names
            self._source_of_task = torch.tensor([self.sources.index(n) if n in self.sources else -1 for n in names])
        else:  # unnamed tasks: task id k is source k
            self._source_of_task = torch.arange(len(self.sources))
        if self._given_weights is not None:
            self.source_weights = torch.tensor(self._given_weights)
        elif stage == "fit":
            counts = self._training_counts(dm)
            if counts is not None:
                self.source_weights = inverse_frequency_weights(counts)
        log.info("BaryIR sources %s, weights λ = %s", self.sources, [round(w, 4) for w in self.source_weights.tolist()])

    def _training_counts(self, dm: Any) -> list[int] | None:
        """Samples per source in the datamodule's training set (None when it does not tell)."""
        train = getattr(dm, "train_dataset", None)
        if train is None:
            return None
        parts = train.datasets if isinstance(train, ConcatDataset) else [train]
        counts = [0] * len(self.sources)
        for part in parts:
            task_id = getattr(part, "task_id", None)
            if task_id is None:
                return None
            source = int(self._source_of_task[task_id])
            if source < 0:
                raise ValueError(f"training task {self.task_names[task_id]!r} is not one of the BaryIR sources "
                                 f"{self.sources} (model.sources)")
            counts[source] += len(part)
        missing = [s for s, c in zip(self.sources, counts) if c == 0]
        if missing:
            raise ValueError(f"BaryIR sources {missing} have no training samples; training tasks are "
                             f"{[self.task_names[p.task_id] for p in parts]} (model.sources lists {self.sources})")
        return counts

    def sources_of(self, tasks: torch.Tensor) -> torch.Tensor:
        """Batch task ids (B,) → source indices (B,); raises on a task that is not a source."""
        lookup = self._source_of_task if self._source_of_task is not None else torch.arange(len(self.sources))
        tasks = torch.as_tensor(tasks).long().cpu()
        if (tasks < 0).any() or (tasks >= len(lookup)).any() or (lookup[tasks] < 0).any():
            bad = sorted(set(tasks.tolist()))
            raise ValueError(f"training batch has task ids {bad} ({self.task_names}); BaryIR sources are "
                             f"{self.sources}")
        return lookup[tasks].to(self.device)

    # -- the two players' losses -------------------------------------------------------------
    def generator_loss(self, pred: torch.Tensor, target: torch.Tensor, z_s: torch.Tensor, z_b: torch.Tensor,
                       z_r: torch.Tensor, sources: torch.Tensor) -> dict[str, torch.Tensor]:
        """Restoration loss + wb_weight · mean_i λ_{k_i}[...] (module docstring); ``"loss"`` and each term."""
        w = self.term_weights
        restoration = self.loss(pred.float(), target.float())
        distance = barycenter_distance(z_s, z_b)
        orthogonality = orthogonality_loss(z_b, z_r)
        contrastive = contrastive_loss(z_r, sources, self.temperature)
        potential = self.potentials(z_b).float().gather(1, sources[:, None]).squeeze(1)
        per_sample = (w["distance"] * distance + w["orthogonality"] * orthogonality
                      + w["contrastive"] * contrastive - w["potential"] * potential)
        lam = self.source_weights.to(self.device)[sources]
        wb = (lam * per_sample).mean()
        return {"loss": restoration + self.wb_weight * wb, "restoration": restoration, "wb": wb,
                "distance": distance.mean(), "orthogonality": orthogonality.mean(),
                "contrastive": contrastive.mean(), "potential": potential.mean()}

    def potential_loss(self, z_b: torch.Tensor, sources: torch.Tensor) -> dict[str, torch.Tensor]:
        """mean_i λ_{k_i} f_{k_i}(z_b,i) + congruence_weight · mean_i (Σ_k λ_k f_k(z_b,i))²."""
        values = self.potentials(z_b).float()  # (B, K)
        lam = self.source_weights.to(self.device)
        own = (lam[sources] * values.gather(1, sources[:, None]).squeeze(1)).mean()
        congruence = congruence_penalty(values, lam)
        return {"loss": own + self.congruence_weight * congruence, "own": own, "congruence": congruence}

    # -- steps -------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        opt_net, opt_pot = self.optimizers()
        sources = self.sources_of(batch["task"])
        size = batch["lq"].shape[0]

        self.toggle_optimizer(opt_net)  # potentials frozen: −f_k(z_b) moves only the network
        pred, z_s, z_b, z_r = self.net.forward_latents(batch["lq"])
        gen = self.generator_loss(pred, batch["gt"], z_s, z_b, z_r, sources)
        opt_net.zero_grad(set_to_none=True)
        self.manual_backward(gen["loss"])
        opt_net.step()
        self.untoggle_optimizer(opt_net)

        self.toggle_optimizer(opt_pot)  # network frozen: z_b detached
        pot = self.potential_loss(z_b.detach(), sources)
        opt_pot.zero_grad(set_to_none=True)
        self.manual_backward(pot["loss"])
        self._step_uncounted(opt_pot)
        self.untoggle_optimizer(opt_pot)

        for scheduler in self._schedulers():
            scheduler.step()
        self.log("train/loss", gen["loss"], prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        self.log_dict({f"train/{k}": v.detach() for k, v in gen.items() if k != "loss"},
                      on_step=True, on_epoch=False, batch_size=size)
        self.log_dict({"train/potential_loss": pot["loss"].detach(), "train/congruence": pot["congruence"].detach()},
                      on_step=True, on_epoch=False, batch_size=size)
        return gen["loss"].detach()

    def _step_uncounted(self, optimizer: Any) -> None:
        """Step through the strategy (precision plugin: AMP scaler, hooks) without advancing global_step."""
        self.trainer.strategy.optimizer_step(optimizer.optimizer, closure=lambda: None, model=self)

    def _schedulers(self) -> list:
        schedulers = self.lr_schedulers()
        return [] if schedulers is None else schedulers if isinstance(schedulers, list) else [schedulers]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # after AMP unscaling, before the step: the place for clipping under manual optimisation
        if self.gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        total = int(self.trainer.estimated_stepping_batches)
        (opt_net, sched_net), (opt_pot, sched_pot) = (
            spec.build(params, total) for spec, params in zip(self.optimizer_specs, (
                [p for p in self.net.parameters() if p.requires_grad], list(self.potentials.parameters()))))
        schedulers = [s for s in (sched_net, sched_pot) if s is not None]
        return ([opt_net, opt_pot], schedulers) if schedulers else [opt_net, opt_pot]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["baryir"] = {"sources": self.sources, "source_weights": self.source_weights.tolist()}
