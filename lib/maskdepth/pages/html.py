"""What every page shares: the jinja2 environment that renders the templates in pages/templates/
(package data; page.html.j2 is the frame: one HTML file with its CSS inline, no script, font or
stylesheet from elsewhere), relative links (a run folder copied anywhere keeps its page) and the
small helpers both pages use. Every {{ value }} is escaped by `html.escape`, as the pages always
were; only a macro's output, which is HTML already, is written as it is."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from maskdepth.core.fileio import read_json

# The old frame and pieces, still used by the comparison page (pages.comparison) until it moves to
# templates/comparison.html.j2 too.
CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; padding: 12px 24px 40px; max-width: 1640px; color: #1d1d1f; background: #fff; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 18px 0 6px; }
nav { font-size: 13px; color: #555; } nav a { margin-right: 12px; }
a { color: #0b5cad; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: #f0f2f5; } tbody th { background: #fafafa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.note { color: #777; font-style: italic; }
table.kv th { width: 14em; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; white-space: pre-wrap; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600; }
.ok, .passed { background: #2e7d32; } .failed, .not-passed { background: #c62828; }
.interrupted, .running, .unfinished { background: #ef6c00; } .other { background: #607d8b; }
.error { border-left: 4px solid #c62828; background: #fdecea; padding: 6px 10px; }
.muted { color: #666; font-size: 12px; }
figure { margin: 10px 0 18px; } figcaption { font-size: 12px; color: #555; }
figure img { max-width: 100%; max-height: 90vh; width: auto; height: auto; border: 1px solid #e0e0e0; }
details { margin: 6px 0; } summary { cursor: pointer; color: #0b5cad; }
"""
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


def kv_table(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table; values are HTML already."""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>\n'


def badge(text: str) -> str:
    word = text.removeprefix("gate ").split()[0] if text else "other"
    cls = word if word in ("ok", "failed", "interrupted", "running", "unfinished", "passed") else "other"
    if text.endswith("not passed"):
        cls = "not-passed"
    return f'<span class="badge {cls}">{escape(text)}</span>'


def page_html(title: str, body: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
            f'<p class="muted">written {stamp} by maskdepth</p>\n</body>\n</html>\n')


def figure_html(path: Path, page_dir: Path, caption: str) -> str:
    link = href(path, page_dir)
    return (f'<figure><a href="{link}"><img src="{link}" alt="{escape(caption)}" loading="lazy" '
            f'style="{IMG_STYLE}"></a><figcaption>{escape(caption)}</figcaption></figure>\n')
