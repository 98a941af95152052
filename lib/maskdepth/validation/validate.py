"""Validate a checkpoint on a split: metrics.json, predictions.npz and figures in RUN/validation/<split>/.

`validate` scores the model on the split in dataset order, so the numbers are reproducible
and training's own (`validation.scoring`), then writes the figures (`validation.split_figures`)
and, for a synthetic stage, breakdown.md. A split without samples (e.g. `ood` of an imported
folder) is not an error: metrics.json says so in "note", with n_samples 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import write_json
from maskdepth.core.runs import METRICS_FILE, VALIDATION_DIR, resolve_checkpoint, run_dir_of, stage_label
from maskdepth.evaluation.catalogue import json_ready
from maskdepth.plan.stages import SPLITS
from maskdepth.validation.scoring import (
    PREDICTIONS_NPZ,
    reading_mode,
    score_split,
    write_breakdown,
    write_predictions,
)
from maskdepth.validation.split_figures import write_figures


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
    tta: str | None = None,
    save_predictions: bool = True,
    figures: bool = True,
    progress_bar: bool = True,
) -> dict:
    """Score `checkpoint` on `split` of `data` and write metrics.json, predictions and figures.

    `checkpoint` is a .pt file or a run folder (-> checkpoints/best.pt). `data`, `size` and
    `seed` default to what the model was trained with (its checkpoint's config), so the
    split is the one training validated on; `tta` (test-time augmentation, `maskdepth.models.tta`)
    defaults to what its recipe says. `n_samples` limits the evaluation to the first
    n samples of the split (None or 0: all); `n_show` is how many the grids show.
    Returns the metrics.json content; figure and prediction files are named relative to
    its "out_dir". A split without samples gives n_samples 0 and a "note", not an error.

    metrics.json: {"run", "checkpoint", "epoch", "task", "model", "split", "data", "size", "seed",
    "n_samples", "tta", "overall": {...}, "per_sample": [{"index", "iou", ...}], "out_dir", "figures":
    [file names], "predictions": "predictions.npz" | null, "breakdown": "breakdown.md" | null}.
    "overall" is accumulated over all pixels of the split by `MaskMeter` / `DepthMeter` (every
    key of the catalogue; undefined ones are null); "per_sample" holds one score per image
    (the depth ones with the GT mask). Figures: mask_grid.png, depth_grid.png (input / GT /
    prediction / |error|), best_worst_iou.png, best_worst_abs_rel.png, histograms.png and
    training_curves.png (when the run folder has history.json).
    """
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
    tta = reading_mode(config, tta)  # named in metrics.json even for a split without samples
    tasks = tuple(info.get("tasks") or getattr(model, "tasks", None) or ("mask", "depth"))
    if batch_size < 1:
        raise MaskdepthError(f"batch_size={batch_size}: must be >= 1")
    spec = info["model_spec"]
    check_model(spec["name"], spec["in_channels"], spec.get("kwargs", {}), size, batch=batch_size,
                source=f"--size {size} --batch-size {batch_size}")

    run_dir = run_dir_of(ckpt_path)
    if out_dir is None:
        out_dir = (run_dir if run_dir is not None else ckpt_path.parent) / VALIDATION_DIR / split
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
        metrics = {**about, "tta": tta, "note": f"no {split} samples in {data}", "overall": {}, "per_sample": [],
                   "out_dir": str(out), "figures": [], "predictions": None}
        write_json(out / METRICS_FILE, metrics)
        return metrics

    arrays, overall, per_sample, tta = score_split(model, dataset, tasks, int(info["in_channels"]), config=config,
                                                   device=device, batch_size=batch_size, tta=tta,
                                                   progress_bar=progress_bar)

    run_name = run_dir.name if run_dir is not None else ckpt_path.stem
    heading = f"{run_name} · {ckpt_path.name} (epoch {info.get('epoch')}) · {split} of {stage_label(data)}, n={len(dataset)}"
    if save_predictions:
        write_predictions(out / PREDICTIONS_NPZ, arrays)
    written = write_figures(out, arrays, per_sample, dataset, tasks, overall, heading, n_show, run_dir) if figures else {}
    breakdown = write_breakdown(arrays, per_sample, str(data), split, seed, out)
    metrics = {
        **about,
        "tta": tta,
        "overall": json_ready(overall),
        "per_sample": per_sample,
        "out_dir": str(out),
        "figures": sorted(p.name for p in written.values()),
        "predictions": PREDICTIONS_NPZ if save_predictions else None,
        "breakdown": breakdown,
    }
    write_json(out / METRICS_FILE, metrics)
    return metrics

