"""The HTML pages: each run folder's index.html and the comparison page of `maskdepth report`.

RUN/index.html is written by `maskdepth run` when a stage ends (also when it fails or is
interrupted), by `maskdepth train` when training ends and by `maskdepth report --page RUN`.
One page shows: the summary (stage, status, times, model, data), the gate decision, the
metrics of each validation split (labels, directions and definitions from the catalogue,
`maskdepth.pages.metric_html.html_table`), the executed notebooks rendered as HTML
(notebooks/<name>.html), every figure of the run folder (figures/*.png,
validation/<split>/*.png), the parameters (config.json, run.json) and links to the run's files.

REPORT_DIR/index.html (`maskdepth report`, via `maskdepth.pages.report`; report.html when REPORT_DIR
is itself a run folder) compares runs: the metrics
of every run per split (the best of each column in bold), the bar chart, the training curves
overlaid and the depth-scale error, with links to each run's own page.

Pages are self-contained and readable offline: one HTML file with its CSS inline, no script,
font or stylesheet from elsewhere; images and files are linked by relative paths, so a run
folder copied anywhere keeps its page. Every file is written atomically (`maskdepth.core.fileio`).

Notebooks render with nbconvert's HTMLExporter (a dependency: Jupyter's own renderer, so
outputs look as they do in Jupyter), its script links to the web removed. A rendering is
redone only when the notebook is newer; a notebook that cannot be rendered is named with
the reason on the page, which still works.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from urllib.parse import quote

from maskdepth.core import runs
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import read_json, write_text
from maskdepth.core.runs import format_duration, format_params
from maskdepth.evaluation.catalogue import DETAIL, HEADLINE, format_value, label
from maskdepth.pages.metric_html import html_table
from maskdepth.plan.stages import VAL_SPLITS
from maskdepth.validation.realcheck import REAL_DIR, REAL_JSON, SCORE_KEYS, table_rows

PAGE = "index.html"
COMPARISON_IN_RUN = "report.html"  # the comparison page's name inside a run folder (index.html is the run's)
# Figures of a validation split in the order its notebook shows them (others follow, sorted).
FIGURE_ORDER = ("mask_grid.png", "best_worst_iou.png", "depth_grid.png", "best_worst_abs_rel.png", "histograms.png",
                "training_curves.png")

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
_IMG_STYLE = "max-width:100%;height:auto"  # also without the stylesheet, no figure is wider than the page


# -- small helpers ---------------------------------------------------------------------------------
def href(target: str | os.PathLike, page_dir: str | os.PathLike) -> str:
    """The relative, URL-quoted link from a page in `page_dir` to `target`."""
    rel = os.path.relpath(Path(target).resolve(), Path(page_dir).resolve())
    return quote(rel.replace(os.sep, "/"), safe="/")


def _read(path: Path, problems: list[str]) -> dict | None:
    """A JSON file's content; None when absent; a file that cannot be read is noted in `problems`."""
    if not path.is_file():
        return None
    try:
        value = read_json(path)
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name} cannot be read ({exc})")
        return None
    return value if isinstance(value, dict) else None


def _value(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _kv_table(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table; values are HTML already."""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>\n'


def _badge(text: str) -> str:
    word = text.removeprefix("gate ").split()[0] if text else "other"
    cls = word if word in ("ok", "failed", "interrupted", "running", "unfinished", "passed") else "other"
    if text.endswith("not passed"):
        cls = "not-passed"
    return f'<span class="badge {cls}">{escape(text)}</span>'


def _page(title: str, body: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
            f'<p class="muted">written {stamp} by maskdepth</p>\n</body>\n</html>\n')


def _figure(path: Path, page_dir: Path, caption: str) -> str:
    link = href(path, page_dir)
    return (f'<figure><a href="{link}"><img src="{link}" alt="{escape(caption)}" loading="lazy" '
            f'style="{_IMG_STYLE}"></a><figcaption>{escape(caption)}</figcaption></figure>\n')


# -- notebooks -------------------------------------------------------------------------------------
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


# -- the run page ----------------------------------------------------------------------------------
def is_page_dir(path: str | os.PathLike) -> bool:
    """A folder that gets a run page: a stage run (run.json, even a failed one) or a training run."""
    p = Path(path)
    return (p / "run.json").is_file() or runs.is_run_dir(p)


def page_targets(paths) -> list[Path]:
    """The run folders among `paths`: each path is one, or a folder holding them (any depth)."""
    return runs.find_runs(paths, accept=is_page_dir, markers=("run.json", "config.json"),
                          what="no run.json, nor config.json with metrics.json/history.json")


def write_run_page(run_dir: str | os.PathLike, *, render_notebooks: bool = True) -> Path:
    """Write RUN/index.html (and notebooks/<name>.html); returns the page's path.

    `render_notebooks=False` only links renderings made earlier (used when a run is interrupted:
    the page comes at once, the notebooks stay one `maskdepth report --page RUN` away)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MaskdepthError(f"{run_dir}: no such folder")
    path = run_dir / PAGE
    with damaged_as_error(run_dir):
        html = run_page_html(run_dir, render_notebooks=render_notebooks)
    write_text(path, html)
    return path


@contextlib.contextmanager
def damaged_as_error(run_dir) -> Iterator[None]:
    """A run folder whose JSON files hold values of the wrong kind (a string where a number or
    a mapping belongs): one line naming the folder, not a traceback."""
    try:
        yield
    except MaskdepthError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        detail = (str(exc).splitlines() or [""])[0][:200]
        raise MaskdepthError(f"{run_dir}: run.json, config.json, metrics.json or history.json holds a value of the "
                             f"wrong kind ({type(exc).__name__}: {detail}); the run folder is damaged") from None


def write_page(run_dir: str | os.PathLike, log=print, *, render_notebooks: bool = True) -> Path | None:
    """`write_run_page` at the end of a stage or a training run: the page's path, or None with a
    console line when it cannot be written — a page never decides the run's own outcome."""
    run_dir = Path(run_dir)
    try:
        page = write_run_page(run_dir, render_notebooks=render_notebooks)
    except Exception as exc:  # the run's own outcome stands whatever happens to its page
        log(f"[page] could not write {run_dir / PAGE}: {type(exc).__name__}: {exc}")
        return None
    log(f"[page] {page}")
    return page


def run_page_html(run_dir: Path, *, render_notebooks: bool = True) -> str:
    problems: list[str] = []
    info = _read(run_dir / "run.json", problems)
    config = _read(run_dir / "config.json", problems)
    metrics = _read(run_dir / "metrics.json", problems)
    history_file = _read(run_dir / "history.json", problems)
    history = list((history_file or {}).get("epochs") or [])
    params = (info or {}).get("params") or {}
    settings = {**params, **(config or {})}
    stage = (info or {}).get("stage")
    status = _status(info, metrics, history, settings)
    name = run_dir.resolve().name
    title = f"{stage + ' run' if stage else 'training run'} {name}"

    sections = [
        ("summary", "Summary", _summary_section(run_dir, info, settings, metrics, history, status)),
        ("gate", "Gate", _gate_section(info, status)),
        ("metrics", "Metrics", _metrics_section(metrics, history)),
        ("notebooks", "Notebooks", _notebooks_section(run_dir, info, render_notebooks)),
        ("real", "Real photos", _real_section(run_dir, _read(run_dir / REAL_DIR / REAL_JSON, problems))),
        ("figures", "Figures", _figures_section(run_dir)),
        ("parameters", "Parameters", _parameters_section(config, params)),
        ("files", "Files", _files_section(run_dir)),
    ]
    nav = " ".join(f'<a href="#{key}">{escape(text)}</a>' for key, text, _ in sections)
    gate = (info or {}).get("gate")
    verdict = f" {_badge('gate ' + ('passed' if gate.get('passed') else 'not passed'))}" if gate else ""
    body = [f"<h1>{escape(title)} {_badge(status)}{verdict}</h1>", f'<div class="muted">{escape(str(run_dir.resolve()))}</div>',
            f"<nav>{nav}</nav>"]
    if (info or {}).get("error"):
        body.append(f'<div class="error"><b>error</b><pre>{escape(str(info["error"]))}</pre></div>')
    if (info or {}).get("interrupted"):
        where = info["interrupted"]
        reached = f" after epoch {where['epoch']}" if where.get("epoch") is not None else ""
        body.append(f'<div class="error"><b>interrupted</b> ({escape(str(where.get("signal")))}) in '
                    f"{escape(str(where.get('notebook')))}{reached}; continue with "
                    f"<code>maskdepth run --resume {escape(str(run_dir))}</code></div>")
    for problem in problems:
        body.append(f'<div class="error">{escape(problem)}</div>')
    body += [f'<h2 id="{key}">{escape(text)}</h2>\n{html}' for key, text, html in sections]
    return _page(title, "\n".join(body))


def _status(info, metrics, history, settings) -> str:
    if info and info.get("status"):
        return str(info["status"])
    if metrics:
        return "ok"
    if history:
        return f"unfinished ({history[-1].get('epoch', '?')}/{settings.get('epochs', '?')} epochs)"
    return "unfinished (no epoch finished)"


def _summary_section(run_dir, info, settings, metrics, history, status) -> str:
    info = info or {}
    metrics = metrics or {}
    rows: list[tuple[str, str]] = [("status", _badge(status))]
    stage = info.get("stage")
    rows.append(("stage", escape(stage) if stage else "– (a <code>maskdepth train</code> run, no stage gate)"))
    if info.get("start"):
        rows.append(("started", escape(str(info["start"]))))
    if info.get("end"):
        rows.append(("ended", escape(str(info["end"]))))
    if info.get("seconds") is not None:
        rows.append(("run time", escape(format_duration(info["seconds"]))))
    train_time = metrics.get("train_time_s")
    if train_time is None and history:
        train_time = sum(e.get("time_s") or 0.0 for e in history)
    if train_time is not None:
        rows.append(("training time", escape(format_duration(train_time))))
    model = str(metrics.get("model") or settings.get("model") or "?")
    kwargs = settings.get("model_kwargs") or {}
    model_text = f"<code>{escape(model)}</code>" + (f" {escape(json.dumps(kwargs))}" if kwargs else "")
    if metrics.get("params") is not None:
        model_text += f", {metrics['params']:,} parameters"
    rows.append(("model", model_text))
    rows.append(("task", escape(f"{settings.get('task', '?')} (input {settings.get('input_mode', 'fg_bg')})")))
    data = metrics.get("data") or settings.get("data") or "?"
    counts = metrics.get("n_samples") or {}
    data_text = f"{escape(str(data))}, {escape(str(settings.get('size', '?')))} px, seed {escape(str(settings.get('seed', 0)))}"
    if counts:
        data_text += "; validation samples " + ", ".join(f"{escape(s)} {escape(str(n))}" for s, n in counts.items())
    rows.append(("data", data_text))
    done = metrics.get("epochs", history[-1].get("epoch") if history else 0)
    train_text = f"{escape(str(done))} of {escape(str(settings.get('epochs', '?')))} epochs"
    if metrics.get("best_epoch") is not None:
        train_text += f", best epoch {escape(str(metrics['best_epoch']))} by {escape(str(metrics.get('best_metric', '?')))}"
    train_text += f"; lr {escape(str(settings.get('lr', '?')))}, batch {escape(str(settings.get('batch_size', '?')))}"
    if metrics.get("device"):
        train_text += f"; device {escape(str(metrics['device']))} × {escape(str(metrics.get('world_size', 1)))}"
    precision = metrics.get("precision")
    if isinstance(precision, dict) and precision.get("autocast"):
        label = "float32" if precision["autocast"] == "off" else f"{precision['autocast']} autocast"
        train_text += (f", <span title=\"{escape(str(precision.get('reason', '')))}\">{escape(label)}</span>")
    rows.append(("training", train_text))
    if info.get("prerequisite"):
        rows.append(("prerequisite", escape(str(info["prerequisite"].get("decision", "")))))
    for r in info.get("resumes") or []:
        changed = ", ".join(r.get("changed") or {}) or "nothing"
        rows.append(("resumed", escape(f"{r.get('at')} (was {r.get('previous_status')}), skipped "
                                       f"{', '.join(r.get('skipped') or []) or 'nothing'}, changed {changed}")))
    if info.get("git_commit"):
        rows.append(("git commit", f"<code>{escape(str(info['git_commit']))}</code>"))
    if info.get("device"):
        dev = info["device"]
        rows.append(("machine", escape(f"python {info.get('python', '?')}, torch {dev.get('torch', '?')}, "
                                       f"CUDA {'yes' if dev.get('cuda_available') else 'no'}, "
                                       f"{dev.get('platform', '')}")))
    return _kv_table(rows)


def _gate_section(info, status) -> str:
    from maskdepth.validation.gate import describe_check

    if info is None:
        return "<p>Not a stage run (<code>maskdepth run</code>): no gate.</p>\n"
    gate = info.get("gate")
    if not gate:
        return f"<p>No gate decision: the run's status is {_badge(status)}.</p>\n"
    verdict = "passed" if gate.get("passed") else "not passed"
    rows = []
    for check in gate.get("checks") or []:
        split, _, key = str(check.get("metric", "")).partition(".")
        bound = "min" if "min" in check else "max"
        result = "skipped" if check.get("skipped") else ("ok" if check.get("ok") else "failed")
        rows.append(f"<tr><th>{escape(split)} {escape(label(key))}</th>"
                    f'<td class="num">{escape(format_value(key, check.get("value")))}</td>'
                    f"<td>{bound} {escape(str(check.get(bound)))}</td><td>{_badge(result)}</td>"
                    f"<td>{escape(describe_check(check))}</td></tr>")
    table = ("<table><thead><tr><th>threshold</th><th>value</th><th>bound</th><th>result</th><th>check</th></tr>"
             f"</thead><tbody>{''.join(rows)}</tbody></table>\n")
    return f"<p>Gate: {_badge(verdict)}</p>\n{table}"


def _split_rows(source: Mapping, counts: Mapping) -> tuple[list, dict]:
    rows = [(s, source.get(s) or {}) for s in VAL_SPLITS if s in source or counts.get(s) == 0]
    notes = {s: f"no {s} samples" for s in VAL_SPLITS if counts.get(s) == 0}
    return rows, notes


def _metrics_section(metrics, history) -> str:
    if metrics:
        counts = metrics.get("n_samples") or {}
        rows, notes = _split_rows(metrics, counts)
        where = (f"the best epoch ({escape(str(metrics.get('best_epoch', '?')))}, by "
                 f"{escape(str(metrics.get('best_metric', '?')))}) "
                 "of each validation split, from <code>metrics.json</code>")
    elif history:
        last = history[-1]
        rows, notes = _split_rows(last, {})
        where = (f"the last finished epoch ({escape(str(last.get('epoch', '?')))}) of an unfinished run, "
                 "from <code>history.json</code>")
    else:
        return "<p>No metrics: no epoch finished (no metrics.json, no history.json).</p>\n"
    if not rows:
        return f"<p>No validation split has metrics ({where}).</p>\n"
    headline = html_table(rows, HEADLINE, notes=notes)
    detail = html_table(rows, ("loss", *DETAIL), notes=notes)
    return (f"<p>Metrics of {where}. Hover a column for its definition; ↑ higher / ↓ lower is better.</p>\n"
            f'<div id="metrics-headline">{headline}</div>\n'
            f'<details><summary>every metric</summary><div id="metrics-detail">{detail}</div></details>\n')


def _range_m(value) -> str:
    """[lo, hi] in metres as "2.1–5.0 m"; anything else as it is."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{value[0]:.1f}–{value[1]:.1f} m"
    return _value(value)


def _real_section(run_dir: Path, real) -> str:
    """The real-photo check (RUN/real/real.json): per photo the model beside the baselines, where
    the error lives, and the figure (photo | measured | predicted depth)."""
    if not real:
        return ("<p>No real-photo check in this run folder (<code>maskdepth validate --real -c RUN</code> "
                "writes one).</p>\n")
    parts = []
    for photo in real.get("photos") or []:
        if not isinstance(photo, dict):
            continue
        name = escape(str(photo.get("name", "?")))
        if not isinstance(photo.get("model"), dict):
            parts.append(f"<p><b>{name}</b>: {escape(str(photo.get('note', 'not scored')))}</p>")
            continue
        try:
            rows = table_rows(photo)
        except (KeyError, TypeError, AttributeError):
            parts.append(f"<p><b>{name}</b>: damaged entry in {escape(REAL_JSON)}</p>")
            continue
        head = "".join(f"<th>{escape(label(k))}</th>" for k in SCORE_KEYS)
        body = "".join(f"<tr><th>{escape(row)}</th>" + "".join(f'<td class="num">{escape(c)}</td>' for c in cells)
                       + "</tr>" for row, cells in rows)
        parts.append(f"<h3>{name}</h3><p class=\"muted\">{escape(str(photo.get('about', '')))}; measured "
                     f"{escape(_range_m(photo.get('gt_range_m')))}, predicted {escape(_range_m(photo.get('pred_range_m')))}"
                     f"; the network saw {escape(_value(photo.get('network_size')))} (H, W)</p>")
        parts.append(f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>")
        figure = run_dir / REAL_DIR / str(photo.get("figure", ""))
        if photo.get("figure") and figure.is_file() and figure.parent == run_dir / REAL_DIR:
            parts.append(f'<p><img src="{href(figure, run_dir)}" alt="{name}" style="max-width:100%"></p>')
    return "\n".join(parts) + "\n"


def _figures(run_dir: Path) -> list[tuple[str, list[Path]]]:
    """(group, PNGs) in page order: the run's figures, then each validation split's."""
    groups = [("run", sorted((run_dir / "figures").glob("*.png")))]
    val = run_dir / "validation"
    splits = [s for s in VAL_SPLITS if (val / s).is_dir()]
    splits += sorted(p.name for p in val.iterdir() if p.is_dir() and p.name not in splits) if val.is_dir() else []
    for split in splits:
        pngs = sorted((val / split).glob("*.png"),
                      key=lambda p: (FIGURE_ORDER.index(p.name) if p.name in FIGURE_ORDER else len(FIGURE_ORDER), p.name))
        groups.append((f"validation · {split}", pngs))
    return [(g, p) for g, p in groups if p]


def _figures_section(run_dir: Path) -> str:
    groups = _figures(run_dir)
    if not groups:
        return "<p>No figures in this run folder yet.</p>\n"
    import hashlib

    seen: dict[str, Path] = {}
    parts = []
    for group, pngs in groups:
        parts.append(f"<h3>{escape(group)}</h3>")
        split_dir = pngs[0].parent
        if (split_dir / "metrics.json").is_file() and split_dir.parent.name == "validation":
            parts.append(f'<p class="muted"><a href="{href(split_dir / "metrics.json", run_dir)}">metrics.json</a> '
                         "(overall and per sample)</p>")
        for png in pngs:
            rel = png.relative_to(run_dir).as_posix()
            digest = hashlib.sha1(png.read_bytes()).hexdigest()
            if digest in seen:  # the same training curves in every split: shown once
                first = seen[digest].relative_to(run_dir).as_posix()
                parts.append(f'<p class="muted"><a href="{href(png, run_dir)}">{escape(rel)}</a>: '
                             f"the same picture as {escape(first)} above</p>")
                continue
            seen[digest] = png
            parts.append(_figure(png, run_dir, rel))
    return "\n".join(parts) + "\n"


def _notebooks_section(run_dir: Path, info, render: bool) -> str:
    folder = run_dir / "notebooks"
    entries = {e.get("notebook"): e for e in (info or {}).get("notebooks") or []}
    names = [n for n in entries if n] + sorted(p.name for p in folder.glob("*.ipynb") if p.name not in entries)
    if not names:
        return "<p>No notebooks (a run made by <code>maskdepth train</code> has none).</p>\n"
    rows = []
    for nb in names:
        entry = entries.get(nb, {})
        ipynb = folder / nb
        status = entry.get("status") or ("ok" if ipynb.is_file() else "–")
        seconds = f"{entry['seconds']:.1f} s" if isinstance(entry.get("seconds"), (int, float)) else ""
        if not ipynb.is_file():
            cell = "not written"
        else:
            html, note = render_notebook(ipynb) if render else _earlier_rendering(ipynb)
            cell = f'<a href="{href(ipynb, run_dir)}">{escape(nb)}</a>'
            if html is not None:
                cell = f'<a href="{href(html, run_dir)}">{escape(html.name)}</a> · ' + cell
            if note:
                cell += f' <span class="muted">{escape(note)}</span>'
        rows.append(f"<tr><th>{escape(nb)}</th><td>{_badge(status)}</td><td class=\"num\">{seconds}</td>"
                    f"<td>{cell}</td></tr>")
    return ("<table><thead><tr><th>notebook</th><th>status</th><th>time</th><th>executed notebook</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>\n")


def _earlier_rendering(ipynb: Path) -> tuple[Path | None, str]:
    html = ipynb.with_suffix(".html")
    if html.is_file() and html.stat().st_mtime >= ipynb.stat().st_mtime:
        return html, "rendered"
    return None, "not rendered yet: maskdepth report --page RUN renders it"


def _parameters_section(config, params) -> str:
    parts = []
    if config:
        parts.append("<h3>training configuration (config.json)</h3>")
        parts.append(_kv_table((k, escape(_value(v))) for k, v in config.items()))
    if params:
        table = _kv_table((k, escape(_value(v))) for k, v in params.items())
        if config:
            parts.append(f"<details><summary>stage parameters (run.json)</summary>{table}</details>")
        else:
            parts += ["<h3>stage parameters (run.json)</h3>", table]
    return "\n".join(parts) + "\n" if parts else "<p>No parameters recorded (no config.json, no run.json).</p>\n"


def _files_section(run_dir: Path) -> str:
    links = [f'<li><a href="{href(run_dir / rel, run_dir)}">{escape(rel)}</a></li>'
             for rel in runs.RUN_FOLDER_FILES if (run_dir / rel).exists()]
    return f"<ul>{''.join(links)}</ul>\n" if links else "<p>No files yet.</p>\n"


# -- the comparison page ---------------------------------------------------------------------------
def write_comparison_page(out_dir: str | os.PathLike, rows: list[dict], names: list[str], files: Mapping[str, Path],
                          ratios: Mapping[str, Mapping] | None = None, *, keys: list[str]) -> Path:
    """OUT/index.html comparing the report's runs (`maskdepth.pages.report.report` calls it); OUT/report.html
    when OUT is itself a run folder (a report of one run), whose index.html is the run's own page."""
    out = Path(out_dir)
    path = out / (COMPARISON_IN_RUN if is_page_dir(out) else PAGE)
    write_text(path, comparison_html(out, rows, names, files, ratios or {}, keys))
    return path


def comparison_html(out: Path, rows: list[dict], names: list[str], files: Mapping[str, Path],
                    ratios: Mapping[str, Mapping], keys: list[str]) -> str:
    """The comparison page; `keys`: the metric columns shown (those some run has a value for)."""
    import numpy as np


    links = {}
    for name, r in zip(names, rows):
        run = Path(r["run"])
        links[name] = href(run / PAGE if (run / PAGE).is_file() else run, out)
    body = [f"<h1>{len(rows)} run{'s' if len(rows) != 1 else ''} compared</h1>",
            f'<div class="muted">{escape(str(out.resolve()))}</div>',
            '<nav><a href="#runs">Runs</a> <a href="#metrics">Metrics</a> <a href="#curves">Training curves</a> '
            '<a href="#scale">Depth scale</a> <a href="#files">Files</a></nav>',
            '<h2 id="runs">Runs</h2>']
    table = ["<table><thead><tr><th>run</th><th>model</th><th>task</th><th>params</th><th>stage</th><th>epochs</th>"
             "<th>time</th><th>status</th></tr></thead><tbody>"]
    for name, r in zip(names, rows):
        epochs = "–" if r["epochs"] is None else str(r["epochs"])
        if r.get("best_epoch") is not None:
            epochs += f" (best {r['best_epoch']})"
        status = "ok" if r["status"] == "finished" else r["status"]
        table.append(f'<tr><th><a href="{links[name]}">{escape(name)}</a></th><td>{escape(str(r["model"]))}</td>'
                     f"<td>{escape(str(r['task'] or '–'))}</td><td class=\"num\">{escape(format_params(r['params']))}</td>"
                     f"<td>{escape(str(r['stage']))}</td><td class=\"num\">{escape(epochs)}</td>"
                     f"<td class=\"num\">{escape(format_duration(r['train_time_s']))}</td><td>{_badge(status)}</td></tr>")
    table.append("</tbody></table>")
    body.append("\n".join(table))
    body.append('<h2 id="metrics">Metrics</h2>')
    body.append("<p>Per validation split, each run's best epoch (an unfinished run: its last finished one); the "
                "best value of each column in bold. Hover a column for its definition.</p>")
    for split in VAL_SPLITS:
        body.append(f"<h3>{escape(split)}</h3>")
        body.append(html_table([(name, r[split]) for name, r in zip(names, rows)], keys, first="run",
                               drop_empty_columns=False, mark_best=True, links=links))
    if "png" in files:
        body.append(_figure(files["png"], out, "every metric per run and split"))
    body.append('<h2 id="curves">Training curves</h2>')
    if "curves" in files:
        body.append("<p>From each run's <code>history.json</code>: a colour per run; seen solid, unseen dashed, "
                    "ood dotted.</p>")
        body.append(_figure(files["curves"], out, "training curves overlaid"))
    else:
        body.append("<p>No run has a history.json.</p>")
    body.append('<h2 id="scale">Depth-scale error</h2>')
    body.append("<p>Each validation image's median predicted depth over its median true depth (valid pixels, the "
                "prediction clamped as the metrics clamp it): 1 is the right scale, 2 twice too far. Scale-aligned "
                "metrics (sa …) remove exactly this factor. From <code>validation/&lt;split&gt;/predictions.npz</code>"
                ", which <code>maskdepth validate</code> (the 03_validate notebooks) saves.</p>")
    with_ratios = [n for n in names if any(len(v) for v in (ratios.get(n) or {}).values())]
    if "depth_scale" in files and with_ratios:
        head = "".join(f"<th>{escape(s)}</th>" for s in VAL_SPLITS)
        lines = [f"<table><thead><tr><th>run</th>{head}</tr></thead><tbody>"]
        for name in with_ratios:
            cells = []
            for split in VAL_SPLITS:
                v = (ratios.get(name) or {}).get(split)
                cells.append(f'<td class="num">×{np.median(v):.2f} <span class="muted">(n={len(v)})</span></td>'
                             if v is not None and len(v) else '<td class="num">–</td>')
            lines.append(f'<tr><th><a href="{links[name]}">{escape(name)}</a></th>{"".join(cells)}</tr>')
        lines.append("</tbody></table>")
        body.append("<p>Median ratio per run and split:</p>" + "\n".join(lines))
        body.append(_figure(files["depth_scale"], out, "depth-scale ratio per image"))
    missing = [n for n in names if n not in with_ratios]
    if missing:
        body.append("<p>Without saved depth predictions (no validation/&lt;split&gt;/predictions.npz with depth): "
                    + ", ".join(f"<code>{escape(n)}</code>" for n in missing) + ".</p>")
    body.append('<h2 id="files">Files</h2>')
    items = [f'<li><a href="{href(p, out)}">{escape(p.name)}</a></li>' for k, p in files.items()
             if k != "html" and Path(p).is_file()]
    body.append(f"<ul>{''.join(items)}</ul>")
    return _page(f"{len(rows)} runs compared", "\n".join(body))
