"""Typed, validated YAML configs.

Each YAML file maps onto one dataclass. :func:`load_config` reads the file and
:func:`from_mapping` converts a plain mapping into the dataclass, checking that

* every key is a field of the dataclass (unknown keys are typos, never ignored),
* every value has the annotated type (``int``, ``float``, ``str``, ``bool``, ``Literal``,
  ``X | None``, ``list[X]``, ``dict[str, X]`` and nested dataclasses), and
* numbers lie within the bounds declared in the field metadata (``ge``, ``gt``, ``le``, ``lt``),
* the dataclass's own ``check()`` method, if any, passes (cross-field rules).

Every failure raises :class:`~utils.errors.ConfigError` naming the file, the dotted key and
the offending value.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from utils.errors import ConfigError

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: PyYAML (YAML 1.1) reads ``1e-4`` as the string '1e-4'."""


_Loader.add_implicit_resolver(  # the copy on the subclass leaves yaml.SafeLoader as it is
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


_BOUNDS = {
    "ge": (lambda v, b: v >= b, ">="),
    "gt": (lambda v, b: v > b, ">"),
    "le": (lambda v, b: v <= b, "<="),
    "lt": (lambda v, b: v < b, "<"),
}


def bounded(default: Any = dataclasses.MISSING, **bounds: float) -> Any:
    """Declare a dataclass field with numeric bounds (``ge``, ``gt``, ``le``, ``lt``).

    Examples
    --------
    >>> @dataclasses.dataclass
    ... class C:
    ...     lr: float = bounded(1e-3, gt=0)
    """
    unknown = set(bounds) - set(_BOUNDS)
    if unknown:
        raise TypeError(f"unknown bound(s) {sorted(unknown)}")
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=bounds)
    return dataclasses.field(default=default, metadata=bounds)


def _fail(source: str, key: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"{source}: key '{key}' = {value!r}: {why}")


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:  # noqa: C901 - one branch per type form
    origin = get_origin(tp)
    if tp is Any:
        return value
    if value is None and origin not in (typing.Union, types.UnionType):
        raise _fail(source, key, value, "a value is required (null is not allowed)")
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _fail(source, key, value, "a value is required (null is not allowed)")
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, source, key)
            except ConfigError as exc:
                errors.append(str(exc).rsplit(": ", 1)[-1])
        raise _fail(source, key, value, " or ".join(errors))
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise _fail(source, key, value, f"must be one of {list(choices)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise _fail(source, key, value, f"expected a mapping of {tp.__name__} fields")
        return from_mapping(tp, value, source=source, prefix=key)
    if origin is list:
        (item_tp,) = get_args(tp) or (Any,)
        if not isinstance(value, list | tuple):
            raise _fail(source, key, value, "expected a list")
        return [_convert(item_tp, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_tp, val_tp = get_args(tp) or (str, Any)
        if not isinstance(value, Mapping):
            raise _fail(source, key, value, "expected a mapping")
        return {
            _convert(key_tp, k, source, f"{key}.{k}"): _convert(val_tp, v, source, f"{key}.{k}")
            for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(source, key, value, "expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(source, key, value, "expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(source, key, value, "expected a number")
        return float(value)
    if tp is str:
        if isinstance(value, datetime.date):  # YAML reads an unquoted ISO date as a date: keep it as text
            return value.isoformat()
        if not isinstance(value, str):
            raise _fail(source, key, value, "expected a string")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} for '{key}'")


def _check_bounds(field: dataclasses.Field, value: Any, source: str, key: str) -> None:
    if value is None:
        return
    for name, bound in field.metadata.items():
        if name not in _BOUNDS:
            continue
        check, symbol = _BOUNDS[name]
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not check(item, bound):
                raise _fail(source, key, value, f"must be {symbol} {bound}")


def from_mapping(cls: type[T], data: Mapping[str, Any], source: str = "<config>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, validating keys, types and bounds.

    Parameters
    ----------
    cls : type
        A dataclass type whose fields carry type annotations.
    data : Mapping
        Raw values, typically parsed YAML.
    source : str
        Name of the file (or other origin) for error messages.
    prefix : str
        Dotted key path of ``data`` inside the file, for error messages.

    Returns
    -------
    cls
        The validated instance.

    Raises
    ------
    ConfigError
        On an unknown key, a missing required key, a wrong type or an out-of-range value.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at '{prefix or '<top>'}', got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    dotted = (prefix + ".") if prefix else ""
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{dotted}{unknown[0]}' = {data[unknown[0]]!r}; "
            f"valid keys here: {sorted(fields)}"
        )
    kwargs = {}
    for name, field in fields.items():
        key = dotted + name
        if name not in data:
            no_default = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if no_default:
                raise ConfigError(f"{source}: required key '{key}' is missing")
            continue
        value = _convert(hints[name], data[name], source, key)
        _check_bounds(field, value, source, key)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        try:
            check()
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return obj


def load_config(path: str | Path, cls: type[T], overrides: Mapping[str, Any] | None = None) -> T:
    """Load the YAML file ``path`` into dataclass ``cls``.

    Parameters
    ----------
    path : str or Path
        YAML file.
    cls : type
        Target dataclass.
    overrides : Mapping, optional
        Dotted keys (``"trainer.max_epochs"``) to values, applied before validation.

    Raises
    ------
    ConfigError
        When the file is missing, is not valid YAML, or fails validation.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = _yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value, str(path))
    return from_mapping(cls, data, source=str(path))


def registered(registry: Mapping[str, Any], name: str, kind: str | None, noun: str) -> Any:
    """``registry[name]`` when its ``kind`` matches (any kind when None); else a ``ConfigError`` listing the valid
    names (the losses and metrics that configs name: ``utils.loss_factory``, ``utils.metric_factory``)."""
    valid = sorted(n for n, entry in registry.items() if kind is None or entry.kind == kind)
    if name not in valid:
        raise ConfigError(f"unknown {f'{kind} {noun}' if kind else noun} {name!r}; valid: {valid}")
    return registry[name]


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: override '{dotted}': '{part}' is not a mapping")
        node = child
    node[last] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``--set key=value`` override; the value is read as YAML (``3``, ``true``, ``[1, 2]``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    return key.strip(), _yaml(raw)
