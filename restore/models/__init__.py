"""Restoration networks: the shared U-Net skeleton and the blocks that fill it.

One architecture per module (``nafnet``, ``convnext``, ``inceptionnext``, ``unireplknet``), each a
block for :class:`RestorationUNet`; a network is the skeleton plus a ``_partial_`` block in
``configs/model/net/<backbone>_<size>.yaml``. ``baryir`` adds all-in-one barycenter heads to any of
them (``configs/model/net/baryir_<backbone>_<size>.yaml``). ``reparam`` converts trained networks to their deploy
form, ``summary`` counts parameters and MACs (``python -m restore.models.summary``; not imported
here so that ``-m`` runs it cleanly).
"""

from restore.models.baryir import BaryIRNet, KantorovichPotentials
from restore.models.convnext import ConvNeXtBlock
from restore.models.inceptionnext import InceptionNeXtBlock
from restore.models.nafnet import NAFBlock
from restore.models.reparam import is_deployed, is_reparameterizable, reparameterize
from restore.models.unet import RestorationUNet, UNetDecoder, UNetEncoder
from restore.models.unireplknet import DilatedReparamBlock, UniRepLKNetBlock

__all__ = [
    "RestorationUNet",
    "BaryIRNet",
    "KantorovichPotentials",
    "UNetEncoder",
    "UNetDecoder",
    "NAFBlock",
    "ConvNeXtBlock",
    "InceptionNeXtBlock",
    "DilatedReparamBlock",
    "UniRepLKNetBlock",
    "reparameterize",
    "is_reparameterizable",
    "is_deployed",
]
