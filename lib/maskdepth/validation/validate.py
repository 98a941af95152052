"""Validate a checkpoint on a split: metrics.json (overall and per sample), predictions, figures.

`validate(checkpoint, split=...)` runs the model over the split (in dataset order, so the
numbers are reproducible), writes into `out_dir` (default `RUN/validation/<split>/`) and
returns the content of metrics.json:

    metrics.json       {"run", "checkpoint", "epoch", "task", "model", "split", "data", "size",
                        "seed", "n_samples", "overall": {...}, "per_sample": [{"index", "iou", ...}],
                        "out_dir", "figures": [file names], "predictions": "predictions.npz" | null}
    predictions.npz    index [N], mask_logits / depth [N,1,H,W] float32 and the ground truth
                       (gt_mask uint8, gt_depth float32) they were scored against, so anyone
                       can recompute metrics.json without the model or the dataset
    mask_grid.png, depth_grid.png              input / GT / prediction / |error| rows
    best_worst_iou.png, best_worst_abs_rel.png the samples that fail worst and do best
    histograms.png     per-sample IoU and AbsRel
    training_curves.png (when the run folder has history.json)

"overall" is accumulated over all pixels of the split by `MaskMeter` / `DepthMeter` (the
same numbers training reports, every key of the catalogue in `maskdepth.evaluation.metrics`: pooled and
mean IoU, IoU per object-size bin, metric, scale-aligned and object-region depth, ordering;
undefined ones are null); "per_sample" holds one score per image, from
`mask_scores_per_sample` / `depth_errors_per_sample` (the depth ones with the GT mask).

A split without samples (e.g. `ood` of a dataset folder made by an import) is not an
error: metrics.json then says so in "note", with n_samples 0 and nothing else computed.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from maskdepth.core import runs
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import read_json, write_bytes, write_json
from maskdepth.core.runs import resolve_checkpoint
from maskdepth.evaluation.catalogue import (
    DETAIL,
    HEADLINE,
    higher_is_better,
    inline_summary,
    json_ready,
    task_keys,
)
from maskdepth.evaluation.loop import load_predictions, per_sample_metrics  # noqa: F401 (load_predictions: validate's name for reading predictions.npz)
from maskdepth.evaluation.tables import definitions_table, markdown_table
from maskdepth.figures import viz
from maskdepth.plan.stages import SPLITS

PREDICTIONS_NPZ = "predictions.npz"
METRICS_FILE = "metrics.json"
N_BEST_WORST = 4  # samples in each of the best and worst blocks
# Which per-sample metric ranks samples for each task (its direction: the metric catalogue).
RANKING = {"mask": "iou", "depth": "abs_rel"}


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint belongs to (RUN/checkpoints/x.pt), if it is one."""
    run = checkpoint.resolve().parent.parent
    return run if checkpoint.resolve().parent.name == "checkpoints" and runs.is_run_dir(run) else None


def _save_npz(path: Path, arrays: dict) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes(path, buf.getvalue())


def predict_split(model, dataset, tasks, in_channels: int, *, batch_size: int, device_info, channels_last=False,
                  progress_bar=True):
    """Run `model` over `dataset` in order (`evaluation.run_split`, the loop training validates
    with); numpy arrays of predictions and ground truth, plus meters."""
    from torch.utils.data import DataLoader

    from maskdepth.core.progress import progress
    from maskdepth.evaluation.loop import run_split

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, pin_memory=device_info.pin_memory)
    loader = progress(loader, desc="validate", disable=None if progress_bar else True)
    run = run_split(model, loader, tasks=tasks, in_channels=in_channels, device_info=device_info,
                    channels_last=channels_last, keep=True)
    return run.arrays, run.meters


def overall_metrics(arrays: dict) -> dict:
    """Dataset-accumulated metrics from saved predictions (what validate computed on the fly)."""
    from maskdepth.evaluation.metrics import DepthMeter, MaskMeter

    overall: dict[str, float] = {}
    if "mask_logits" in arrays:
        meter = MaskMeter()
        meter.update(torch.from_numpy(arrays["mask_logits"]), torch.from_numpy(arrays["gt_mask"]).float())
        overall.update(meter.compute())
    if "depth" in arrays:
        meter = DepthMeter()
        gt_mask = torch.from_numpy(arrays["gt_mask"]).float() if "gt_mask" in arrays else None
        meter.update(torch.from_numpy(arrays["depth"]), torch.from_numpy(arrays["gt_depth"]), mask=gt_mask)
        overall.update(meter.compute())
    return overall


def _images(dataset, positions) -> np.ndarray:
    return np.stack([np.asarray(dataset[int(p)]["image"], dtype=np.float32) for p in positions])


def _figures(out: Path, arrays, per_sample, dataset, tasks, overall: dict, heading: str, n_show: int,
             run_dir: Path | None):
    """Write the PNGs; returns {name: path}. Titles: `heading` plus the task's overall metrics."""

    def title(what: str, task: str | None = None) -> str:
        return f"{what} · {heading} · {inline_summary(overall, task_keys(task) if task else HEADLINE)}"

    figures: dict[str, Path] = {}
    n = len(arrays["index"])
    shown = list(range(min(n_show, n)))
    images = _images(dataset, shown)
    labels = [f"#{arrays['index'][p]}" for p in shown]

    def save(name, fig):
        figures[name] = out / f"{name}.png"
        viz.save_figure(fig, figures[name])

    def grid(task, positions, imgs, **kw):
        if task == "mask":
            prob = 1.0 / (1.0 + np.exp(-arrays["mask_logits"][positions]))
            return viz.mask_grid(imgs, arrays["gt_mask"][positions], prob, **kw)
        return viz.depth_grid(imgs, arrays["gt_depth"][positions], arrays["depth"][positions], **kw)

    for task in tasks:
        save(f"{task}_grid", viz.grid_figure(grid(task, shown, images, sample_labels=labels), title(task, task)))
        key = RANKING[task]
        values = [np.nan if r[key] is None else r[key] for r in per_sample]
        worst, best = viz.best_worst_order(values, N_BEST_WORST, higher_is_better=higher_is_better(key))
        if worst:
            chosen = worst + best
            sample_labels = [f"#{arrays['index'][p]} {key} {values[p]:.3f}" for p in chosen]
            g = grid(task, chosen, _images(dataset, chosen), per_row=len(worst), sample_labels=sample_labels,
                     block_names=["worst", "best"])
            save(f"best_worst_{key}", viz.grid_figure(g, title(f"{task}: worst and best by {key}", task)))
    hist = {key: [r[key] for r in per_sample if r.get(key) is not None] for key in (RANKING[t] for t in tasks)}
    save("histograms", viz.histogram_figure(hist, title("per-sample metrics")))
    if run_dir is not None and (run_dir / "history.json").is_file():
        history = read_json(run_dir / "history.json")
        save("training_curves", viz.training_curves_figure(history, f"training · {run_dir.name}"))
    return figures


def validate(
    checkpoint: str | os.PathLike,
    data: str | None = None,
    split: str = "unseen",
    out_dir: str | os.PathLike | None = None,
    *,
    n_samples: int | None = None,
    n_show: int = 8,
    batch_size: int = 64,
    device: str = "auto",
    size: int | None = None,
    seed: int | None = None,
    save_predictions: bool = True,
    figures: bool = True,
    progress_bar: bool = True,
) -> dict:
    """Score `checkpoint` on `split` of `data` and write metrics.json, predictions and figures.

    `checkpoint` is a .pt file or a run folder (-> checkpoints/best.pt). `data`, `size` and
    `seed` default to what the model was trained with (its checkpoint's config), so the
    split is the one training validated on. `n_samples` limits the evaluation to the first
    n samples of the split (None or 0: all); `n_show` is how many the grids show.
    Returns the metrics.json content; figure and prediction files are named relative to
    its "out_dir". A split without samples gives n_samples 0 and a "note", not an error.
    """
    from maskdepth.core.device import resolve_device
    from maskdepth.core.fileio import check_output
    from maskdepth.datasets.dataset import open_split
    from maskdepth.models.budget import check_model
    from maskdepth.models.checkpoint import load_model

    if split not in SPLITS:
        raise MaskdepthError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise MaskdepthError(f"--size {size!r}: must be a whole number of pixels >= 1")
    ckpt_path = resolve_checkpoint(checkpoint)
    if out_dir is not None:
        check_output(out_dir, reads=[ckpt_path], folder=True)
    model, info = load_model(ckpt_path)
    config = info.get("config") or {}
    data = data or config.get("data") or info.get("data")
    if not data:
        raise MaskdepthError(f"checkpoint {ckpt_path}: its config names no dataset; pass data (a stage or folder)")
    input_size = info.get("input_size") or [config.get("size", 64)] * 2
    size = int(size or input_size[0])
    seed = int(config.get("seed", 0) if seed is None else seed)
    tasks = tuple(info.get("tasks") or getattr(model, "tasks", None) or ("mask", "depth"))
    if batch_size < 1:
        raise MaskdepthError(f"batch_size={batch_size}: must be >= 1")
    spec = info["model_spec"]
    check_model(spec["name"], spec["in_channels"], spec.get("kwargs", {}), size, batch=batch_size,
                source=f"--size {size} --batch-size {batch_size}")

    run_dir = run_dir_of(ckpt_path)
    if out_dir is None:
        out_dir = (run_dir if run_dir is not None else ckpt_path.parent) / "validation" / split
    out = Path(out_dir)

    if n_samples and n_samples < 0:
        raise MaskdepthError(f"n_samples={n_samples}: must be >= 0 (0 or None: the whole split)")
    dataset = open_split(data, split, size, seed)
    if dataset is not None and n_samples:
        dataset = torch.utils.data.Subset(dataset, range(min(int(n_samples), len(dataset))))
    about = {
        "run": str(run_dir) if run_dir is not None else None,
        "checkpoint": str(ckpt_path),
        "epoch": info.get("epoch"),
        "task": info.get("task"),
        "model": info["model_spec"]["name"],
        "split": split,
        "data": str(data),
        "size": size,
        "seed": seed,
        "n_samples": len(dataset) if dataset is not None else 0,
    }
    if dataset is None:
        metrics = {**about, "note": f"no {split} samples in {data}", "overall": {}, "per_sample": [],
                   "out_dir": str(out), "figures": [], "predictions": None}
        write_json(out / METRICS_FILE, metrics)
        return metrics

    dev = resolve_device(device)
    model = model.to(dev.device)
    # In the memory format it was trained and validated in, so the numbers are training's own.
    channels_last = bool(config.get("channels_last", False))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    arrays, meters = predict_split(model, dataset, tasks, int(info["in_channels"]), batch_size=batch_size,
                                   device_info=dev, channels_last=channels_last, progress_bar=progress_bar)
    overall: dict[str, float] = {}
    for meter in meters.values():
        overall.update(meter.compute())
    per_sample = per_sample_metrics(arrays)

    run_name = run_dir.name if run_dir is not None else ckpt_path.stem
    heading = f"{run_name} · {ckpt_path.name} (epoch {info.get('epoch')}) · {split} of {runs.stage_label(data)}, n={len(dataset)}"
    if save_predictions:
        _save_npz(out / PREDICTIONS_NPZ, arrays)
    written = _figures(out, arrays, per_sample, dataset, tasks, overall, heading, n_show, run_dir) if figures else {}
    breakdown = _write_breakdown(arrays, per_sample, str(data), split, seed, out)
    metrics = {
        **about,
        "overall": json_ready(overall),
        "per_sample": per_sample,
        "out_dir": str(out),
        "figures": sorted(p.name for p in written.values()),
        "predictions": PREDICTIONS_NPZ if save_predictions else None,
        "breakdown": breakdown,
    }
    write_json(out / METRICS_FILE, metrics)
    return metrics


SECTIONS = {
    "mask": ("mask_grid.png", "best_worst_iou.png"),
    "depth": ("depth_grid.png", "best_worst_abs_rel.png"),
    "overview": ("histograms.png", "training_curves.png"),
}


def _write_breakdown(arrays: dict, per_sample: list[dict], data: str, split: str, seed: int,
                     out: Path) -> str | None:
    """breakdown.md/.json (`maskdepth.evaluation.breakdown`: the scores grouped by scene and object family,
    size, camera height and distance) for a split of a synthetic stage; None for a folder."""
    from maskdepth.plan.stages import STAGES

    if data not in STAGES or "gt_mask" not in arrays:
        return None
    from maskdepth.evaluation.breakdown import write_breakdown_arrays

    write_breakdown_arrays(arrays, data, split, out, seed, scores=per_sample)
    return "breakdown.md"


def breakdown_markdown(metrics: dict) -> str | None:
    """The breakdown table that `validate` wrote beside metrics.json (None when there is none)."""
    name = metrics.get("breakdown")
    path = Path(metrics.get("out_dir", "")) / name if name else None
    return path.read_text() if path is not None and path.is_file() else None


def figure_paths(metrics: dict, section: str) -> list[Path]:
    """The PNGs a validation wrote for one notebook section: "mask", "depth" or "overview"."""
    if section not in SECTIONS:
        raise MaskdepthError(f"section={section!r}: choose one of {', '.join(SECTIONS)}")
    out = Path(metrics["out_dir"])
    return [out / name for name in SECTIONS[section] if name in metrics.get("figures", [])]


def summary_markdown(metrics: dict) -> str:
    """What was validated and how it scored, as markdown (for notebooks and summaries): the
    headline row, then every metric with its definition."""
    head = (f"**{metrics['model']}** ({metrics['task']}), `{metrics['checkpoint']}` (epoch {metrics['epoch']}), "
            f"split **{metrics['split']}** of {metrics['data']}: {metrics['n_samples']} samples at {metrics['size']} px")
    if not metrics["n_samples"]:
        return f"{head}\n\n*{metrics.get('note') or 'no samples'}: nothing to score.*\n"
    overall = metrics["overall"]
    return "\n".join([head, "", markdown_table([(metrics["split"], overall)], HEADLINE).rstrip(), "",
                      definitions_table(overall, DETAIL)])


def summary_line(metrics: dict) -> str:
    """One line for logs and notebooks: split, sample count and the headline metrics."""
    if not metrics["n_samples"]:
        return f"{metrics['split']}: {metrics.get('note') or 'no samples'} (skipped)"
    return f"{metrics['split']} ({metrics['n_samples']} samples): {inline_summary(metrics['overall'])}"
