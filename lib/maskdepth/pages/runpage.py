"""The run page: RUN/index.html, written by `maskdepth run` when a stage ends (also when it fails or
is interrupted), by `maskdepth train` when training ends and by `maskdepth report --page RUN`.

It shows the summary (stage, status, times, model, data), the gate decision, the metrics of each
validation split (labels, directions and definitions from the catalogue), the executed notebooks
rendered as HTML, the real-photo check, every figure of the run folder, the parameters
(config.json, run.json) and links to the run's files. Every file is written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from html import escape
from pathlib import Path

from maskdepth.core import runs
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import write_text
from maskdepth.core.runs import damaged_as_error, format_duration
from maskdepth.evaluation.catalogue import DETAIL, HEADLINE, format_value, label
from maskdepth.pages.html import badge, figure_html, href, kv_table, page_html, read_optional, value_text
from maskdepth.pages.metric_html import html_table
from maskdepth.pages.notebook_html import earlier_rendering, render_notebook
from maskdepth.plan.stages import VAL_SPLITS
from maskdepth.validation.realcheck import REAL_DIR, REAL_JSON, SCORE_KEYS, table_rows

PAGE = "index.html"
# Figures of a validation split in the order its notebook shows them (others follow, sorted).
FIGURE_ORDER = ("mask_grid.png", "best_worst_iou.png", "depth_grid.png", "best_worst_abs_rel.png", "histograms.png",
                "training_curves.png")



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
    info = read_optional(run_dir / "run.json", problems)
    config = read_optional(run_dir / "config.json", problems)
    metrics = read_optional(run_dir / "metrics.json", problems)
    history_file = read_optional(run_dir / "history.json", problems)
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
        ("real", "Real photos", _real_section(run_dir, read_optional(run_dir / REAL_DIR / REAL_JSON, problems))),
        ("figures", "Figures", _figures_section(run_dir)),
        ("parameters", "Parameters", _parameters_section(config, params)),
        ("files", "Files", _files_section(run_dir)),
    ]
    nav = " ".join(f'<a href="#{key}">{escape(text)}</a>' for key, text, _ in sections)
    gate = (info or {}).get("gate")
    verdict = f" {badge('gate ' + ('passed' if gate.get('passed') else 'not passed'))}" if gate else ""
    body = [f"<h1>{escape(title)} {badge(status)}{verdict}</h1>", f'<div class="muted">{escape(str(run_dir.resolve()))}</div>',
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
    return page_html(title, "\n".join(body))


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
    rows: list[tuple[str, str]] = [("status", badge(status))]
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
    return kv_table(rows)


def _gate_section(info, status) -> str:
    from maskdepth.validation.gate import describe_check

    if info is None:
        return "<p>Not a stage run (<code>maskdepth run</code>): no gate.</p>\n"
    gate = info.get("gate")
    if not gate:
        return f"<p>No gate decision: the run's status is {badge(status)}.</p>\n"
    verdict = "passed" if gate.get("passed") else "not passed"
    rows = []
    for check in gate.get("checks") or []:
        split, _, key = str(check.get("metric", "")).partition(".")
        bound = "min" if "min" in check else "max"
        result = "skipped" if check.get("skipped") else ("ok" if check.get("ok") else "failed")
        rows.append(f"<tr><th>{escape(split)} {escape(label(key))}</th>"
                    f'<td class="num">{escape(format_value(key, check.get("value")))}</td>'
                    f"<td>{bound} {escape(str(check.get(bound)))}</td><td>{badge(result)}</td>"
                    f"<td>{escape(describe_check(check))}</td></tr>")
    table = ("<table><thead><tr><th>threshold</th><th>value</th><th>bound</th><th>result</th><th>check</th></tr>"
             f"</thead><tbody>{''.join(rows)}</tbody></table>\n")
    return f"<p>Gate: {badge(verdict)}</p>\n{table}"


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
    return value_text(value)


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
                     f"; the network saw {escape(value_text(photo.get('network_size')))} (H, W)</p>")
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
            parts.append(figure_html(png, run_dir, rel))
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
            html, note = render_notebook(ipynb) if render else earlier_rendering(ipynb)
            cell = f'<a href="{href(ipynb, run_dir)}">{escape(nb)}</a>'
            if html is not None:
                cell = f'<a href="{href(html, run_dir)}">{escape(html.name)}</a> · ' + cell
            if note:
                cell += f' <span class="muted">{escape(note)}</span>'
        rows.append(f"<tr><th>{escape(nb)}</th><td>{badge(status)}</td><td class=\"num\">{seconds}</td>"
                    f"<td>{cell}</td></tr>")
    return ("<table><thead><tr><th>notebook</th><th>status</th><th>time</th><th>executed notebook</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>\n")


def _parameters_section(config, params) -> str:
    parts = []
    if config:
        parts.append("<h3>training configuration (config.json)</h3>")
        parts.append(kv_table((k, escape(value_text(v))) for k, v in config.items()))
    if params:
        table = kv_table((k, escape(value_text(v))) for k, v in params.items())
        if config:
            parts.append(f"<details><summary>stage parameters (run.json)</summary>{table}</details>")
        else:
            parts += ["<h3>stage parameters (run.json)</h3>", table]
    return "\n".join(parts) + "\n" if parts else "<p>No parameters recorded (no config.json, no run.json).</p>\n"


def _files_section(run_dir: Path) -> str:
    links = [f'<li><a href="{href(run_dir / rel, run_dir)}">{escape(rel)}</a></li>'
             for rel in runs.RUN_FOLDER_FILES if (run_dir / rel).exists()]
    return f"<ul>{''.join(links)}</ul>\n" if links else "<p>No files yet.</p>\n"
