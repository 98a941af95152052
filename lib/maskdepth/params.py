"""Turn dataclass fields into command-line flags and parse `-p NAME VALUE` / YAML values.

One definition of every parameter (the config dataclass) serves papermill, the CLI and
YAML files, so they cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from maskdepth.errors import MaskdepthError


def parse_value(text: str) -> Any:
    """'3' -> 3, '1e-3' -> 0.001, 'true' -> True, '{"a": 1}' -> dict, anything else stays a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def coerce(name: str, value: Any, default: Any) -> Any:
    """Convert `value` to the type of the field's default, with an error naming the parameter."""
    if default is None or value is None:
        return value
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError(value)  # `-p epochs true` is no number (int(True) would be 1)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is dict:
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return value
        if kind is str:
            return str(value)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise MaskdepthError(f"parameter {name}={value!r}: expected {kind.__name__}") from None
    return value


def field_defaults(cls) -> dict[str, Any]:
    """{field name: default value} of a dataclass (default factories called)."""
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        for f in dataclasses.fields(cls)
    }


def add_dataclass_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One `--field-name` flag per dataclass field; booleans get --x / --no-x."""
    for name, default in field_defaults(cls).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None)
        else:
            shown = json.dumps(default) if isinstance(default, dict) else default
            parser.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=f"default: {shown}")


def dataclass_values(args: argparse.Namespace, cls) -> dict:
    """The flags the user actually gave, coerced to the field types."""
    out = {}
    for name, default in field_defaults(cls).items():
        value = getattr(args, name, None)
        if value is None:
            continue
        out[name] = coerce(name, parse_value(value) if isinstance(value, str) and not isinstance(default, str) else value, default)
    return out


def read_params_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MaskdepthError(f"parameter file {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MaskdepthError(f"parameter file {path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise MaskdepthError(f"parameter file {path}: expected a mapping NAME: VALUE at the top level")
    return data
