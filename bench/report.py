"""Formatting the results: numbers for the table, the results file's name, the markdown table."""

from __future__ import annotations

import math


def fmt_rate(value: float | None, unit: str = "samples/s") -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:,.{digits}f} {unit}"


def fmt_ratio(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def fmt_ms(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    ms = seconds * 1000.0
    return f"{ms:.3f} ms" if ms < 1 else f"{ms:.2f} ms" if ms < 100 else f"{ms:,.0f} ms"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 1:
        return fmt_ms(seconds)
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def fmt_percent(fraction: float | None) -> str:
    if fraction is None or not math.isfinite(fraction):
        return "n/a"
    return f"{100 * fraction:.1f} %"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(results: dict) -> str:
    """One table of every figure's rows: | # | figure | measure | value | note |."""
    lines = ["| # | figure | measure | value | note |", "|---|---|---|---|---|"]
    for name, figure in results["figures"].items():
        number, title = figure.get("number", ""), figure.get("title", name)
        rows = figure.get("table") or []
        if "skipped" in figure:
            rows = [["skipped", "", figure["skipped"]]]
        elif "error" in figure:
            rows = [["error", "", figure["error"]]]
        for measure, value, note in rows:
            lines.append(f"| {number} | {_cell(title)} | {_cell(measure)} | {_cell(value)} | {_cell(note)} |")
    ratios = results.get("ratios", {})
    head = ", ".join(f"{key} = {fmt_ratio(value)}" for key, value in ratios.items())
    text = "\n".join(lines) + (f"\n\nHeadline ratios: {head}\n" if head else "\n")
    for warning in results.get("warnings", []):
        text += f"\nWarning: {warning}\n"
    return text
