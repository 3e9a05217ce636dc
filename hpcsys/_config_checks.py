"""Building blocks of :mod:`hpcsys.config`: the error type, field declarations, value checks.

:class:`ConfigError` is the one error of a bad configuration (re-exported by
:mod:`hpcsys.config`); ``_param`` declares a config field with its default,
documentation and value check; the ``_positive``, ``_one_of``, ... factories
are the checks (each returns ``None`` or the reason a value is refused);
``_coerce`` turns a YAML value into the annotated type or raises
:class:`ConfigError` naming the key. A leaf: imports nothing from :mod:`hpcsys`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any

import yaml

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range.

    The message is one line and starts with the dotted key (or the file name).
    """

    # public home (docs, pickling by reference, reprs): hpcsys.config re-exports it
    __module__ = "hpcsys.config"


# --------------------------------------------------------------------------- checks


def _param(default: Any, doc: str, check: Callable[[Any], str | None] | None = None) -> Any:
    """Declare a config field with its default, documentation and value check."""
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults")
    return field(default=default, metadata={"doc": doc, "check": check})


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be > 0, got {v}"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else f"must be >= 0, got {v}"


def _fraction(v: float) -> str | None:
    return None if 0 <= v < 1 else f"must be in [0, 1), got {v}"


def _open_unit(v: float) -> str | None:
    return None if 0 < v < 1 else f"must be in (0, 1), got {v}"


def _power_of_two(v: int) -> str | None:
    if v < 1 or v > 8192 or v & (v - 1):
        return f"must be a power of two between 1 and 8192, got {v}"
    return None


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}; got {v!r}"

    return check


def _subset_of(choices: tuple[str, ...]) -> Callable[[tuple[str, ...]], str | None]:
    def check(v: tuple[str, ...]) -> str | None:
        if len(v) == 0:
            return "must name at least one entry"
        bad = [x for x in v if x not in choices]
        if bad:
            return f"unknown entries {bad}; choose from {', '.join(choices)}"
        if len(set(v)) != len(v):
            return f"entries must be unique, got {list(v)}"
        return None

    return check


def _optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    return lambda v: None if v is None else check(v)


def _at_least(n: int) -> Callable[[int], str | None]:
    return lambda v: None if v >= n else f"must be >= {n}, got {v}"


def _greater_than(x: float) -> Callable[[float], str | None]:
    return lambda v: None if v > x else f"must be > {x}, got {v}"


# --------------------------------------------------------------------------- coercion


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Coerce a YAML value to the annotated type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(key, value, a)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            if args and args[-1] is Ellipsis and not isinstance(value, (list, tuple, dict)):
                value = [value]  # a scalar where a list is expected: a one-element list
            else:
                raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(f"{key}[{i}]", v, inner) for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()
        ):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (YAML says keys are
    unique; PyYAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key]})",
                    key_node.start_mark)
            try:
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # unhashable key: let PyYAML report it
                pass
        return super().construct_mapping(node, deep=deep)


# --------------------------------------------------------------------------- sections


def _build_section(name: str, cls: type, raw: Mapping[str, Any] | None) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields_ = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields_))
    if unknown:
        raise ConfigError(
            f"{name}.{unknown[0]}: unknown key; valid keys of '{name}' are "
            f"{', '.join(fields_)}"
        )
    if name == "run" and isinstance(raw.get("scenarios"), list):
        # Unquoted YAML ``null`` reads as None: in a list of scenario names it can
        # only mean the uncontaminated "null" scenario.
        raw = {**raw, "scenarios": ["null" if s is None else s for s in raw["scenarios"]]}
    values = {}
    for fname, f in fields_.items():
        key = f"{name}.{fname}"
        value = _coerce(key, raw[fname], hints[fname]) if fname in raw else f.default
        check = f.metadata.get("check")
        if check is not None and value is not None:
            msg = check(value)
            if msg:
                raise ConfigError(f"{key}: {msg}")
        values[fname] = value
    return cls(**values)
