"""Composing the train config into a chosen run folder (module-scoped fixtures cannot use `compose`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import compose_config  # noqa: E402


def compose_into(output_dir: Path, overrides: list[str]):
    return compose_config("train", overrides, output_dir)
