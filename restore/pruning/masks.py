"""Pruning masks on any network of the toolkit: which weights are prunable, one magnitude (or random)
pruning round, rewinding, dense state dicts and counts.

Masks are ``torch.nn.utils.prune`` re-parametrisations: a pruned weight ``w`` becomes the parameter
``w_orig`` and the buffer ``w_mask``, and a forward pre-hook sets ``w = w_orig * w_mask`` before
every forward, so pruned entries are exactly zero in every forward pass, whatever the optimiser
does to ``w_orig`` (MIR-L keeps its mask by zeroing gradients and re-masking after each step; the
pre-hook does both at once). One round is ``prune.global_unstructured`` (global scope) or
``prune.l1_unstructured`` / ``prune.random_unstructured`` (per layer) with an *absolute* number of
weights to remove, computed from the original count, so rounding never accumulates over rounds:
after round r exactly ``round(n₀·(1 − rate)^r)`` weights remain in each pruned group.

Lightning's ``ModelPruning`` callback is not used: it prunes between epochs of one ``fit`` (same
optimiser and schedule), while lottery-ticket IMP retrains every round from the rewound weights
with a fresh optimiser and schedule, keeps per-layer rate overrides beside a global threshold, and
rewinds to a chosen step; :mod:`restore.pruning.run` drives one ``Trainer`` per round instead.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune

__all__ = [
    "DEFAULT_LAYER_TYPES",
    "PrunableWeight",
    "select_prunable",
    "attach_masks",
    "get_masks",
    "set_masks",
    "prune_round",
    "target_remaining",
    "dense_state_dict",
    "fold_masks",
    "unfold_masks",
    "load_dense_state",
    "zero_pruned",
    "make_permanent",
    "count_parameters",
]

#: Layers whose ``weight`` is prunable by default: convolutions and linear layers (not norm gains,
#: biases, BN statistics or layer scales, which MIR-L's official code prunes too).
DEFAULT_LAYER_TYPES = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Linear")


@dataclass
class PrunableWeight:
    """One prunable tensor: ``module.<param>``, named ``name`` in the network's state dict."""

    name: str
    module: nn.Module
    param: str = "weight"

    @property
    def is_masked(self) -> bool:
        return hasattr(self.module, self.param + "_mask")

    @property
    def mask(self) -> torch.Tensor:
        return getattr(self.module, self.param + "_mask")

    @property
    def raw(self) -> torch.Tensor:
        """The trained tensor (``weight_orig`` once masked, else ``weight``)."""
        return getattr(self.module, self.param + "_orig") if self.is_masked else getattr(self.module, self.param)

    def effective(self) -> torch.Tensor:
        """The weight the network computes with (raw × mask), detached."""
        raw = self.raw.detach()
        return raw * self.mask if self.is_masked else raw

    @property
    def numel(self) -> int:
        return self.raw.numel()


def _layer_classes(layer_types: Sequence[str]) -> tuple[type, ...]:
    classes = []
    for name in layer_types:
        cls = getattr(nn, str(name), None)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(f"layer_types: {name!r} is not a torch.nn layer class (e.g. {list(DEFAULT_LAYER_TYPES)})")
        classes.append(cls)
    return tuple(classes)


def select_prunable(net: nn.Module, include: Sequence[str] = ("*",), exclude: Sequence[str] = (),
                    layer_types: Sequence[str] = DEFAULT_LAYER_TYPES) -> list[PrunableWeight]:
    """The prunable weights of ``net``, in module order.

    A ``weight`` is prunable when its module is one of ``layer_types`` (subclasses included), its
    state-dict name (``encoders.0.0.conv1.weight``) matches one of ``include`` and none of
    ``exclude`` (``fnmatch`` patterns). Works on a network whose masks are already attached.

    Raises:
        ValueError: nothing is prunable (the message lists the candidates), or an unknown layer type.
    """
    classes = _layer_classes(layer_types)
    candidates, selected = [], []
    for module_name, module in net.named_modules():
        if not isinstance(module, classes):
            continue
        w = PrunableWeight(f"{module_name}.weight" if module_name else "weight", module)
        if not isinstance(w.raw, torch.Tensor) or not w.raw.is_floating_point():
            continue
        candidates.append(w.name)
        if any(fnmatch.fnmatchcase(w.name, p) for p in include) and not any(
                fnmatch.fnmatchcase(w.name, p) for p in exclude):
            selected.append(w)
    if not selected:
        raise ValueError(f"no prunable weights: include={list(include)}, exclude={list(exclude)}, layer_types="
                         f"{list(layer_types)} select none of the {len(candidates)} candidates "
                         f"{candidates[:8]}{' …' if len(candidates) > 8 else ''}")
    return selected


def attach_masks(weights: Sequence[PrunableWeight]) -> None:
    """Give every weight a mask of ones (``prune.identity``) if it has none yet."""
    for w in weights:
        if not w.is_masked:
            prune.identity(w.module, w.param)


def get_masks(weights: Sequence[PrunableWeight]) -> dict[str, torch.Tensor]:
    """``{name: bool mask}`` (all True for weights without a mask), on the CPU."""
    return {w.name: (w.mask.detach() != 0).cpu() if w.is_masked else torch.ones_like(w.raw, dtype=torch.bool,
                                                                                       device="cpu")
            for w in weights}


def set_masks(weights: Sequence[PrunableWeight], masks: Mapping[str, torch.Tensor]) -> None:
    """Attach masks and overwrite them with ``masks`` (e.g. read back from a run folder).

    Raises:
        KeyError / ValueError: a weight without a mask in ``masks``, or a mask of the wrong shape.
    """
    attach_masks(weights)
    for w in weights:
        if w.name not in masks:
            raise KeyError(f"no mask for prunable weight {w.name!r} (masks hold {len(masks)} tensors)")
        mask = masks[w.name]
        if tuple(mask.shape) != tuple(w.raw.shape):
            raise ValueError(f"mask of {w.name} has shape {tuple(mask.shape)}, the weight {tuple(w.raw.shape)}")
        w.mask.copy_(mask.to(device=w.mask.device, dtype=w.mask.dtype))
    zero_pruned(weights)


def target_remaining(numel: int, rate: float, round_index: int) -> int:
    """Weights left in a group of ``numel`` after ``round_index`` rounds at ``rate``: round(n₀·(1 − rate)^r)."""
    return int(round(numel * (1.0 - rate) ** round_index))


def _remaining(weights: Sequence[PrunableWeight]) -> int:
    return sum(int(w.mask.count_nonzero()) if w.is_masked else w.numel for w in weights)


def prune_round(weights: Sequence[PrunableWeight], round_index: int, rate: float = 0.2, scope: str = "global",
                rate_overrides: Mapping[str, float] | None = None, method: str = "magnitude",
                seed: int = 0) -> None:
    """Prune down to round ``round_index`` (≥ 1) of the schedule, in place (masks attached as needed).

    Each group (all weights together for ``scope="global"``, each weight for ``"layer"``; a weight
    matching a pattern of ``rate_overrides`` always forms its own group at that rate) keeps
    ``round(n₀·(1 − rate)^r)`` weights: the smallest |w| of the survivors go (``method="magnitude"``,
    lottery-ticket IMP, Frankle & Carbin 2019 Alg. 1; MIR-L Sec. 3) or random survivors
    (``method="random"``, the control), seeded by (seed, round).
    """
    if round_index < 1:
        raise ValueError(f"round_index must be >= 1, got {round_index}")
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    if method not in ("magnitude", "random"):
        raise ValueError(f"method must be 'magnitude' or 'random', got {method!r}")
    attach_masks(weights)
    overrides = dict(rate_overrides or {})
    groups: list[tuple[list[PrunableWeight], float]] = []
    shared: list[PrunableWeight] = []
    for w in weights:
        own = next((float(r) for p, r in overrides.items() if fnmatch.fnmatchcase(w.name, p)), None)
        if own is not None:
            groups.append(([w], own))
        elif scope == "layer":
            groups.append(([w], rate))
        else:
            shared.append(w)
    if shared:
        groups.append((shared, rate))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) * 1_000_003 + int(round_index))
        for group, group_rate in groups:
            if not 0.0 <= group_rate < 1.0:
                raise ValueError(f"pruning rate must be in [0, 1), got {group_rate} for {[w.name for w in group]}")
            amount = _remaining(group) - target_remaining(sum(w.numel for w in group), group_rate, round_index)
            if amount <= 0:
                continue
            if len(group) == 1:
                w = group[0]
                if method == "magnitude":
                    prune.l1_unstructured(w.module, w.param, amount=amount, importance_scores=w.effective())
                else:
                    prune.random_unstructured(w.module, w.param, amount=amount)
            else:
                prune.global_unstructured(
                    [(w.module, w.param) for w in group],
                    pruning_method=prune.L1Unstructured if method == "magnitude" else prune.RandomUnstructured,
                    importance_scores={(w.module, w.param): w.effective() for w in group}, amount=amount)
    zero_pruned(weights)


@torch.no_grad()
def zero_pruned(weights: Sequence[PrunableWeight]) -> None:
    """Set the raw values of pruned entries to zero too (``w_orig *= mask``) and refresh ``w``.

    The forward pass never sees them anyway; zeroing keeps checkpoints sparse and makes momentum
    and (decoupled) weight decay act on exact zeros, which they leave at zero.
    """
    for w in weights:
        if w.is_masked:
            w.raw.mul_(w.mask)
            setattr(w.module, w.param, w.raw * w.mask)


def dense_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """``net.state_dict()`` with masks folded in: ``w = w_orig · w_mask``, no ``_orig``/``_mask`` keys.

    The keys are those of the unpruned network, so the result loads into a fresh one.
    """
    return fold_masks(net.state_dict())[0]


def fold_masks(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A state dict of a pruned network → (the dense one, ``w = w_orig · w_mask``; ``{w: bool mask}``).

    Keys without a ``_orig``/``_mask`` pair pass through, in order; works with any key prefix
    (``net.`` in Lightning checkpoints).
    """
    out: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith("_orig") and key[:-5] + "_mask" in state:
            mask = state[key[:-5] + "_mask"]
            out[key[:-5]] = (value * mask).detach()
            masks[key[:-5]] = mask.detach() != 0
        elif key.endswith("_mask") and key[:-5] + "_orig" in state:
            continue
        else:
            out[key] = value.detach() if isinstance(value, torch.Tensor) else value
    return out, masks


def unfold_masks(state: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`fold_masks`: ``w`` → ``w_orig = w`` and ``w_mask = mask`` (in ``w``'s dtype)
    for each ``{w: bool mask}``; exact, because pruned entries of ``w_orig`` are kept at zero
    (:class:`~restore.pruning.callbacks.PrunedWeightsGuard`). Other keys pass through."""
    out = dict(state)
    for key, mask in masks.items():
        if key not in out:
            raise KeyError(f"the state dict has no {key!r} to attach its pruning mask to")
        weight = out.pop(key)
        out[key + "_orig"] = weight
        out[key + "_mask"] = mask.to(device=weight.device, dtype=weight.dtype)
    return out


@torch.no_grad()
def load_dense_state(net: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load a dense state dict (keys of the unpruned network) into ``net``, keeping its masks.

    Pruned weights get ``state[w] · mask`` (rewinding: survivors take the given values, pruned
    entries stay zero). Every key must match (strict).
    """
    own = net.state_dict()
    target = {}
    for key, value in state.items():
        if key + "_orig" in own and key + "_mask" in own:
            mask = own[key + "_mask"]
            target[key + "_orig"] = value.to(mask.device) * mask
            target[key + "_mask"] = mask
        else:
            target[key] = value
    net.load_state_dict(target, strict=True)
    for module in net.modules():  # refresh the cached masked weights (`w`) the pre-hooks set
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                setattr(module, hook._tensor_name, hook.apply_mask(module))


def make_permanent(net: nn.Module) -> nn.Module:
    """Remove every pruning re-parametrisation: ``weight`` becomes a plain parameter equal to
    ``weight_orig · weight_mask`` (``prune.remove``); pruned entries stay zero. In place."""
    for module in net.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return net


def count_parameters(net: nn.Module, weights: Sequence[PrunableWeight]) -> dict[str, int | float]:
    """Counts for reports: prunable and all parameters, total and remaining, and the fractions."""
    prunable = sum(w.numel for w in weights)
    remaining = _remaining(weights)
    total = sum(p.numel() for p in net.parameters())
    return {"prunable": prunable, "prunable_remaining": remaining, "all": total,
            "all_remaining": total - (prunable - remaining),
            "fraction_prunable": remaining / prunable, "fraction_all": (total - (prunable - remaining)) / total}
