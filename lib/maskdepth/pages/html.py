"""What every page shares: the jinja2 environment that renders the templates in pages/templates/
(package data; page.html.j2 is the frame: one HTML file with its CSS inline, no script, font or
stylesheet from elsewhere), relative links (a run folder copied anywhere keeps its page) and the
small helpers both pages use. Every {{ value }} is escaped by `html.escape`, as the pages always
were; only a macro's output, which is HTML already, is written as it is."""

from __future__ import annotations

import html
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from maskdepth.core.fileio import read_json

IMG_STYLE = "max-width:100%;height:auto"  # also without the stylesheet, no figure is wider than the page
BADGE_CLASSES = ("ok", "failed", "interrupted", "running", "unfinished", "passed")


def escaped(value) -> Markup:
    """What `{{ value }}` writes: HTML (a macro's output, Markup) as it is, anything else as text
    escaped by `html.escape` (quotes as &quot; and &#x27;; markupsafe would write &#34; and &#39;).
    jinja2 calls it before autoescaping, which leaves the Markup it returns alone."""
    if hasattr(value, "__html__"):
        return Markup(value.__html__())
    return Markup(html.escape(str(value)))


def badge_class(text: str) -> str:
    """The CSS class of a badge: its first word (after "gate ") when the stylesheet colours it."""
    word = text.removeprefix("gate ").split()[0] if text else "other"
    cls = word if word in BADGE_CLASSES else "other"
    return "not-passed" if text.endswith("not passed") else cls


ENV = Environment(loader=PackageLoader("maskdepth.pages", "templates"), autoescape=True, finalize=escaped,
                  undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
ENV.globals.update(badge_class=badge_class, IMG_STYLE=IMG_STYLE)


def render(template: str, title: str, **values) -> str:
    """A page: templates/`template` (which extends page.html.j2) with `values`, stamped now."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return ENV.get_template(template).render(title=title, stamp=stamp, **values)


def href(target: str | os.PathLike, page_dir: str | os.PathLike) -> str:
    """The relative, URL-quoted link from a page in `page_dir` to `target`."""
    rel = os.path.relpath(Path(target).resolve(), Path(page_dir).resolve())
    return quote(rel.replace(os.sep, "/"), safe="/")


def read_optional(path: Path, problems: list[str]) -> dict | None:
    """A JSON file's content; None when absent; a file that cannot be read is noted in `problems`."""
    if not path.is_file():
        return None
    try:
        value = read_json(path)
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name} cannot be read ({exc})")
        return None
    return value if isinstance(value, dict) else None


def value_text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)
