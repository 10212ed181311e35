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
import textwrap
from pathlib import Path
from typing import Any

from restore.errors import UnknownModelError

__all__ = ["PRETRAINED_MODELS", "WEIGHTS_DIR", "MODEL_SUFFIXES", "UnknownModelError", "ModelCard", "list_models",
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


class ModelCard(dict):
    """A shipped model's card: the dict of its JSON (``card["metrics"]``, ``json.dumps(card)``), each key also an
    attribute (``card.task``), printed as a short summary (``print(card)``, the REPL and IPython show the same).

    The summary gives the name and task, the architecture, the size, the training data and recipe, and the test
    table (PSNR input → output and SSIM of the output under the card's first protocol, per test set and task);
    the full card is its keys.
    """

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"the model card of {self.get('name')!r} has no {key!r}; its keys: "
                                 f"{', '.join(self)}") from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {k for k in self if k.isidentifier()})

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython / Jupyter
        printer.text(self.summary())

    def summary(self, width: int = 120) -> str:
        """The card in a few lines (long texts shortened to ``width`` characters; the keys hold them whole)."""

        def field(label: str, text: Any) -> str:
            return f"  {label:<14}{textwrap.shorten(str(text), width - 16, placeholder=' …')}"

        lines = [textwrap.shorten(f"{self.get('name', '?')}: {self.get('task', '')}".rstrip(": "), width,
                                  placeholder=" …")]
        net = self.get("net_config") or {}
        if net:
            lines.append(field("architecture", _architecture(net)))
        if "params" in self:
            size = f"{self['params'] / 1e6:.2f}M params"
            if self.get("nonzero_params", self["params"]) != self["params"]:
                size += f" ({self['nonzero_params'] / 1e6:.2f}M non-zero)"
            if "gmacs_256" in self:
                size += f", {self['gmacs_256']:.2f} GMACs at 256²"
            if "file_bytes" in self:
                size += f", {self['file_bytes'] / 2**20:.1f} MiB file"
            lines.append(field("size", size))
        if "training_data" in self:
            lines.append(field("training data", self["training_data"]))
        recipe = self.get("recipe") or {}
        if recipe:
            steps = f" ({recipe['steps']} steps)" if recipe.get("steps") else ""
            lines.append(field("recipe", f"experiment={recipe.get('experiment', '?')}{steps}"))
        if self.get("warning"):
            lines.append(field("warning", self["warning"]))
        if self.get("metrics"):
            lines.append("  test results  PSNR in → out (dB), SSIM out; the first metric protocol (all: card.metrics)")
            for test_set, per_task in self["metrics"].items():
                if list(per_task) == ["all"]:  # one row per test set
                    rows = [(test_set, per_task["all"])]
                else:  # the test set's name, then one row per task
                    lines.append(f"    {test_set}")
                    rows = [(f"  {task}", m) for task, m in per_task.items()]
                for label, m in rows:
                    psnr, ssim = m.get("psnr", {}), m.get("ssim", {})
                    lines.append(f"    {label:<26}{psnr.get('input', float('nan')):6.2f} → "
                                 f"{psnr.get('output', float('nan')):6.2f}   {ssim.get('output', float('nan')):.4f}")
        if self.get("papers"):
            lines.append(field("papers", self["papers"]))
        return "\n".join(lines)


def _architecture(net_config: dict) -> str:
    """``RestorationUNet (NAFBlock), width 32, 3 channels`` from a network's Hydra config."""
    name = str(net_config.get("_target_", "?")).rsplit(".", 1)[-1]
    block = net_config.get("block")
    if isinstance(block, dict) and block.get("_target_"):
        name += f" ({str(block['_target_']).rsplit('.', 1)[-1]})"
    details = [f"{key.replace('_', ' ')} {net_config[key]}" for key in ("width", "in_channels") if key in net_config]
    return ", ".join([name, *details])


def model_card(name: str) -> ModelCard:
    """A shipped model's card (``restore/weights/<name>.json``): recipe, data, machine, metrics, size, as a
    :class:`ModelCard` (a dict that prints as a short summary).

    Raises:
        UnknownModelError: ``name`` is not a shipped model (the message lists those that are).
    """
    if name not in PRETRAINED_MODELS:
        raise UnknownModelError(f"Unknown model {name!r}; shipped: {', '.join(list_models())}")
    return ModelCard(json.loads((WEIGHTS_DIR / f"{name}.json").read_text()))


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
