"""The metric tables of the HTML pages: one row per run or split, labels and directions from the
catalogue; `metric_table` gives the values, the `metric_table` macro of templates/parts.html.j2
writes them (every value escaped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from maskdepth.evaluation.catalogue import CATALOGUE, HEADLINE, finite_or_none, format_value, label


def metric_table(rows: Sequence[tuple[str, Mapping | None]], keys: Iterable[str] = HEADLINE, *,
                 first: str = "split", notes: Mapping[str, str] | None = None, drop_empty_columns: bool = True,
                 mark_best: bool = False, links: Mapping[str, str] | None = None) -> dict:
    """`markdown_table` as the values of an HTML <table> (the run and comparison pages).

    Each column carries its direction (↑ higher / ↓ lower is better) and, as its tooltip, the
    catalogue's definition; cells carry their metric key. `mark_best` marks each score column's
    best value (when at least two rows have one); `links` maps a row name to the href its name
    cell links to; `notes` gives the text of a row without metrics."""
    keys = list(keys)
    if drop_empty_columns:
        keys = [k for k in keys if any(finite_or_none((m or {}).get(k)) is not None for _, m in rows)] or keys
    best: dict[str, float] = {}
    if mark_best:
        for k in keys:
            values = [v for _, m in rows if (v := finite_or_none((m or {}).get(k))) is not None]
            direction = CATALOGUE[k].higher_is_better if k in CATALOGUE else None
            if direction is not None and len(values) > 1:
                best[k] = max(values) if direction else min(values)
    columns = []
    for k in keys:
        metric = CATALOGUE.get(k)
        arrow = {True: " ↑", False: " ↓"}.get(metric.higher_is_better, "") if metric else ""
        tip = None
        if metric:
            better = {True: "higher is better", False: "lower is better", None: "a count"}[metric.higher_is_better]
            tip = f"{metric.description} ({better})"
        columns.append({"key": k, "label": label(k), "arrow": arrow, "tip": tip})
    body = []
    for name, m in rows:
        row = {"name": str(name), "link": links[name] if links and name in links else None, "note": None, "cells": []}
        if not m and notes and name in notes:
            row["note"] = notes[name]
        else:
            for k in keys:
                value = finite_or_none((m or {}).get(k))
                row["cells"].append({"key": k, "text": format_value(k, value),
                                     "best": k in best and value is not None and value == best[k]})
        body.append(row)
    return {"first": first, "columns": columns, "rows": body}
