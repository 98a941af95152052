"""The real-photo check: a checkpoint's depth on photographs with measured depth.

Synthetic splits say how well a model fits the world it was trained in; this says whether its
depth means anything on a photograph. Each photo is predicted the way `maskdepth predict` does and
scored on its measured pixels (pair ordering, scale-aligned and metric depth, where the error
lives), beside two baselines scored the same way (`constant`, and `ramp`: farther towards the top),
so a number has a floor to stand on. Scores and baselines: docs/evaluation.md, "The real-photo check"."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from maskdepth.core.depth import valid_depth
from maskdepth.datasets.measured import MeasuredPhoto, measured_photos
from maskdepth.evaluation.catalogue import finite_or_none, format_value
from maskdepth.evaluation.metrics import compute_depth_errors, depth_relief, pairwise_ordering, scale_aligned

REAL_DIR = "real"  # RUN/real/: real.json and one figure per photo
REAL_JSON = "real.json"
SCORE_KEYS = ("pair_ordering", "sa_delta1", "sa_abs_rel", "delta1", "abs_rel", "relief")
BASELINES = ("constant", "ramp")


def ramp(height: int, width: int) -> np.ndarray:
    """The "farther towards the top" map: depth 2 at the top row, 1 at the bottom, linear."""
    rows = np.linspace(2.0, 1.0, height, dtype=np.float32)[:, None]
    return np.broadcast_to(rows, (height, width)).copy()


def depth_scores(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None, *, seed: int = 0) -> dict:
    """SCORE_KEYS of a predicted depth map against measured depth (NaN = not measured), over
    `region` (bool) when given; scale alignment uses the region's own median ratio."""
    p = torch.from_numpy(np.asarray(pred, np.float32))[None, None]
    g = torch.from_numpy(np.nan_to_num(np.asarray(gt, np.float32), nan=0.0))[None, None]
    valid = valid_depth(g)
    if region is not None:
        valid &= torch.from_numpy(np.asarray(region, bool))[None, None]
    n = int(valid.sum())
    if n == 0:
        return {"n_pixels": 0, **{k: math.nan for k in SCORE_KEYS}}
    metric = compute_depth_errors(p, g, valid)
    aligned = compute_depth_errors(scale_aligned(p, g, valid).float(), g, valid)
    return {"n_pixels": n, "pair_ordering": pairwise_ordering(p[0, 0], g[0, 0], valid[0, 0], seed=seed),
            "sa_delta1": aligned["delta1"], "sa_abs_rel": aligned["abs_rel"],
            "delta1": metric["delta1"], "abs_rel": metric["abs_rel"], "relief": depth_relief(p, g, valid)}


def where_error_lives(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> dict[str, dict]:
    """Scores on the near and far halves of the measured depth and inside / outside the predicted mask."""
    measured = np.isfinite(gt)
    middle = float(np.nanmedian(gt))
    regions = {"near half": measured & (np.nan_to_num(gt, nan=np.inf) < middle),
               "far half": measured & (np.nan_to_num(gt, nan=-np.inf) >= middle)}
    if mask is not None and mask.any() and (~mask).any():
        regions["inside predicted mask"] = mask
        regions["outside predicted mask"] = ~mask
    return {name: depth_scores(pred, gt, region) for name, region in regions.items()}


def check_photo(predictor, photo: MeasuredPhoto) -> tuple[dict, dict]:
    """(scores of the model and the baselines on `photo`, the model's outputs at the photo's size)."""
    (result,) = predictor.predict(photo.image, show_progress=False)
    if "depth" not in result:
        return {"name": photo.name, "about": photo.about, "note": "the checkpoint predicts no depth"}, result
    gt, pred = photo.depth, result["depth"]
    height, width = gt.shape
    record = {
        "name": photo.name,
        "about": photo.about,
        "size": [height, width],
        "network_size": list(predictor.working_size(height, width)),
        "gt_range_m": [float(np.nanmin(gt)), float(np.nanmax(gt))],
        "pred_range_m": [float(pred.min()), float(pred.max())],
        "model": depth_scores(pred, gt),
        "baselines": {"constant": depth_scores(np.ones_like(gt), gt), "ramp": depth_scores(ramp(height, width), gt)},
        "where": where_error_lives(pred, gt, result.get("mask")),
    }
    return record, result


def default_out_dir(checkpoint) -> Path:
    """Where the check of `checkpoint` goes by default: RUN/real (beside the checkpoint when it is in no run)."""
    from maskdepth.core.runs import resolve_checkpoint, run_dir_of

    path = resolve_checkpoint(checkpoint)
    return (run_dir_of(path) or path.parent) / REAL_DIR


def real_check(checkpoint, out_dir=None, *, photos=None, device: str = "auto", size: int | None = None,
               tta: str | None = None, figures: bool = True) -> dict:
    """Score `checkpoint` on the measured photos, read as `maskdepth predict` reads it (`tta`: its
    recipe's test-time augmentation unless given); with `out_dir` (never the checkpoint or a folder
    holding it: `fileio.check_output`), write REAL_JSON and a figure per photo (photo | measured
    depth | predicted depth, one colour bar). Returns the record."""
    from maskdepth.core.fileio import check_output, write_json
    from maskdepth.core.runs import resolve_checkpoint
    from maskdepth.prediction.predictor import Predictor

    checkpoint = resolve_checkpoint(checkpoint)
    if out_dir is not None:  # refused before the checkpoint is loaded
        out_dir = check_output(out_dir, reads=[checkpoint], folder=True)
    predictor = Predictor(checkpoint, device=device, size=size, tta=tta)
    record = {"checkpoint": str(predictor.checkpoint), "tta": predictor.tta, "photos": []}
    for photo in measured_photos(photos):
        scores, result = check_photo(predictor, photo)
        if out_dir is not None and figures and "depth" in result:
            scores["figure"] = f"{photo.name}.png"
            save_real_figure(Path(out_dir) / scores["figure"], photo, result["depth"], scores)
        record["photos"].append(scores)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(out_dir) / REAL_JSON, _json_ready(record))
        record["out_dir"] = str(out_dir)
    return record


def _json_ready(value):
    """The record with every non-finite float as None (JSON null), at any depth."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return finite_or_none(value) if isinstance(value, float) else value


def save_real_figure(path: Path, photo: MeasuredPhoto, pred: np.ndarray, scores: dict) -> None:
    """photo | measured depth | predicted depth (metric), one log colour bar in metres over both."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from maskdepth.figures.depthviz import depth_colorbar, depth_to_rgb
    from maskdepth.figures.viz import save_figure

    gt = photo.depth
    vmin = max(0.25, float(min(np.nanmin(gt), pred.min())) * 0.95)
    vmax = float(max(np.nanmax(gt), pred.max())) * 1.05
    model = scores["model"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    panels = [(photo.image, f"{photo.name} ({gt.shape[1]}×{gt.shape[0]})"),
              (depth_to_rgb(gt, vmin=vmin, vmax=vmax), "measured depth (black: not measured)"),
              (depth_to_rgb(pred, vmin=vmin, vmax=vmax),
               f"predicted: pair ordering {model['pair_ordering']:.3f}, sa δ1 {model['sa_delta1']:.3f}, "
               f"relief {model['relief']:.2f}")]
    for ax, (image, title) in zip(axes, panels):
        ax.imshow(image)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    depth_colorbar(fig, axes, vmin=vmin, vmax=vmax, fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


def summary_markdown(record: dict) -> str:
    """One table per photo: the model beside the baselines, then where the error lives."""
    from maskdepth.evaluation.catalogue import label

    lines = []
    for photo in record["photos"]:
        if "model" not in photo:
            lines.append(f"**{photo['name']}**: {photo.get('note', 'not scored')}")
            continue
        gt_lo, gt_hi = photo["gt_range_m"]
        p_lo, p_hi = photo["pred_range_m"]
        h, w = photo["network_size"]
        lines += [f"**{photo['name']}** — {photo['about']}; measured {gt_lo:.1f}–{gt_hi:.1f} m, predicted "
                  f"{p_lo:.1f}–{p_hi:.1f} m; the network saw {w}×{h}.", "",
                  "| | " + " | ".join(label(k) for k in SCORE_KEYS) + " |",
                  "|---|" + "---|" * len(SCORE_KEYS)]
        for name, cells in table_rows(photo):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def table_rows(photo: dict) -> list[tuple[str, list[str]]]:
    """(row name, formatted SCORE_KEYS) for one scored photo: the model, the baselines, then the
    model on each region of `where_error_lives`."""
    rows = [("model", photo["model"]), *((f"{b} (baseline)", photo["baselines"][b]) for b in BASELINES),
            *((f"model, {name}", scores) for name, scores in photo["where"].items())]
    def cell(key, value) -> str:  # a file's value may be anything: only numbers are shown
        return format_value(key, value if isinstance(value, (int, float)) and not isinstance(value, bool) else None)

    return [(name, [cell(k, scores.get(k)) for k in SCORE_KEYS]) for name, scores in rows]


def summary_line(record: dict) -> str:
    parts = []
    for photo in record["photos"]:
        if "model" in photo:
            m, r = photo["model"], photo["baselines"]["ramp"]
            parts.append(f"{photo['name']}: pair ordering {m['pair_ordering']:.3f} (ramp {r['pair_ordering']:.3f}), "
                         f"sa δ1 {m['sa_delta1']:.3f} (ramp {r['sa_delta1']:.3f}), δ1 {m['delta1']:.3f}")
    return "; ".join(parts) or "no real photo scored"
