"""Turn dataclass fields into command-line flags and parse `-p NAME VALUE` / YAML values.

One definition of every parameter (the config dataclass) serves papermill, the CLI and
YAML files, so they cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml

from maskdepth.core.errors import MaskdepthError


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: `1e-3` and `5E+2` are floats
    (YAML 1.1 wants a dot, `1.0e-3`, and PyYAML reads `1e-3` as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """YAML `text` with plain types only (never `!!python/...` objects); `1e-3` is a number."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def parse_value(text: str) -> Any:
    """'3' -> 3, '1e-3' -> 0.001, 'true' -> True, '{"a": 1}' -> dict, anything else stays a string."""
    try:
        return load_yaml(text)
    except yaml.YAMLError:
        return text


def parse_text(text: str, default: Any) -> Any:
    """A value given as text for a field with `default`: a text field keeps the text (`-p amp on`
    is "on", not YAML's true); any other field, or an unknown one, parses it (`parse_value`)."""
    return text if isinstance(default, str) else parse_value(text)


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
            if isinstance(value, bool):
                raise ValueError(value)  # YAML reads on/off/yes/no as booleans: text is written quoted
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


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """{field name: its documentation} read once from the dataclass's source: the comment lines
    right above a field and the comment at the end of its line, e.g.

        # Checkpoint selection uses the `seen` split only.
        best_metric: str = "seen.loss"  # SPLIT.METRIC

    Fields without a comment are left out; {} when the source is not available."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    layout = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in layout:
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    node = ast.parse(source).body[0]
    docs = {}
    for item in getattr(node, "body", []):
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
            continue
        above, line = [], item.lineno - 1
        while line in comments and line not in code_lines:
            above.insert(0, comments[line])
            line -= 1
        trailing = [comments[item.end_lineno]] if item.end_lineno in comments else []
        text = " ".join(t for t in above + trailing if t)
        if text:
            docs[item.target.id] = text
    return docs


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, (dict, list)):
        return json.dumps(default)
    return repr(default) if default == "" else str(default)


def add_dataclass_flags(
    parser: argparse.ArgumentParser,
    cls,
    *,
    choices: dict[str, Any] | None = None,
    flags: dict[str, str] | None = None,
    aliases: dict[str, list[str]] | None = None,
) -> None:
    """One `--field-name` flag per dataclass field; booleans get --x / --no-x.

    Help text: the field's comment in the class source (`field_docs`), then its default. `choices`: allowed values per field (argparse lists and checks them).
    `flags`: another flag name for a field (e.g. out_dir -> --out); `aliases`: more names
    for a field, accepted but hidden from --help (kept for old command lines)."""
    choices = choices or {}
    flags, aliases = flags or {}, aliases or {}
    docs = field_docs(cls)
    for name, default in field_defaults(cls).items():
        flag = flags.get(name, "--" + name.replace("_", "-"))
        doc = docs.get(name, "")
        text = (f"{doc} " if doc else "").replace("%", "%%") + f"(default: {_shown(default).replace('%', '%%')})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
            for alias in aliases.get(name, []):
                parser.add_argument(alias, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                    help=argparse.SUPPRESS)
            continue
        allowed = tuple(choices[name]) if name in choices else None
        metavar = None if allowed else name.upper()
        parser.add_argument(flag, dest=name, default=None, metavar=metavar, choices=allowed, help=text)
        for alias in aliases.get(name, []):
            parser.add_argument(alias, dest=name, default=None, metavar=metavar, choices=allowed,
                                help=argparse.SUPPRESS)


def dataclass_values(args: argparse.Namespace, cls) -> dict:
    """The flags the user actually gave, coerced to the field types."""
    out = {}
    for name, default in field_defaults(cls).items():
        value = getattr(args, name, None)
        if value is None:
            continue
        out[name] = coerce(name, parse_text(value, default) if isinstance(value, str) else value, default)
    return out


def read_params_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MaskdepthError(f"parameter file {path}: no such file")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MaskdepthError(f"parameter file {path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise MaskdepthError(f"parameter file {path}: expected a mapping NAME: VALUE at the top level")
    return data
