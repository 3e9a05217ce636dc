"""Generic, exact HDF5 round trip of result dataclasses.

:func:`write_dataclass` stores any dataclass whose fields are NumPy arrays,
scalars (bool, int, float), strings, ``None``, nested dataclasses or tuples of
dataclasses into an :class:`h5py.Group`; :func:`read_dataclass` rebuilds the
same object from the class's type hints. Arrays become datasets (dtype and
shape preserved, empty arrays included), scalars and strings become
attributes, a nested dataclass becomes a sub-group, a tuple of dataclasses a
sub-group with members ``0, 1, ...``. Floating values round-trip bit for bit.

This module knows no particular result type, so :mod:`hpcsys.io` stays a leaf:
callers pass the class to rebuild.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

import h5py
import numpy as np

__all__ = ["SerializationError", "read_dataclass", "write_dataclass"]

T = TypeVar("T")

_KIND = "__kind__"
_NONE = "__none__"
_LENGTH = "__length__"
_STR_DTYPE = h5py.string_dtype("utf-8")


class SerializationError(ValueError):
    """A value cannot be stored, or a stored group does not match the class to rebuild."""


def _compression(arr: np.ndarray, min_bytes: int) -> dict[str, Any]:
    if arr.nbytes >= min_bytes and arr.ndim >= 1 and arr.size > 0 and arr.dtype.kind in "biuf":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    return {}


def write_dataclass(group: h5py.Group, obj: Any, *, compress_min_bytes: int = 1 << 16) -> None:
    """Store the dataclass instance ``obj`` into ``group``.

    Parameters
    ----------
    group : h5py.Group
        Destination (usually empty).
    obj : dataclass instance
        Fields may be ndarrays, bool/int/float (NumPy scalars too), str, None,
        dataclasses, or tuples/lists of dataclasses.
    compress_min_bytes : int
        Arrays at least this large are stored gzip-compressed (lossless).

    Raises
    ------
    SerializationError
        A field holds a value of an unsupported type (named in the message).
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise SerializationError(f"expected a dataclass instance, got {type(obj).__name__}")
    group.attrs[_KIND] = "dataclass"
    group.attrs["__class__"] = type(obj).__qualname__
    nones = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        _write_value(group, f.name, value, nones, compress_min_bytes, type(obj).__qualname__)
    if nones:
        group.attrs[_NONE] = np.array(nones, dtype=_STR_DTYPE)


def _write_value(group: h5py.Group, name: str, value: Any, nones: list[str], cmin: int,
                 owner: str) -> None:
    if value is None:
        nones.append(name)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        write_dataclass(group.create_group(name), value, compress_min_bytes=cmin)
    elif isinstance(value, (tuple, list)) and value and all(
        dataclasses.is_dataclass(v) and not isinstance(v, type) for v in value
    ):
        sub = group.create_group(name)
        sub.attrs[_KIND] = "sequence"
        sub.attrs[_LENGTH] = len(value)
        for i, item in enumerate(value):
            write_dataclass(sub.create_group(str(i)), item, compress_min_bytes=cmin)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind in "OUS":
            group.create_dataset(name, data=value.astype(object), dtype=_STR_DTYPE)
        else:
            group.create_dataset(name, data=value, **_compression(value, cmin))
    elif isinstance(value, str):
        group.attrs[name] = value
    elif isinstance(value, (bool, np.bool_)):
        group.attrs[name] = np.bool_(value)
    elif isinstance(value, (int, np.integer)):
        group.attrs[name] = np.int64(value)
    elif isinstance(value, (float, np.floating)):
        group.attrs[name] = np.float64(value)
    elif isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
        sub = group.create_dataset(name, data=np.array(list(value), dtype=object),
                                   dtype=_STR_DTYPE)
        sub.attrs[_KIND] = "str_tuple"
    elif isinstance(value, (tuple, list)) and all(
        isinstance(v, (int, float, np.number)) for v in value
    ):
        sub = group.create_dataset(name, data=np.asarray(value))
        sub.attrs[_KIND] = "number_tuple"
    else:
        raise SerializationError(
            f"{owner}.{name}: cannot store a value of type {type(value).__name__}"
        )


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def read_dataclass(group: h5py.Group, cls: type[T], *, skip: frozenset[str] = frozenset()) -> T:
    """Rebuild an instance of ``cls`` stored by :func:`write_dataclass`.

    Parameters
    ----------
    group : h5py.Group
    cls : dataclass type
        The class that was stored (nested classes are found from its type hints).
    skip : set of str
        Array fields (at any depth) not to read: they become empty arrays, e.g.
        per-pixel maps when only summaries are needed.

    Raises
    ------
    SerializationError
        A field of ``cls`` is missing from the group (names the field and group).
    """
    if not dataclasses.is_dataclass(cls):
        raise SerializationError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    nones = set(_as_str_list(group.attrs.get(_NONE, [])))
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in nones:
            values[f.name] = None
            continue
        tp = _strip_optional(hints[f.name])
        if f.name in skip and tp is np.ndarray:
            values[f.name] = np.empty(0)
            continue
        values[f.name] = _read_value(group, f.name, tp, skip)
    return cls(**values)


def _as_str_list(raw: Any) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in np.atleast_1d(raw)]


def _read_value(group: h5py.Group, name: str, tp: Any, skip: frozenset[str]) -> Any:
    where = f"{group.file.filename}:{group.name}/{name}"
    if name in group:
        node = group[name]
        if isinstance(node, h5py.Group):
            kind = node.attrs.get(_KIND)
            if kind == "sequence":
                inner = typing.get_args(tp)[0] if typing.get_args(tp) else None
                if inner is None or not dataclasses.is_dataclass(inner):
                    raise SerializationError(f"{where}: stored a sequence of dataclasses but "
                                             f"the field type is {tp!r}")
                n = int(node.attrs[_LENGTH])
                return tuple(read_dataclass(node[str(i)], inner, skip=skip) for i in range(n))
            if not dataclasses.is_dataclass(tp):
                raise SerializationError(f"{where}: stored a group but the field type is {tp!r}")
            return read_dataclass(node, tp, skip=skip)
        kind = node.attrs.get(_KIND)
        if kind == "str_tuple":
            return tuple(_as_str_list(node[()]))
        if kind == "number_tuple":
            return tuple(node[()].tolist())
        if node.dtype.kind == "O" or h5py.check_string_dtype(node.dtype) is not None:
            return np.array(node.asstr()[()], dtype=str)
        return node[()] if node.shape != () else np.asarray(node[()])
    if name in group.attrs:
        raw = group.attrs[name]
        if tp is str:
            return raw.decode() if isinstance(raw, bytes) else str(raw)
        if tp is bool:
            return bool(raw)
        if tp is int:
            return int(raw)
        if tp is float:
            return float(raw)
        return raw.item() if isinstance(raw, np.generic) else raw
    raise SerializationError(f"{where}: missing (stored by an incompatible version?)")
