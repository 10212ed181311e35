"""Pretrained models by name: ``restore.load_model("denoise_color")``, ``restore run --model NAME``.

The weights ship inside the package (``restore/weights/<name>.safetensors``, no download at run time)
and load through :func:`restore.load_model` under the same allowlist rules as any other file. Each has
a model card beside it: ``<name>.json`` (recipe, training data and machine, metrics with their
protocol, params/MACs; :func:`model_card`) and ``<name>.md`` (the same, for people). The cards are
written by ``benchmarks/model_zoo.py build`` from the training runs and an ``eval.py`` run on the
shipped file; ``benchmarks/model_zoo.py check`` and tests/test_model_zoo.py reproduce them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from restore.errors import UnknownModelError

__all__ = ["PRETRAINED_MODELS", "WEIGHTS_DIR", "MODEL_SUFFIXES", "UnknownModelError", "list_models",
           "model_card", "model_card_warning", "shipped_digest", "resolve_model"]

log = logging.getLogger(__name__)

#: Where shipped weights live, inside the package (no download at run time).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: name → file name under :data:`WEIGHTS_DIR`; one entry per shipped model (cards: ``<name>.json``).
PRETRAINED_MODELS: dict[str, str] = {
    "denoise_color": "denoise_color.safetensors",
    "denoise_gray": "denoise_gray.safetensors",
    "deblur_fke": "deblur_fke.safetensors",
    "allinone_baryir": "allinone_baryir.safetensors",
    # MIR-L's iterative magnitude pruning of the all-in-one recipe, ~10 % of the weights (restore-sparse)
    "allinone_baryir_pruned": "allinone_baryir_pruned.safetensors",
}

#: Suffixes :func:`restore.load_model` reads.
MODEL_SUFFIXES = (".ckpt", ".safetensors")


def list_models() -> list[str]:
    """Names of the pretrained models shipped with this install (sorted)."""
    return sorted(PRETRAINED_MODELS)


def model_card(name: str) -> dict:
    """A shipped model's card (``restore/weights/<name>.json``): recipe, data, machine, metrics, size.

    Raises:
        UnknownModelError: ``name`` is not a shipped model (the message lists those that are).
    """
    if name not in PRETRAINED_MODELS:
        raise UnknownModelError(f"Unknown model {name!r}; shipped: {', '.join(list_models())}")
    return json.loads((WEIGHTS_DIR / f"{name}.json").read_text())


def _card_beside(path: Path) -> dict | None:
    """The card of a shipped weights file (``<name>.json`` beside it in :data:`WEIGHTS_DIR`), else None."""
    path = path.resolve()
    card = path.with_suffix(".json")
    if path.parent != WEIGHTS_DIR or not card.is_file():
        return None
    return json.loads(card.read_text())


def model_card_warning(path: Path) -> str | None:
    """The ``warning`` of the card beside a shipped weights file (an undertrained model), if any."""
    card = _card_beside(Path(path))
    return card.get("warning") if card else None


def shipped_digest(path: Path) -> str | None:
    """The weights digest a shipped file's card records (:func:`restore.weights_io.weights_digest`),
    or None for any other file; loading checks the file against it."""
    card = _card_beside(Path(path))
    return card.get("digest") if card else None


def resolve_model(spec: str | os.PathLike) -> Path:
    """A model name or a weights path → the file to pass to :func:`restore.load_model`.

    The rule for a name that is also a file: a ``str`` that is exactly a shipped model's name means
    that model, always (what ``load_model("denoise_color")`` loads must not depend on the files in
    the working folder); a file of that name is not used, with a warning that says how to load it:
    as a path, ``"./denoise_color"`` (a directory part) or a ``pathlib.Path``. Any other spec is a path.

    Raises:
        FileNotFoundError: ``spec`` looks like a path (has a ``.ckpt``/``.safetensors`` suffix or a
            directory part) but no such file exists.
        UnknownModelError: ``spec`` is neither an existing file nor a shipped model's name; the
            message lists the names that exist.
    """
    if isinstance(spec, str) and spec in PRETRAINED_MODELS:
        if os.path.lexists(spec):
            log.warning("%r is the name of a shipped model, which is what is loaded; the file %r in the working "
                        "folder is not used (to load it, give it as a path: './%s')", spec, spec, spec)
        return WEIGHTS_DIR / PRETRAINED_MODELS[spec]
    path = Path(spec)
    if path.is_file():
        return path
    looks_like_path = path.suffix in MODEL_SUFFIXES or len(path.parts) > 1 or "/" in str(spec) or os.sep in str(spec)
    if looks_like_path or str(spec) in PRETRAINED_MODELS:
        hint = (f" (a path means a file; for the shipped model, pass its name as a string: {str(spec)!r})"
                if str(spec) in PRETRAINED_MODELS else "")
        raise FileNotFoundError(f"Model file not found: {spec}{hint}")
    names = ", ".join(list_models()) or "none are shipped with this version yet"
    raise UnknownModelError(f"Unknown model {str(spec)!r}: give a path to a .ckpt (from train.py) or a "
                            f".safetensors (from restore.export_model), or a pretrained model's name "
                            f"(restore.list_models(): {names})")
