"""Fixtures of the pruning tests: composing the train config into a chosen run folder (the root
conftest's ``compose`` fixture is function-scoped; a finished run is shared by a whole module)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("_restore_root_conftest", Path(__file__).parents[1] / "conftest.py")
_root_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root_conftest)


@pytest.fixture(scope="session")
def compose_into():
    """``compose_into(run_folder, overrides)`` → the composed train config writing into ``run_folder``."""

    def _compose(output_dir: Path, overrides: list[str]):
        return _root_conftest.compose_config("train", overrides, output_dir)

    return _compose
