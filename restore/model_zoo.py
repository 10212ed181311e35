"""Pretrained models by name: the hook ``restore run --model NAME`` and :func:`restore.list_models` use.

No weights ship yet: :data:`PRETRAINED_MODELS` is empty until the model-zoo work adds files under
``restore/weights/`` (safetensors, loaded by :func:`restore.load_model` under the same allowlist
rules as any other file). Until then ``--model`` takes a path to a ``.ckpt`` or ``.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PRETRAINED_MODELS", "WEIGHTS_DIR", "MODEL_SUFFIXES", "UnknownModelError", "list_models",
           "resolve_model"]

#: Where shipped weights live, inside the package (no download at run time).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: name → file name under :data:`WEIGHTS_DIR`; one entry per shipped model (none yet).
PRETRAINED_MODELS: dict[str, str] = {}

#: Suffixes :func:`restore.load_model` reads.
MODEL_SUFFIXES = (".ckpt", ".safetensors")


class UnknownModelError(ValueError):
    """``--model`` / ``resolve_model`` got neither a model file nor the name of a shipped model."""


def list_models() -> list[str]:
    """Names of the pretrained models shipped with this install (sorted; empty for now)."""
    return sorted(PRETRAINED_MODELS)


def resolve_model(spec: str | Path) -> Path:
    """A model name or a weights path → the file to pass to :func:`restore.load_model`.

    Raises:
        FileNotFoundError: ``spec`` looks like a path (has a ``.ckpt``/``.safetensors`` suffix or a
            directory part) but no such file exists.
        UnknownModelError: ``spec`` is neither an existing file nor a shipped model's name; the
            message lists the names that exist.
    """
    path = Path(spec)
    if path.is_file():
        return path
    if str(spec) in PRETRAINED_MODELS:
        return WEIGHTS_DIR / PRETRAINED_MODELS[str(spec)]
    if path.suffix in MODEL_SUFFIXES or len(path.parts) > 1:
        raise FileNotFoundError(f"Model file not found: {spec}")
    names = ", ".join(list_models()) or "none are shipped with this version yet"
    raise UnknownModelError(f"Unknown model {str(spec)!r}: give a path to a .ckpt (from train.py) or a "
                            f".safetensors (from restore.export_model), or a pretrained model's name "
                            f"(restore.list_models(): {names})")
