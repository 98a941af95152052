"""The run page: RUN/index.html, written by `maskdepth run` when a stage ends (also when it fails or
is interrupted), by `maskdepth train` when training ends and by `maskdepth report --page RUN`.

It shows the summary (stage, status, times, model, data), the gate decision, the metrics of each
validation split (labels, directions and definitions from the catalogue), the executed notebooks
rendered as HTML, the real-photo check, every figure of the run folder, the parameters
(config.json, run.json) and links to the run's files. This module gathers the values;
templates/run.html.j2 and run_sections.html.j2 write the HTML. Every file is written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from maskdepth.core import runs
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import write_text
from maskdepth.core.runs import METRICS_FILE, VALIDATION_DIR, damaged_as_error, format_duration, run_metrics
from maskdepth.evaluation.catalogue import DETAIL, HEADLINE, format_value, label
from maskdepth.pages.html import href, read_optional, render, value_text
from maskdepth.pages.metric_html import metric_table
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
    """The run page: the values of each section gathered here, written by templates/run.html.j2."""
    problems: list[str] = []
    info = read_optional(run_dir / "run.json", problems)
    config = read_optional(run_dir / "config.json", problems)
    metrics = run_metrics(run_dir, read_optional(run_dir / METRICS_FILE, problems))
    history_file = read_optional(run_dir / "history.json", problems)
    history = list((history_file or {}).get("epochs") or [])
    params = (info or {}).get("params") or {}
    settings = {**params, **(config or {})}
    stage = (info or {}).get("stage")
    status = _status(info, metrics, history, settings)
    name = run_dir.resolve().name
    title = f"{stage + ' run' if stage else 'training run'} {name}"

    page = {
        "summary": _summary(info, settings, metrics, history, status),
        "gate": _gate(info, status),
        "metrics": _metrics(metrics, history),
        "notebooks": _notebooks(run_dir, info, render_notebooks),
        "real": _real(run_dir, read_optional(run_dir / REAL_DIR / REAL_JSON, problems)),
        "figures": _figures_shown(run_dir),
        "parameters": _parameters(config, params),
        "files": [(href(run_dir / rel, run_dir), rel) for rel in runs.RUN_FOLDER_FILES if (run_dir / rel).exists()],
    }
    gate = (info or {}).get("gate")
    verdict = ("gate " + ("passed" if gate.get("passed") else "not passed")) if gate else None
    error = str(info["error"]) if (info or {}).get("error") else None
    interrupted = None
    if (info or {}).get("interrupted"):
        where = info["interrupted"]
        interrupted = {"signal": str(where.get("signal")), "notebook": str(where.get("notebook")),
                       "epoch": where.get("epoch")}
    return render("run.html.j2", title, status=status, verdict=verdict, folder=str(run_dir.resolve()),
                  run_dir=str(run_dir), error=error, interrupted=interrupted, problems=problems, page=page)


def _status(info, metrics, history, settings) -> str:
    if info and info.get("status"):
        return str(info["status"])
    if metrics:
        return "ok"
    if history:
        return f"unfinished ({history[-1].get('epoch', '?')}/{settings.get('epochs', '?')} epochs)"
    return "unfinished (no epoch finished)"


def _summary(info, settings, metrics, history, status) -> dict:
    """The summary table's values (the `summary` macro writes the rows)."""
    info = info or {}
    metrics = metrics or {}
    train_time = metrics.get("train_time_s")
    if train_time is None and history:
        train_time = sum(e.get("time_s") or 0.0 for e in history)
    kwargs = settings.get("model_kwargs") or {}
    counts = metrics.get("n_samples") or {}
    precision = metrics.get("precision")
    if isinstance(precision, dict) and precision.get("autocast"):
        autocast = "float32" if precision["autocast"] == "off" else f"{precision['autocast']} autocast"
        precision = {"label": autocast, "reason": str(precision.get("reason", ""))}
    else:
        precision = None
    resumes = []
    for r in info.get("resumes") or []:
        changed = ", ".join(r.get("changed") or {}) or "nothing"
        resumes.append(f"{r.get('at')} (was {r.get('previous_status')}), skipped "
                       f"{', '.join(r.get('skipped') or []) or 'nothing'}, changed {changed}")
    machine = None
    if info.get("device"):
        dev = info["device"]
        machine = (f"python {info.get('python', '?')}, torch {dev.get('torch', '?')}, "
                   f"CUDA {'yes' if dev.get('cuda_available') else 'no'}, {dev.get('platform', '')}")
    return {
        "status": status, "stage": info.get("stage"), "started": info.get("start"), "ended": info.get("end"),
        "run_time": format_duration(info["seconds"]) if info.get("seconds") is not None else None,
        "train_time": format_duration(train_time) if train_time is not None else None,
        "model": str(metrics.get("model") or settings.get("model") or "?"),
        "model_kwargs": json.dumps(kwargs) if kwargs else None,
        "params": f"{metrics['params']:,}" if metrics.get("params") is not None else None,
        "task": f"{settings.get('task', '?')} (input {settings.get('input_mode', 'fg_bg')})",
        "data": metrics.get("data") or settings.get("data") or "?", "size": settings.get("size", "?"),
        "seed": settings.get("seed", 0), "counts": list(counts.items()) if counts else [],
        "done": metrics.get("epochs", history[-1].get("epoch") if history else 0),
        "epochs": settings.get("epochs", "?"),
        "best": ({"epoch": metrics["best_epoch"], "by": metrics.get("best_metric", "?")}
                 if metrics.get("best_epoch") is not None else None),
        "lr": settings.get("lr", "?"), "batch": settings.get("batch_size", "?"),
        "device": ({"name": metrics["device"], "count": metrics.get("world_size", 1)}
                   if metrics.get("device") else None),
        "precision": precision,
        "prerequisite": str(info["prerequisite"].get("decision", "")) if info.get("prerequisite") else None,
        "resumes": resumes, "git_commit": info.get("git_commit"), "machine": machine,
    }


def _gate(info, status) -> dict:
    """The gate decision: none for a run made by `maskdepth train`, else its verdict and checks."""
    from maskdepth.validation.gate import describe_check

    gate = (info or {}).get("gate")
    view = {"stage_run": info is not None, "status": status, "verdict": None, "checks": []}
    if not gate:
        return view
    view["verdict"] = "passed" if gate.get("passed") else "not passed"
    for check in gate.get("checks") or []:
        split, _, key = str(check.get("metric", "")).partition(".")
        bound = "min" if "min" in check else "max"
        view["checks"].append({
            "split": split, "label": label(key), "value": format_value(key, check.get("value")),
            "bound": bound, "limit": str(check.get(bound)), "check": describe_check(check),
            "result": "skipped" if check.get("skipped") else ("ok" if check.get("ok") else "failed")})
    return view


def _split_rows(source: Mapping, counts: Mapping) -> tuple[list, dict]:
    rows = [(s, source.get(s) or {}) for s in VAL_SPLITS if s in source or counts.get(s) == 0]
    notes = {s: f"no {s} samples" for s in VAL_SPLITS if counts.get(s) == 0}
    return rows, notes


def _metrics(metrics, history) -> dict:
    """Where the metrics come from (metrics.json's best epoch, else history.json's last) and their tables."""
    if metrics:
        rows, notes = _split_rows(metrics, metrics.get("n_samples") or {})
        view = {"source": "metrics", "epoch": metrics.get("best_epoch", "?"), "by": metrics.get("best_metric", "?"),
                "read_as": ", ".join(f"{split} {how}" for split, how in (metrics.get("read_as") or {}).items())}
    elif history:
        last = history[-1]
        rows, notes = _split_rows(last, {})
        view = {"source": "history", "epoch": last.get("epoch", "?"), "by": None}
    else:
        return {"source": None}
    view["headline"] = metric_table(rows, HEADLINE, notes=notes) if rows else None
    view["detail"] = metric_table(rows, ("loss", *DETAIL), notes=notes) if rows else None
    return view


def _range_m(value) -> str:
    """[lo, hi] in metres as "2.1–5.0 m"; anything else as it is."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{value[0]:.1f}–{value[1]:.1f} m"
    return value_text(value)


def _real(run_dir: Path, real) -> list[dict] | None:
    """The real-photo check (RUN/real/real.json): per photo the model beside the baselines, where
    the error lives, and the figure (photo | measured | predicted depth); None without one."""
    if not real:
        return None
    photos = []
    for photo in real.get("photos") or []:
        if not isinstance(photo, dict):
            continue
        view = {"name": str(photo.get("name", "?")), "note": None}
        photos.append(view)
        if not isinstance(photo.get("model"), dict):
            view["note"] = str(photo.get("note", "not scored"))
            continue
        try:
            view["rows"] = table_rows(photo)
        except (KeyError, TypeError, AttributeError):
            view["note"] = f"damaged entry in {REAL_JSON}"
            continue
        figure = run_dir / REAL_DIR / str(photo.get("figure", ""))
        shown = photo.get("figure") and figure.is_file() and figure.parent == run_dir / REAL_DIR
        view.update(columns=[label(k) for k in SCORE_KEYS], about=str(photo.get("about", "")),
                    measured=_range_m(photo.get("gt_range_m")), predicted=_range_m(photo.get("pred_range_m")),
                    network_size=value_text(photo.get("network_size")), tta=value_text(real.get("tta", "none")),
                    figure=href(figure, run_dir) if shown else None)
    return photos


def _figures(run_dir: Path) -> list[tuple[str, list[Path]]]:
    """(group, PNGs) in page order: the run's figures, then each validation split's."""
    groups = [("run", sorted((run_dir / "figures").glob("*.png")))]
    val = run_dir / VALIDATION_DIR
    splits = [s for s in VAL_SPLITS if (val / s).is_dir()]
    splits += sorted(p.name for p in val.iterdir() if p.is_dir() and p.name not in splits) if val.is_dir() else []
    for split in splits:
        pngs = sorted((val / split).glob("*.png"),
                      key=lambda p: (FIGURE_ORDER.index(p.name) if p.name in FIGURE_ORDER else len(FIGURE_ORDER), p.name))
        groups.append((f"validation · {split}", pngs))
    return [(g, p) for g, p in groups if p]


def _figures_shown(run_dir: Path) -> list[dict]:
    """Per group its PNGs, each shown once: a picture seen before (the same training curves in
    every split) is a link to where it is shown."""
    import hashlib

    seen: dict[str, Path] = {}
    shown = []
    for group, pngs in _figures(run_dir):
        split_dir = pngs[0].parent
        has_metrics = (split_dir / METRICS_FILE).is_file() and split_dir.parent.name == VALIDATION_DIR
        view = {"name": group, "metrics_link": href(split_dir / METRICS_FILE, run_dir) if has_metrics else None,
                "figures": []}
        for png in pngs:
            digest = hashlib.sha1(png.read_bytes()).hexdigest()
            first = seen.setdefault(digest, png)
            view["figures"].append({"link": href(png, run_dir), "rel": png.relative_to(run_dir).as_posix(),
                                    "same_as": first.relative_to(run_dir).as_posix() if first != png else None})
        shown.append(view)
    return shown


def _notebooks(run_dir: Path, info, render: bool) -> list[dict]:
    """Each notebook of the run: its status and time, and links to it and to its HTML rendering."""
    folder = run_dir / "notebooks"
    entries = {e.get("notebook"): e for e in (info or {}).get("notebooks") or []}
    names = [n for n in entries if n] + sorted(p.name for p in folder.glob("*.ipynb") if p.name not in entries)
    rows = []
    for nb in names:
        entry = entries.get(nb, {})
        ipynb = folder / nb
        row = {"name": nb, "status": entry.get("status") or ("ok" if ipynb.is_file() else "–"),
               "seconds": f"{entry['seconds']:.1f} s" if isinstance(entry.get("seconds"), (int, float)) else "",
               "link": None}
        if ipynb.is_file():
            html, note = render_notebook(ipynb) if render else earlier_rendering(ipynb)
            row.update(link=href(ipynb, run_dir), note=note, html_link=href(html, run_dir) if html else None,
                       html_name=html.name if html else None)
        rows.append(row)
    return rows


def _parameters(config, params) -> dict:
    """config.json and run.json's parameters as (name, text) rows."""
    return {"config": [(k, value_text(v)) for k, v in config.items()] if config else [],
            "params": [(k, value_text(v)) for k, v in params.items()] if params else []}
