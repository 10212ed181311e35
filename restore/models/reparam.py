"""Whole-model structural re-parameterisation for deployment.

A block that can fold its training-time branches into fewer layers exposes ``reparameterize()``
(the timm convention, so ``timm.utils.model.reparameterize_model`` works on our networks too).
"""

from __future__ import annotations

from torch import nn

__all__ = ["reparameterize", "is_reparameterizable", "is_deployed"]


def is_reparameterizable(model: nn.Module) -> bool:
    """True if any sub-module has a ``reparameterize()`` method."""
    return any(hasattr(m, "reparameterize") for m in model.modules() if m is not model)


def is_deployed(model: nn.Module) -> bool:
    """True when ``model`` is in its deploy form: it has re-parameterisable blocks (a ``reparameterize()``
    method) and every one of them reports ``deploy is True``.

    A network with nothing to fold (NAFNet, DeepRFT) has only its training form: False, whatever its
    blocks' ``deploy`` arguments. A partly converted one is False too (``reparameterize`` would still
    change it); weights files refuse to store it (:func:`restore.weights_io.deploy_flag`).
    """
    blocks = [m for m in model.modules() if hasattr(m, "reparameterize")]
    return bool(blocks) and all(getattr(m, "deploy", False) is True for m in blocks)


def reparameterize(model: nn.Module) -> nn.Module:
    """Convert ``model`` in place to its deploy form and put it in eval mode.

    Calls ``reparameterize()`` on every sub-module that has one, outermost first, the same walk as
    timm's ``reparameterize_model`` but in place (timm deep-copies by default). Folding BNs uses
    their running statistics, so the result equals the training form in eval mode.
    """
    model.eval()
    # Collect first: a block's reparameterize() replaces its children, which must not be visited.
    done: set[int] = set()
    for module in list(model.modules()):
        if module is model or id(module) in done or not hasattr(module, "reparameterize"):
            continue
        # mark the sub-tree before the call too: the children it replaces must not be visited later
        done.update(id(m) for m in module.modules())
        module.reparameterize()
        done.update(id(m) for m in module.modules())
    if hasattr(model, "reparameterize") and id(model) not in done:
        model.reparameterize()
    return model
