"""restore.errors: each exception class is defined once; the old import paths name the same class."""

from __future__ import annotations

import inspect

import pytest

import restore.checkpoint
import restore.errors
import restore.inference
import restore.lightning
import restore.model_zoo
import restore.utils.config
from restore.errors import NonFiniteOutputError


@pytest.mark.parametrize("module, name", [
    (restore.checkpoint, "UnsafeCheckpointError"), (restore.checkpoint, "NonFiniteWeightsError"),
    (restore.checkpoint, "MissingNetConfigError"), (restore.model_zoo, "UnknownModelError"),
    (restore.inference, "NonFiniteOutputError"), (restore.lightning, "NonFiniteOutputError"),
    (restore.lightning, "CheckpointReadError"), (restore.utils.config, "ConfigError"),
])
def test_old_import_paths_give_the_one_class(module, name):
    assert getattr(module, name) is getattr(restore.errors, name)


def test_non_finite_output_is_caught_as_either_of_its_former_bases():
    # restore_image raised a RuntimeError, the training module a FloatingPointError: both excepts still work
    assert issubclass(NonFiniteOutputError, FloatingPointError) and issubclass(NonFiniteOutputError, RuntimeError)


def test_no_exception_class_is_defined_outside_the_errors_module_twice():
    import pkgutil

    import restore

    seen: dict[str, str] = {}
    for info in pkgutil.walk_packages(restore.__path__, "restore."):
        if info.name in ("restore.__main__", "restore.models.summary"):
            continue
        module = __import__(info.name, fromlist=["_"])
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                assert name not in seen, f"{name} is defined in {seen[name]} and {info.name}"
                seen[name] = info.name
