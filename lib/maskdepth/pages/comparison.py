"""The comparison page of `maskdepth report`: REPORT_DIR/index.html (report.html when REPORT_DIR is
itself a run folder) with the metrics of every run per split (the best of each column in bold),
the bar chart, the training curves overlaid and the depth-scale error, linking each run's page."""

from __future__ import annotations

import os
from collections.abc import Mapping
from html import escape
from pathlib import Path

from maskdepth.core.fileio import write_text
from maskdepth.core.runs import format_duration, format_params
from maskdepth.pages.html import badge, figure_html, href, page_html
from maskdepth.pages.metric_html import html_table
from maskdepth.pages.runpage import PAGE, is_page_dir
from maskdepth.plan.stages import VAL_SPLITS

COMPARISON_IN_RUN = "report.html"  # the comparison page's name inside a run folder (index.html is the run's)


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
                     f"<td class=\"num\">{escape(format_duration(r['train_time_s']))}</td><td>{badge(status)}</td></tr>")
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
        body.append(figure_html(files["png"], out, "every metric per run and split"))
    body.append('<h2 id="curves">Training curves</h2>')
    if "curves" in files:
        body.append("<p>From each run's <code>history.json</code>: a colour per run; seen solid, unseen dashed, "
                    "ood dotted.</p>")
        body.append(figure_html(files["curves"], out, "training curves overlaid"))
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
        body.append(figure_html(files["depth_scale"], out, "depth-scale ratio per image"))
    missing = [n for n in names if n not in with_ratios]
    if missing:
        body.append("<p>Without saved depth predictions (no validation/&lt;split&gt;/predictions.npz with depth): "
                    + ", ".join(f"<code>{escape(n)}</code>" for n in missing) + ".</p>")
    body.append('<h2 id="files">Files</h2>')
    items = [f'<li><a href="{href(p, out)}">{escape(p.name)}</a></li>' for k, p in files.items()
             if k != "html" and Path(p).is_file()]
    body.append(f"<ul>{''.join(items)}</ul>")
    return page_html(f"{len(rows)} runs compared", "\n".join(body))
