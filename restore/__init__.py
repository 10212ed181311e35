"""restore: an image-restoration training toolkit (Hydra configs, Lightning modules).

Python API::

    import restore
    net = restore.load_model("outputs/<task_name>/<timestamp>/checkpoints/best.ckpt")
    clean = restore.restore_image(net, "noisy.png", tile=512)   # same kind as the input
    restore.export_model(restore.reparameterize(net), "net_deploy.safetensors")
    restore.is_deployed(net)                                    # True once re-parameterised
    net = restore.load_model("denoise_color")                  # a shipped pretrained model (restore.list_models())
    net = restore.create_model("unireplknet_tiny", width=32)   # an architecture, random weights (list_architectures())

From a shell: ``restore run --model best.ckpt noisy/ restored/`` and ``restore export --model
best.ckpt net.onnx`` (see :mod:`restore.cli`, :mod:`restore.export`).

Loading never runs code from the file: a stored config may only name the toolkit's networks and
blocks; ``restore.register_network("mypkg.nets.MyNet")`` allows one of your own (or pass ``net=``).
Every weights file the toolkit writes stores a digest of its weights, checked on load; declared sizes
are checked before anything is allocated (:mod:`restore.weights_io`). The toolkit's exceptions live
in :mod:`restore.errors`.
"""

from restore.checkpoint import export_model, load_model
from restore.inference import restore_image
from restore.model_zoo import list_models, model_card
from restore.models.allowlist import register_network
from restore.models.factory import create_model, list_architectures
from restore.models.reparam import is_deployed, reparameterize

__version__ = "0.1.0"

__all__ = ["load_model", "export_model", "restore_image", "reparameterize", "is_deployed", "register_network",
           "list_models", "model_card", "create_model", "list_architectures", "deblur_semiblind", "__version__"]


def __getattr__(name: str):
    # imported on first use: the semi-blind solver is independent of the training stack
    if name == "deblur_semiblind":
        from restore.semiblind import deblur_semiblind

        return deblur_semiblind
    raise AttributeError(f"module 'restore' has no attribute {name!r}")
