"""Compare runs: one row per run folder, as a markdown table, a JSON list, PNG charts and a page.

`report(paths)` accepts run folders and folders holding runs (e.g. outputs/1k) and reads each run's
metrics as its recipe reads the model (`core.runs.run_metrics`), falling back to
history.json and config.json for an interrupted run. Metrics read "seen / unseen / ood" ("–" where a
run has no value); columns, labels and directions come from the metric catalogue. Beside report.md,
report.json and report.png (bars per metric) it draws report_curves.png (every run's history.json
overlaid) and report_depth_scale.png (per split, each image's median(pred) / median(GT) from
RUN/validation/<split>/predictions.npz; a run without them is named) and writes index.html, the
comparison page (`maskdepth.pages.comparison`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdepth.core import runs
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import read_json, write_json, write_text
from maskdepth.core.runs import METRICS_FILE, format_duration, format_params, run_metrics
from maskdepth.evaluation.catalogue import (
    CURVE_KEYS,
    HEADLINE,
    finite_or_none,
    get_metric,
    label,
    parse_split_metric,
)
from maskdepth.evaluation.tables import markdown_table as metrics_table
from maskdepth.evaluation.tables import splits_cell, splits_header
from maskdepth.figures import viz
from maskdepth.plan.stages import VAL_SPLITS

# The metric columns of a report (keys of the catalogue in maskdepth.evaluation.metrics).
METRICS = HEADLINE
SPLIT_COLORS = {"seen": "#4c72b0", "unseen": "#dd8452", "ood": "#55a868"}


@dataclass
class Report:
    rows: list[dict]
    markdown: str
    files: dict[str, Path] = field(default_factory=dict)


def _read(path: Path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise MaskdepthError(f"{path}: cannot be read as JSON ({exc})") from exc


def _params_from_checkpoint(run: Path) -> int | None:
    """Parameter count of a run without metrics.json, from its checkpoint (None if absent)."""
    for name in ("best.pt", "last.pt"):
        path = run / "checkpoints" / name
        if path.is_file():
            from maskdepth.models.checkpoint import load_model

            model, _ = load_model(path)
            return sum(p.numel() for p in model.parameters())
    return None


def summarize_run(run: str | os.PathLike) -> dict:
    """One report row: model, params, stage, epochs, time and the metrics of each validation split."""
    run = Path(run)
    if not runs.is_run_dir(run):
        raise MaskdepthError(f"{run}: not a run folder (needs config.json plus metrics.json or history.json)")
    config = _read(run / "config.json")
    # as the recipe reads the model where validate scored its checkpoint (the run page's numbers)
    metrics = run_metrics(run, _read(run / METRICS_FILE)) if (run / METRICS_FILE).is_file() else {}
    history = _read(run / "history.json").get("epochs", []) if (run / "history.json").is_file() else []
    if metrics:
        splits = {s: metrics.get(s) or {} for s in VAL_SPLITS}
        epochs = metrics.get("epochs")
        time_s = metrics.get("train_time_s")
        params = metrics.get("params")
        best_epoch = metrics.get("best_epoch")
        status = "finished"
    else:  # interrupted run: its last finished epoch
        last = history[-1] if history else {}
        splits = {s: last.get(s) or {} for s in VAL_SPLITS}
        epochs = last.get("epoch", 0)
        time_s = sum(e.get("time_s", 0.0) for e in history)
        params = _params_from_checkpoint(run)
        best_epoch = None
        status = f"unfinished ({epochs}/{config.get('epochs', '?')} epochs)"
    model = metrics.get("model") or config.get("model", "?")
    encoder = (config.get("model_kwargs") or {}).get("encoder")
    return {
        "run": str(run),
        "model": model + (f"({encoder})" if encoder else ""),
        "task": metrics.get("task") or config.get("task"),
        "params": params,
        "stage": runs.stage_label(metrics.get("data") or config.get("data", "?")),
        "size": config.get("size"),
        "epochs": epochs,
        "best_epoch": best_epoch,
        "train_time_s": time_s,
        "status": status,
        **{s: {k: splits[s].get(k) for k in METRICS} for s in VAL_SPLITS},
    }


def _short_names(paths: list[str]) -> list[str]:
    """Run names relative to the runs' common folder (just the name for a single run)."""
    resolved = [Path(p).resolve() for p in paths]
    if len(resolved) == 1:
        return [resolved[0].name]
    common = Path(os.path.commonpath(resolved))
    return [str(p.relative_to(common)) or p.name for p in resolved]


def shown_metrics(rows: list[dict]) -> list[str]:
    """The catalogue columns some run has a value for (all of them when none has any)."""
    shown = [k for k in METRICS if any(finite_or_none(r[s].get(k)) is not None for r in rows for s in VAL_SPLITS)]
    return shown or list(METRICS)


def markdown_table(rows: list[dict]) -> str:
    """Markdown table; metric cells read "seen / unseen / ood"."""
    names = _short_names([r["run"] for r in rows])
    keys = shown_metrics(rows)
    head = ["run", "model", "task", "params", "stage", "epochs", "time"] + [splits_header(k, VAL_SPLITS) for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in zip(names, rows):
        cells = [f"`{name}`", r["model"], str(r["task"] or "–"), format_params(r["params"]), r["stage"],
                 str(r["epochs"] if r["epochs"] is not None else "–") + ("" if r["status"] == "finished" else "*"),
                 format_duration(r["train_time_s"])]
        cells += [splits_cell(k, r, VAL_SPLITS) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    if any(r["status"] != "finished" for r in rows):
        lines += ["", "\\* unfinished run: metrics of its last finished epoch."]
    return "\n".join(lines) + "\n"


def chart_figure(rows: list[dict], title: str = ""):
    """One panel per metric; per run a bar per validation split (horizontal, runs on the y axis).

    Panels wrap onto a second line when there are more than five metrics."""
    names = [f"{name}\n{r['model']} · {r['task'] or '?'}" for name, r in zip(_short_names([r["run"] for r in rows]), rows)]
    keys = shown_metrics(rows)
    n = len(rows)
    per_line = min(len(keys), 5)
    lines = math.ceil(len(keys) / per_line)
    label_px = min(360, 40 + 7 * max(len(line) for s in names for line in s.splitlines()))
    panel_h = 40 + 14 * len(VAL_SPLITS) * n
    width, height = viz.MAX_WIDTH_PX, min(2000, 60 + lines * (panel_h + 70))
    fig = viz.new_figure(width, height)
    y = np.arange(n)
    bar = 0.8 / len(VAL_SPLITS)
    panel_w = (1 - label_px / width - 0.02) / per_line
    for k, key in enumerate(keys):
        line, col = divmod(k, per_line)
        bottom = height - 60 - (line + 1) * (panel_h + 70) + 40
        ax = fig.add_axes((label_px / width + col * panel_w, bottom / height, panel_w * 0.86, panel_h / height))
        for s, split in enumerate(VAL_SPLITS):
            offset = (s - (len(VAL_SPLITS) - 1) / 2) * bar
            v = np.array([np.nan if finite_or_none(r[split].get(key)) is None else r[split][key] for r in rows],
                         dtype=float)
            ax.barh(y + offset, np.nan_to_num(v), height=bar, color=SPLIT_COLORS.get(split), label=split)
            for yi, vi in zip(y, v):
                if np.isfinite(vi):
                    ax.text(vi, yi + offset, f" {vi:.3f}", va="center", fontsize=6)
        higher = get_metric(key).higher_is_better
        ax.set_title(f"{label(key)} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.set_yticks(y, names if col == 0 else [], fontsize=8)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=7)
        ax.margins(x=0.25)
        if k == 0:
            ax.legend(fontsize=7, loc="lower right")
    if title:
        viz.set_title(fig, title)
    return fig


def metrics_markdown(metrics: dict) -> str:
    """A finished run's metrics.json (what `train` returns) as a short markdown summary:
    one row per validation split; a split the run had no samples in says so."""
    head = (f"**{metrics.get('model', '?')}** ({format_params(metrics.get('params'))} params, task {metrics.get('task', '?')}) "
            f"on {runs.stage_label(metrics.get('data', '?'))}: {metrics.get('epochs', '?')} epochs in "
            f"{format_duration(metrics.get('train_time_s'))}, best epoch {metrics.get('best_epoch', '–')}")
    return f"{head}\n\n{split_table(metrics)}"


def split_table(metrics: dict, keys=METRICS) -> str:
    """The markdown table of a metrics.json's validation splits (run summaries, notebooks).

    A split missing from `metrics` (a run made before it existed) is left out; one the run
    had no samples in (n_samples 0) reads "no <split> samples"."""
    counts = metrics.get("n_samples") or {}
    rows = [(s, metrics.get(s) or {}) for s in VAL_SPLITS if s in metrics or counts.get(s) == 0]
    notes = {s: f"no {s} samples" for s in VAL_SPLITS if counts.get(s) == 0}
    return metrics_table(rows, keys, notes=notes)


def _sort_key(metric: str):
    try:
        split, key = parse_split_metric(metric)
    except MaskdepthError as exc:
        raise MaskdepthError(f"sort={metric!r}: {exc}, e.g. unseen.iou") from None
    if key not in METRICS:
        raise MaskdepthError(f"sort={metric!r}: a report sorts by one of its columns: {', '.join(METRICS)}")
    higher = get_metric(key).higher_is_better

    def value(row):
        v = row[split].get(key)
        missing = v is None or not math.isfinite(v)
        return (missing, 0.0 if missing else (-v if higher else v))

    return value


def report(paths, out_dir: str | os.PathLike | None = None, *, sort: str | None = None, write: bool = True) -> Report:
    """Rows for every run found under `paths`; writes report.md, report.json and report.png.

    `out_dir` defaults to the runs' common folder (e.g. outputs/1k). `sort` orders the
    rows best first by a metric such as "unseen.iou"; by default they keep folder order.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise MaskdepthError("report: give at least one run folder or a folder holding runs")
    from maskdepth.core.fileio import check_output
    from maskdepth.core.runs import damaged_as_error

    found = runs.find_runs(paths)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if out_dir:
        check_output(out_dir, folder=True)
    rows = []
    for p in unique:
        with damaged_as_error(p):
            rows.append(summarize_run(p))
    with damaged_as_error(", ".join(map(str, unique))):
        return _report(rows, unique, out_dir, sort, write)


def _report(rows: list[dict], unique: list[Path], out_dir, sort, write: bool) -> Report:
    if sort:
        rows.sort(key=_sort_key(sort))
    result = Report(rows=rows, markdown=markdown_table(rows))
    if write:
        out = Path(out_dir) if out_dir else Path(os.path.commonpath(unique))
        result.files = {"md": out / "report.md", "json": out / "report.json", "png": out / "report.png"}
        write_text(result.files["md"], f"# Runs compared\n\n{result.markdown}")
        write_json(result.files["json"], rows)
        title = f"{len(rows)} run{'s' if len(rows) != 1 else ''} · {out}"
        viz.save_figure(chart_figure(rows, title), result.files["png"])
        write_comparison(result, out)
    return result


def write_comparison(result: Report, out: Path) -> None:
    """The curves, the depth-scale figure (each when some run has what it needs) and index.html."""
    from maskdepth.pages.comparison import write_comparison_page

    names = _short_names([r["run"] for r in result.rows])
    histories = {name: _history(Path(r["run"])) for name, r in zip(names, result.rows)}
    if any(histories.values()):
        result.files["curves"] = out / "report_curves.png"
        viz.save_figure(curves_figure(histories, f"training curves · {out}"), result.files["curves"])
    ratios = {name: scale_ratios(Path(r["run"])) for name, r in zip(names, result.rows)}
    if any(ratios.values()):
        result.files["depth_scale"] = out / "report_depth_scale.png"
        viz.save_figure(depth_scale_figure(ratios, f"depth-scale error · {out}"), result.files["depth_scale"])
    result.files["html"] = write_comparison_page(out, result.rows, names, result.files, ratios, keys=shown_metrics(result.rows))


def _history(run: Path) -> list[dict]:
    """A run's epochs from history.json ([] when it has none or it cannot be read)."""
    try:
        return list(read_json(run / "history.json").get("epochs") or [])
    except (OSError, ValueError, AttributeError):
        return []


# The panels of the overlaid curves: the training loss, the validation loss, then the catalogue's curve keys.
CURVE_PANELS = (("train", "loss"), ("val", "loss"), *(("val", k) for k in CURVE_KEYS))


def curves_figure(histories: dict[str, list[dict]], title: str = ""):
    """Training curves of several runs overlaid: a panel per key metric (training loss, validation
    loss, the catalogue's `CURVE_KEYS`), a colour per run, a line style per validation split
    (seen solid, unseen dashed, ood dotted)."""
    from matplotlib.lines import Line2D

    panels = [(src, key) for src, key in CURVE_PANELS
              if any(viz._series(epochs, s, key)[0] for epochs in histories.values()
                     for s in (("train",) if src == "train" else VAL_SPLITS))]
    per_line = 5
    lines = max(1, math.ceil(len(panels) / per_line))
    fig = viz.new_figure(viz.MAX_WIDTH_PX, 120 + 300 * lines)
    colors = {name: f"C{i % 10}" for i, name in enumerate(histories)}
    for k, (src, key) in enumerate(panels):
        ax = fig.add_subplot(lines, per_line, k + 1)
        for name, epochs in histories.items():
            for split in ("train",) if src == "train" else VAL_SPLITS:
                xs, ys = viz._series(epochs, split, key)
                if xs:
                    ax.plot(xs, ys, color=colors[name], linestyle=viz._SPLIT_STYLES.get(split, "-"), linewidth=1.2)
        metric = get_metric(key)
        better = "" if metric.higher_is_better is None else (" ↑" if metric.higher_is_better else " ↓")
        ax.set_title(f"{'training' if src == 'train' else 'validation'} {label(key)}{better}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[n], linewidth=2, label=_legend_name(n)) for n in histories]
    handles += [Line2D([], [], color="black", linestyle=style, label=split) for split, style in viz._SPLIT_STYLES.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    if title:
        viz.set_title(fig, title)
    legend_rows = math.ceil(len(handles) / 4)
    fig.tight_layout(rect=(0, min(0.4, (18 * legend_rows + 10) / fig.get_figheight() / viz.DPI), 1, 0.95))
    return fig


def _legend_name(name: str, width: int = 48) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def scale_ratios(run: Path) -> dict[str, np.ndarray]:
    """{split: each image's median(pred) / median(GT) depth} from RUN/validation/<split>/predictions.npz
    (`maskdepth.evaluation.metrics.depth_scale_ratio`); splits without saved depth predictions are left out."""
    import torch

    from maskdepth.evaluation.metrics import depth_scale_ratio

    out = {}
    for split in VAL_SPLITS:
        path = run / "validation" / split / "predictions.npz"
        if not path.is_file():
            continue
        try:
            with np.load(path) as npz:
                if "depth" not in npz.files or "gt_depth" not in npz.files:
                    continue
                pred, gt = npz["depth"], npz["gt_depth"]
        except (OSError, ValueError):
            continue
        ratio = depth_scale_ratio(torch.from_numpy(pred), torch.from_numpy(gt)).numpy()
        out[split] = ratio[np.isfinite(ratio)]
    return out


SCALE_RANGE = (1 / 16, 16)  # the histogram's x range; ratios outside are counted at its ends


def depth_scale_figure(ratios: dict[str, dict[str, np.ndarray]], title: str = ""):
    """A panel per validation split: per run a histogram of each image's median(pred) / median(GT)
    (log scale; 1 is the right scale, 2 twice too far; heights are fractions of the run's images,
    so runs validated on different numbers compare), its median in the legend."""
    splits = [s for s in VAL_SPLITS if any(len(r.get(s, ())) for r in ratios.values())]
    fig = viz.new_figure(viz.MAX_WIDTH_PX, 420)
    bins = np.geomspace(*SCALE_RANGE, 33)
    colors = {name: f"C{i % 10}" for i, name in enumerate(ratios)}
    for k, split in enumerate(splits):
        ax = fig.add_subplot(1, len(splits), k + 1)
        for name, per_split in ratios.items():
            v = per_split.get(split)
            if v is None or not len(v):
                continue
            ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, weights=np.full(len(v), 1 / len(v)), histtype="step",
                    linewidth=1.5, color=colors[name],
                    label=f"{_legend_name(name, 32)}: median ×{np.median(v):.2f} (n={len(v)})")
        ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
        ax.set_ylim(0, ax.get_ylim()[1] * (1.2 + 0.08 * len(ratios)))  # room for the legend above the bars
        ax.set_xscale("log")
        ax.set_xlim(*SCALE_RANGE)
        ax.set_xticks([1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8], ["1/8", "1/4", "1/2", "1", "2", "4", "8"])
        ax.set_title(f"{split}: median(pred) / median(GT) per image", fontsize=9)
        ax.set_xlabel("depth-scale ratio (1: right scale)", fontsize=8)
        ax.set_ylabel("fraction of the run's images", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper left")
    if title:
        viz.set_title(fig, title)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig
