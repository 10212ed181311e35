"""Pruning: lottery-ticket iterative magnitude pruning with rewinding (MIR-L) for any network of the
toolkit, and a compact sparse export.

    python train.py experiment=denoise/unireplknet_tiny pruning=imp pruning.rounds=5
    python train.py experiment=prune/mirl_quick

Python API::

    from restore.pruning import select_prunable, prune_round, export_sparse
    weights = select_prunable(net)                 # conv/linear weights
    prune_round(weights, 1, rate=0.2)              # 80% left, global magnitude threshold
    export_sparse(net, "net.sparse.safetensors", net_config)   # restore.load_model reads it
"""

from restore.pruning.masks import (
    DEFAULT_LAYER_TYPES,
    PrunableWeight,
    attach_masks,
    count_parameters,
    dense_state_dict,
    fold_masks,
    get_masks,
    load_dense_state,
    make_permanent,
    prune_round,
    select_prunable,
    set_masks,
    target_remaining,
    zero_pruned,
)
from restore.pruning.sparse import SPARSE_FORMAT, densify_state_dict, export_sparse

__all__ = [
    "DEFAULT_LAYER_TYPES",
    "IterativePruning",
    "PrunableWeight",
    "SPARSE_FORMAT",
    "attach_masks",
    "count_parameters",
    "dense_state_dict",
    "densify_state_dict",
    "export_sparse",
    "fold_masks",
    "get_masks",
    "load_dense_state",
    "make_permanent",
    "prune_round",
    "run_pruning",
    "select_prunable",
    "set_masks",
    "target_remaining",
    "zero_pruned",
]


def __getattr__(name: str):
    # the run driver imports Lightning and Hydra: loaded on first use, so restore.load_model
    # (which densifies sparse files) stays light
    if name in ("IterativePruning", "run_pruning"):
        from restore.pruning import run

        return getattr(run, name)
    raise AttributeError(f"module 'restore.pruning' has no attribute {name!r}")
