"""Result records of the C++ library as dataclass-like Python objects.

Every result class of :mod:`emergent._core` carries a ``_fields`` tuple (set where it is bound,
python/src/results.cpp and bounds.cpp); this module gives all of them ``to_dict()`` (JSON-ready:
enums become their names, arrays lists, nested records dicts) and a ``__repr__`` that lists the
fields, as a dataclass would.
"""
from __future__ import annotations

import enum
from typing import Any

import numpy as np

from . import _core


def to_plain(value: Any) -> Any:
    """A JSON-ready copy of a record, list, enum or array."""
    if hasattr(type(value), "_fields"):
        return {name: to_plain(getattr(value, name)) for name in type(value)._fields}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _to_dict(self) -> dict:
    """The record as a dict of plain Python values (JSON-serialisable)."""
    return to_plain(self)


def _repr(self) -> str:
    parts = []
    for name in type(self)._fields:
        v = getattr(self, name)
        if isinstance(v, list) and len(v) > 3:
            parts.append(f"{name}=[... {len(v)} items]")
        elif isinstance(v, np.ndarray) and v.size > 6:
            parts.append(f"{name}=<array {v.shape}>")
        elif isinstance(v, enum.Enum):
            parts.append(f"{name}={v.name}")
        else:
            parts.append(f"{name}={v!r}")
    return f"{type(self).__name__}({', '.join(parts)})"


def _install() -> None:
    for name in dir(_core):
        cls = getattr(_core, name)
        if isinstance(cls, type) and hasattr(cls, "_fields"):
            cls.to_dict = _to_dict
            cls.__repr__ = _repr


_install()
