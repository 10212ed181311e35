"""The network constructors a stored config may name: the allowlist that keeps loading safe.

:func:`restore.load_model` rebuilds a network from the config stored in a weights file with
``hydra.utils.instantiate``, which imports and calls whatever ``_target_`` names. A file from
elsewhere must not run code, so every ``_target_`` in a stored config (nested ones included) must
be one of :data:`TRUSTED_NETWORKS` or a name a user registered with :func:`register_network`;
:func:`restore.checkpoint.check_net_config` refuses anything else before anything is built.

Adding a network of the toolkit: add its dotted constructor name(s) (the net and its block) to
:data:`TRUSTED_NETWORKS` below.
"""

from __future__ import annotations

import re
from typing import Any, Callable, TypeVar

__all__ = ["TRUSTED_NETWORKS", "register_network", "is_trusted_target", "trusted_targets"]

#: Dotted names of the toolkit's network and block constructors that stored configs may name.
TRUSTED_NETWORKS: tuple[str, ...] = (
    "restore.models.unet.RestorationUNet",
    "restore.models.nafnet.NAFBlock",
    "restore.models.convnext.ConvNeXtBlock",
    "restore.models.inceptionnext.InceptionNeXtBlock",
    "restore.models.unireplknet.UniRepLKNetBlock",
    "restore.models.baryir.BaryIRNet",
    "restore.models.deeprft.DeepRFTNet",
    "restore.models.deeprft.ResFFTBlock",
)

_registered: set[str] = set()
_DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")

T = TypeVar("T", bound=Callable[..., Any])


def register_network(target: str | T) -> str | T:
    """Allow stored configs to name one of your own network (or block) constructors.

    Only register code you trust: a registered name may be imported and called by any weights
    file that names it (with the arguments the file gives).

    Args:
        target: the dotted name a config's ``_target_`` uses (``"mypkg.nets.MyNet"``), or the
            class/function itself (its ``__module__.__qualname__`` is registered: configs must use
            that name), so it also works as a decorator::

                @restore.register_network
                class MyNet(nn.Module): ...

    Returns:
        ``target`` unchanged.

    Raises:
        ValueError: not a dotted name (``"pkg.module.Name"``), or a function defined inside another one.
    """
    if isinstance(target, str):
        name = target
    else:
        name = f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}"
    if not _DOTTED_NAME.match(name):
        raise ValueError(f"register_network needs a dotted name like 'mypkg.nets.MyNet' or a module-level "
                         f"class/function, got {target!r}")
    _registered.add(name)
    return target


def is_trusted_target(target: Any) -> bool:
    """True when ``target`` is a string naming a toolkit network/block or a registered one."""
    return isinstance(target, str) and (target in TRUSTED_NETWORKS or target in _registered)


def trusted_targets() -> list[str]:
    """Every name a stored config may use now (toolkit's, then registered), for error messages."""
    return list(TRUSTED_NETWORKS) + sorted(_registered - set(TRUSTED_NETWORKS))
