"""Executed notebooks rendered as HTML (notebooks/<name>.html) for the run page.

nbconvert's HTMLExporter renders them (Jupyter's own renderer, so outputs look as they do in
Jupyter), its script links to the web removed. A rendering is redone only when the notebook is
newer; a notebook that cannot be rendered is named with the reason on the page, which still works.
"""

from __future__ import annotations

import re
from pathlib import Path

from maskdepth.core.fileio import write_text

_EXTERNAL_SCRIPT = re.compile(r'<script\b[^>]*\bsrc\s*=\s*"(?:https?:)?//[^"]*"[^>]*>\s*</script>\s*', re.I)
_EMPTY_SCRIPT = re.compile(r'<script\b[^>]*\bsrc\s*=\s*""[^>]*>\s*</script>\s*', re.I)


def render_notebook(ipynb: Path, out: Path | None = None, *, force: bool = False) -> tuple[Path | None, str]:
    """Render an executed notebook to HTML next to it (notebooks/<name>.html).

    Returns (the HTML file, a note for the page): (None, "could not render: ...") when it fails.
    An HTML file newer than the notebook is kept as it is (unless `force`)."""
    out = out or ipynb.with_suffix(".html")
    if not force and out.is_file() and out.stat().st_mtime >= ipynb.stat().st_mtime:
        return out, "rendered"
    try:
        import nbformat

        nb = nbformat.read(str(ipynb), as_version=4)
    except Exception as exc:  # a truncated or foreign file: the page says so
        return None, f"could not render: {type(exc).__name__}: {exc}"
    try:
        html = _nbconvert_html(nb)
    except Exception as exc:  # nbconvert missing or broken (e.g. its templates): the page says so
        return None, f"could not render: {type(exc).__name__}: {exc}"
    note = "rendered with nbconvert"
    write_text(out, html)
    return out, note


def _nbconvert_html(nb) -> str:
    """nbconvert's HTML, without the scripts it would fetch from the web (MathJax, require.js, mermaid)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    for name in ("require_js_url", "mathjax_url", "mermaid_js_url", "mermaid_layout_elk_js_url"):
        if exporter.has_trait(name):
            setattr(exporter, name, "")
    body, _ = exporter.from_notebook_node(nb)
    body = _EXTERNAL_SCRIPT.sub("", body)
    return _EMPTY_SCRIPT.sub("", body)


def earlier_rendering(ipynb: Path) -> tuple[Path | None, str]:
    html = ipynb.with_suffix(".html")
    if html.is_file() and html.stat().st_mtime >= ipynb.stat().st_mtime:
        return html, "rendered"
    return None, "not rendered yet: maskdepth report --page RUN renders it"
