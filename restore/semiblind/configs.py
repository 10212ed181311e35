"""One way from a user's overrides to a settings object of the semi-blind pipeline (the frozen dataclasses
``KernelRefinementConfig``, ``TVConfig``, ``PnPConfig``, ``DRPConfig``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass, replace
from typing import Any, TypeVar

__all__ = ["with_overrides"]

C = TypeVar("C")


def with_overrides(base: C, overrides: C | Mapping[str, Any] | None) -> C:
    """``base`` with ``overrides`` applied: None → ``base``; an object of base's class → itself; a mapping → a
    copy of ``base`` with those fields replaced.

    Raises:
        TypeError: an unknown field (the known ones are listed) or an override of the wrong kind.
    """
    cls = type(base)
    if overrides is None:
        return base
    if isinstance(overrides, cls):
        return overrides
    if not isinstance(overrides, Mapping) or not is_dataclass(base):
        raise TypeError(f"expected a {cls.__name__} or a dict of its fields, got {type(overrides).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown {cls.__name__} option(s) {sorted(unknown)}; known: {sorted(known)}")
    return replace(base, **overrides)
