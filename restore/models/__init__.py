"""Restoration networks: the shared U-Net skeleton and the blocks that fill it.

One architecture per module (``nafnet``, ``convnext``, ``inceptionnext``, ``unireplknet``), each with a
factory that a ``configs/model/net/*.yaml`` targets; ``reparam`` converts trained networks to their
deploy form, ``summary`` counts parameters and MACs (``python -m restore.models.summary``; not imported
here so that ``-m`` runs it cleanly). (The NAFNet factory stays
``restore.models.nafnet.nafnet``: re-exporting it here would shadow its module.)
"""

from restore.models.convnext import ConvNeXtBlock, convnext_unet
from restore.models.inceptionnext import MetaNeXtBlock, inceptionnext_unet
from restore.models.nafnet import NAFBlock
from restore.models.reparam import is_reparameterizable, reparameterize
from restore.models.unet import RestorationUNet
from restore.models.unireplknet import DilatedReparamBlock, UniRepLKNetBlock, unireplk_unet

__all__ = [
    "RestorationUNet",
    "NAFBlock",
    "ConvNeXtBlock",
    "convnext_unet",
    "MetaNeXtBlock",
    "inceptionnext_unet",
    "DilatedReparamBlock",
    "UniRepLKNetBlock",
    "unireplk_unet",
    "reparameterize",
    "is_reparameterizable",
]
