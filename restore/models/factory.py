"""Architectures by name: ``restore.create_model("unireplknet_tiny", width=32)``, ``restore.list_architectures()``.

As timm's ``create_model`` / ``list_models`` beside ``list_pretrained``: an architecture is a network
config ``configs/model/net/<name>.yaml`` (the ones ``train.py`` uses as ``model/net=<name>``), built
with random weights; trained weights come by name from :func:`restore.load_model` /
:func:`restore.list_models`.

The net configs live in the repository's ``configs/`` folder, not inside the package:
``pip install -e <checkout>`` (the README's install) finds them beside the package; an install
without the checkout finds them through ``$PROJECT_ROOT`` (the checkout) or ``./configs``, and
otherwise :func:`create_model` raises :class:`ConfigsNotFoundError` naming where it looked.
Loading a model file or a shipped model never needs them (the file stores its network's config).
"""

from __future__ import annotations

import difflib
import inspect
import os
from pathlib import Path
from typing import Any, Sequence

from restore.errors import ConfigsNotFoundError, UnknownArchitectureError

__all__ = ["create_model", "list_architectures", "compose_net_config", "find_configs_dir", "ConfigsNotFoundError",
           "UnknownArchitectureError"]


def find_configs_dir() -> Path:
    """The repository's ``configs/``: ``$PROJECT_ROOT/configs``, beside the package, or ``./configs``.

    Raises:
        ConfigsNotFoundError: none of them has ``model/net/`` (the message names each place looked in).
    """
    candidates = []
    if os.environ.get("PROJECT_ROOT"):
        candidates.append(Path(os.environ["PROJECT_ROOT"]) / "configs")
    candidates += [Path(__file__).resolve().parents[2] / "configs", Path.cwd() / "configs"]
    for c in candidates:
        if (c / "model" / "net").is_dir():
            return c
    raise ConfigsNotFoundError(
        f"no configs/model/net/ folder in {', '.join(str(c) for c in candidates)}: architectures by name come from "
        "the repository's configs, which this install does not have. Set PROJECT_ROOT to a checkout of the "
        "repository (or install it with `pip install -e <checkout>`); model files and restore.list_models() "
        "load without them")


def list_architectures() -> list[str]:
    """Names :func:`create_model` builds: every ``configs/model/net/*.yaml``, sorted."""
    return sorted(p.stem for p in (find_configs_dir() / "model" / "net").glob("*.yaml"))


def compose_net_config(name: str, overrides: Sequence[str] = ()) -> dict:
    """``configs/model/net/<name>.yaml`` composed by Hydra (its defaults list applied, ``overrides`` such as
    ``width=8``), as a plain dict: what a network config means, e.g. to build or export it.

    Raises:
        UnknownArchitectureError: no such config (the message lists close matches).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    _check_name(name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(find_configs_dir() / "model" / "net"), version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides))
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg, resolve=True)


def create_model(name: str, **overrides: Any):
    """Build the architecture ``name`` (``configs/model/net/<name>.yaml``) with random weights.

    Args:
        name: one of :func:`list_architectures`, e.g. ``"unireplknet_tiny"``, ``"nafnet_base"``.
        **overrides: settings replacing the config's, as keyword arguments: ``width=32``,
            ``in_channels=1``; nested ones as mappings, merged into the config's
            (``block={"conv_impl": "fft"}``). Any argument of the network's constructor is
            accepted, also one the config leaves at its default.

    Returns:
        the network (``nn.Module``, training mode); ``net.net_config`` holds the config it was built
        from, so :func:`restore.export_model` writes it without ``net_config=``.

    Raises:
        UnknownArchitectureError: an unknown name or setting (the message lists close matches).
        ConfigsNotFoundError: the repository's ``configs/`` folder is not there (see the module docstring).
    """
    from hydra.utils import get_object, instantiate
    from omegaconf import OmegaConf

    config = compose_net_config(name)
    known = {k for k in config if not k.startswith("_")} | _constructor_arguments(get_object(config["_target_"]))
    for key in overrides:
        if key not in known and "**" not in known:
            raise UnknownArchitectureError(f"create_model({name!r}): {config['_target_']} has no setting {key!r}"
                                           f"{_did_you_mean(key, known)}; its settings: {', '.join(sorted(known))}")
    config = OmegaConf.to_container(OmegaConf.merge(config, overrides), resolve=True)
    net = instantiate(config)
    net.net_config = config
    return net


def _check_name(name: str) -> None:
    names = list_architectures()
    if name not in names:
        raise UnknownArchitectureError(f"unknown architecture {name!r}{_did_you_mean(name, names)}; "
                                       f"restore.list_architectures(): {', '.join(names)}")


def _did_you_mean(word: str, choices: Sequence[str] | set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=3)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


def _constructor_arguments(target: Any) -> set[str]:
    """Keyword arguments ``target`` takes; ``"**"`` among them when it takes any (``**kwargs``)."""
    params = inspect.signature(target).parameters.values()
    return {"**" if p.kind is p.VAR_KEYWORD else p.name for p in params if p.kind is not p.VAR_POSITIONAL}
