"""The package's public names (restore.__all__) exist and are documented."""

from __future__ import annotations

import inspect

import pytest

import restore


@pytest.mark.parametrize("name", restore.__all__)
def test_every_public_name_is_documented(name):
    obj = getattr(restore, name)  # deblur_semiblind is imported on first use, through the module's __getattr__
    if inspect.isfunction(obj) or inspect.isclass(obj):
        assert inspect.getdoc(obj), f"restore.{name} has no docstring"
    else:
        assert name == "__version__" and isinstance(obj, str)
