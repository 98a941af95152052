"""The comparison page of `maskdepth report`: REPORT_DIR/index.html (report.html when REPORT_DIR is
itself a run folder) with the metrics of every run per split (the best of each column in bold),
the bar chart, the training curves overlaid and the depth-scale error, linking each run's page.
This module gathers the values; templates/comparison.html.j2 writes the HTML."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from maskdepth.core.fileio import write_text
from maskdepth.core.runs import format_duration, format_params
from maskdepth.pages.html import href, render
from maskdepth.pages.metric_html import metric_table
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
    links = {}
    for name, r in zip(names, rows):
        run = Path(r["run"])
        links[name] = href(run / PAGE if (run / PAGE).is_file() else run, out)
    runs = []
    for name, r in zip(names, rows):
        epochs = "–" if r["epochs"] is None else str(r["epochs"])
        if r.get("best_epoch") is not None:
            epochs += f" (best {r['best_epoch']})"
        runs.append({"name": name, "link": links[name], "model": str(r["model"]), "task": str(r["task"] or "–"),
                     "params": format_params(r["params"]), "stage": str(r["stage"]), "epochs": epochs,
                     "time": format_duration(r["train_time_s"]),
                     "status": "ok" if r["status"] == "finished" else r["status"]})
    splits = [(split, metric_table([(name, r[split]) for name, r in zip(names, rows)], keys, first="run",
                                   drop_empty_columns=False, mark_best=True, links=links)) for split in VAL_SPLITS]
    with_ratios = [n for n in names if any(len(v) for v in (ratios.get(n) or {}).values())]
    scale = None
    if "depth_scale" in files and with_ratios:
        scale = {"splits": VAL_SPLITS, "figure": href(files["depth_scale"], out),
                 "runs": [{"name": name, "link": links[name], "cells": _ratio_cells(ratios.get(name) or {})}
                          for name in with_ratios]}
    return render("comparison.html.j2", f"{len(rows)} runs compared", count=len(rows), folder=str(out.resolve()),
                  runs=runs, splits=splits, chart=href(files["png"], out) if "png" in files else None,
                  curves=href(files["curves"], out) if "curves" in files else None, scale=scale,
                  missing=[n for n in names if n not in with_ratios],
                  files=[(href(p, out), p.name) for k, p in files.items() if k != "html" and Path(p).is_file()])


def _ratio_cells(ratios: Mapping) -> list[dict | None]:
    """Per validation split the median depth-scale ratio of a run ("1.25") and its count; None without."""
    import numpy as np

    cells = []
    for split in VAL_SPLITS:
        v = ratios.get(split)
        cells.append({"median": f"{np.median(v):.2f}", "n": len(v)} if v is not None and len(v) else None)
    return cells
