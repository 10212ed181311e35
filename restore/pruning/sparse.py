"""Compact export of a pruned network: a safetensors file whose size shrinks with sparsity.

The encoding (``metadata["format"] == "restore-sparse"``: non-zero values plus int32 flat indices
or a bitmask, whichever is smaller per tensor) belongs to :mod:`restore.weights_io`, which writes
and reads every weights file; this module folds a pruned network's masks into its weights and
hands the dense state dict over. :func:`restore.load_model` reads the file into a dense network.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from restore.pruning.masks import dense_state_dict
from restore.weights_io import (
    FORMAT_VERSION,
    SPARSE_FORMAT,
    densify_state_dict,
    deploy_flag,
    encode_state_dict,
    pack_bits,
    save_weights,
    unpack_bits,
)

# the encoding's names, importable from here as before
__all__ = ["SPARSE_FORMAT", "FORMAT_VERSION", "export_sparse", "densify_state_dict", "encode_state_dict", "pack_bits",
           "unpack_bits"]


def export_sparse(net: nn.Module, path: str | Path, net_config: dict | None = None, encoding: str = "auto") -> Path:
    """Write ``net`` (pruning masks folded in, i.e. made permanent in the file) as a restore-sparse
    safetensors file that :func:`restore.load_model` loads into a dense network.

    Args:
        net: any network; pruned (``torch.nn.utils.prune`` masks attached) or not. Not modified.
        path: the ``.safetensors`` file to write (folders are created; written atomically, with a digest).
        net_config: the network's Hydra config; defaults to ``net.net_config``.
        encoding: see :func:`restore.weights_io.encode_state_dict`.

    Returns:
        ``path``.
    """
    config = net_config if net_config is not None else getattr(net, "net_config", None)
    if config is None:
        raise ValueError("export_sparse needs the network's config (net_config=...) to rebuild it on load")
    return save_weights(dense_state_dict(net), path, config, deploy=deploy_flag(net, config), sparse=True,
                        encoding=encoding)
