"""Markdown tables of metrics (one row per run or split), with the catalogue's labels and directions.
"""

from collections.abc import Iterable, Mapping, Sequence

from maskdepth.evaluation.catalogue import CATALOGUE, HEADLINE, finite_or_none, format_value, label


def markdown_table(rows: Sequence[tuple[str, Mapping | None]], keys: Iterable[str] = HEADLINE, *,
                   first: str = "split", notes: Mapping[str, str] | None = None,
                   drop_empty_columns: bool = True) -> str:
    """The one markdown table of metrics: a row per (name, metrics dict), a column per key.

    A row whose metrics are None or empty reads `notes[name]` (e.g. "no ood samples") when
    given, else dashes. Columns no row has a value for are dropped when `drop_empty_columns`.
    """
    keys = list(keys)
    if drop_empty_columns:
        keys = [k for k in keys if any(finite_or_none((m or {}).get(k)) is not None for _, m in rows)] or keys
    lines = ["| " + " | ".join([first] + [label(k) for k in keys]) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, m in rows:
        if not m and notes and name in notes:
            lines.append(f"| {name} | {notes[name]} |" + " |" * (len(keys) - 1))
        else:
            lines.append(f"| {name} | " + " | ".join(format_value(k, (m or {}).get(k)) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def splits_header(key: str, splits: Sequence[str]) -> str:
    """The column header of a metric shown for several splits in one cell: "IoU (seen / unseen / ood)"."""
    return f"{label(key)} ({' / '.join(splits)})"


def splits_cell(key: str, by_split: Mapping[str, Mapping | None], splits: Sequence[str]) -> str:
    """One table cell of a metric over several splits: "0.912 / 0.850 / –" (a dict per split)."""
    return " / ".join(format_value(key, (by_split.get(s) or {}).get(key)) for s in splits)


def definitions_table(metrics: Mapping[str, float], keys: Iterable[str] = HEADLINE) -> str:
    """One row per metric present in `metrics`: label, value, direction and definition."""
    lines = ["| metric | value | better | definition |", "|---|---|---|---|"]
    for k in keys:
        if k in metrics and k in CATALOGUE:
            m = CATALOGUE[k]
            better = {True: "higher", False: "lower"}.get(m.higher_is_better) or (
                "(count)" if m.target is None else f"nearest {m.target:g}")
            definition = m.description.replace("|", "\\|")  # a table cell: escape |x|
            lines.append(f"| {m.label} | {m.format(metrics[k])} | {better} | {definition} |")
    return "\n".join(lines) + "\n"
