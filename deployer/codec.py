"""JSON documents for the state store: versioned, validated on read.

Every document is a JSON object ``{"schema_version": N, "document": "<type>", ...fields}``.
Reading checks the version and type and rebuilds the dataclass field by field from its type
hints, so a document of the wrong shape fails loudly as ``StateCorrupt`` naming the document,
instead of surfacing later as an AttributeError in the pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from deployer.errors import StateCorrupt

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})

T = TypeVar("T")


def kind_of(cls: type) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in cls.__name__).lstrip("_")


def dumps(obj: Any) -> bytes:
    doc = {"schema_version": SCHEMA_VERSION, "document": kind_of(type(obj)), **to_data(obj)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def loads(cls: type[T], body: bytes, *, where: str) -> T:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise StateCorrupt(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise StateCorrupt(f"{where} is not a JSON object")
    version = doc.pop("schema_version", None)
    if version not in SUPPORTED_VERSIONS:
        raise StateCorrupt(
            f"{where} has schema_version {version!r}; this deployer reads {sorted(SUPPORTED_VERSIONS)}",
            hint="upgrade the deployer, or restore the document from its history",
        )
    kind = doc.pop("document", None)
    if kind != kind_of(cls):
        raise StateCorrupt(f"{where} is a {kind!r} document, expected {kind_of(cls)!r}")
    try:
        return typing.cast(T, _decode(cls, doc))
    except (TypeError, ValueError, KeyError) as exc:
        raise StateCorrupt(f"{where} does not match the {kind_of(cls)} schema: {exc}") from exc


def loads_data(cls: type[T], data: Any, *, where: str = "a checkpoint") -> T | None:
    """A dataclass from plain data written by ``to_data`` (None stays None)."""
    if data is None:
        return None
    try:
        return typing.cast(T, _decode(cls, data))
    except (TypeError, ValueError, KeyError) as exc:
        raise StateCorrupt(f"{where} does not match the {kind_of(cls)} schema: {exc}") from exc


def to_data(obj: Any) -> Any:
    """Dataclasses, enums and datetimes as plain JSON-ready data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, (list, tuple)):
        return [to_data(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    return obj


def _decode(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _decode(inner[0], value)
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TypeError(f"{tp.__name__} must be an object")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _decode(hints[f.name], value[f.name])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KeyError(f"{tp.__name__}.{f.name} is missing")
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    if tp is datetime:
        if not isinstance(value, str):
            raise TypeError("timestamps must be strings")
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no time zone")
        return parsed
    if origin is tuple:
        (item, *_rest) = typing.get_args(tp)
        return tuple(_decode(item, v) for v in _list(value))
    if origin is list:
        return [_decode(typing.get_args(tp)[0], v) for v in _list(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError("expected an object")
        _, vt = typing.get_args(tp)
        return {k: _decode(vt, v) for k, v in value.items()}
    if tp in (str, int, float, bool):
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise TypeError(f"expected {tp.__name__}, got {type(value).__name__}")
        return value
    raise TypeError(f"cannot decode {tp!r}")


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value
