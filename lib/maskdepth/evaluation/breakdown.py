"""Where the error lives: per-sample scores of a synthetic split grouped by what the sample is.

A split's average hides which scenes, objects, sizes or distances a model fails on. For a
stage of the synthetic world every validation sample's manifest row says what it is made
of, so its scores (from `validate`'s predictions.npz) can be grouped by scene family (ood
scenes of a training family are marked "held-out textures"), object family, object size,
camera height and the object's distance. Results: `breakdown.json` and a markdown table.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from maskdepth.core.errors import MaskdepthError
from maskdepth.evaluation.catalogue import format_value, label
from maskdepth.evaluation.metrics import SIZE_BINS, size_bin

# Scores shown per group (per-image means; labels from maskdepth.evaluation.metrics).
SCORES = ("iou", "sa_delta1", "delta1", "ordering")
FACTORS = ("scene", "object", "size", "camera height", "object distance")
HEIGHT_EDGES = (1.0, 2.4)  # 2.4 m: the top of the training camera range (data.camera)
DISTANCE_EDGES = (2.0, 5.0, 10.0)


def _bin(value: float, edges, unit: str) -> str:
    if not np.isfinite(value):
        return "none"
    for lo, hi in zip((None, *edges), (*edges, None)):
        if hi is None or value < hi:
            if lo is None:
                return f"< {hi:g} {unit}"
            return f">= {lo:g} {unit}" if hi is None else f"{lo:g}-{hi:g} {unit}"
    return "none"


def sample_factors(stage: str, split: str, arrays: dict, seed: int = 0) -> list[dict]:
    """What each predicted sample is made of, from the stage's manifest and the ground truth."""
    from maskdepth.world.backgrounds import OOD_FAMILIES
    from maskdepth.world.manifest import load_manifest
    from maskdepth.world.sources import SourceSpec, object_table, scene_table, view_cameras

    manifest = load_manifest(stage, seed)
    rows = manifest.rows(split)
    index = np.asarray(arrays["index"], dtype=np.int64)
    if len(index) and index.max() >= len(rows):
        raise MaskdepthError(f"predictions hold index {index.max()} but the {stage} {split} split has {len(rows)} samples")
    rows = rows[index]
    spec = SourceSpec(seed=manifest.seed)
    scenes, objects = scene_table(spec), object_table(spec)
    bg, fg = manifest.values("bg", rows), manifest.values("fg", rows)
    heights = view_cameras(spec, bg, manifest.values("placement", rows))["height"]
    gt_mask = arrays["gt_mask"].reshape(len(index), -1).astype(bool)
    gt_depth = arrays["gt_depth"].reshape(len(index), -1) if "gt_depth" in arrays else None
    bins = size_bin(torch.from_numpy(gt_mask.mean(axis=1))).tolist()  # the IoU-by-size bins of the metrics
    out = []
    for i in range(len(index)):
        scene = scenes[int(bg[i])]
        held_out_textures = int(bg[i]) >= spec.first_ood_bg and scene.family not in OOD_FAMILIES
        area = gt_mask[i].mean()
        distance = float(np.median(gt_depth[i][gt_mask[i]])) if gt_depth is not None and area > 0 else float("nan")
        out.append({
            "scene": scene.family + (" (held-out textures)" if held_out_textures else ""),
            "object": objects[int(fg[i])].family,
            "size": SIZE_BINS[bins[i]] if bins[i] >= 0 else "empty",
            "camera height": _bin(float(heights[i]), HEIGHT_EDGES, "m"),
            "object distance": _bin(distance, DISTANCE_EDGES, "m"),
        })
    return out


def breakdown(arrays: dict, stage: str, split: str, seed: int = 0, scores: list[dict] | None = None) -> dict:
    """{factor: {value: {"n", score: per-image mean}}} for one split's predictions; `scores`: their
    per-sample metrics when the caller has them already (`validate` does)."""
    from maskdepth.evaluation.loop import per_sample_metrics

    scores = per_sample_metrics(arrays) if scores is None else scores
    factors = sample_factors(stage, split, arrays, seed)
    result: dict = {}
    for factor in FACTORS:
        groups: dict[str, list[dict]] = defaultdict(list)
        for what, score in zip(factors, scores):
            groups[what[factor]].append(score)
        result[factor] = {value: _summary(members) for value, members in sorted(groups.items())}
    return result


def _summary(members: list[dict]) -> dict:
    row: dict = {"n": len(members)}
    for key in SCORES:
        values = [m[key] for m in members if m.get(key) is not None]
        row[key] = float(np.mean(values)) if values else None
    return row


def breakdown_table(result: dict, split: str) -> str:
    """One markdown table: a block of rows per factor, n and the SCORES per group."""
    head = ["factor", "group", "n", *(label(k) for k in SCORES)]
    lines = [f"Per-image means on the {split} split, grouped by what each sample is made of.", "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for factor, groups in result.items():
        for value, row in groups.items():
            cells = [format_value(k, row[k]) for k in SCORES]
            lines.append(f"| {factor} | {value} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_breakdown(predictions: str | Path, stage: str, split: str, out_dir: str | Path, seed: int = 0) -> dict:
    """Read validate's predictions.npz, write breakdown.json and breakdown.md into out_dir."""
    from maskdepth.evaluation.loop import load_predictions

    return write_breakdown_arrays(load_predictions(predictions), stage, split, out_dir, seed)


def write_breakdown_arrays(arrays: dict, stage: str, split: str, out_dir: str | Path, seed: int = 0,
                           scores: list[dict] | None = None) -> dict:
    """`write_breakdown` from predictions in memory (what `validate` calls, with its per-sample scores)."""
    from maskdepth.core.fileio import write_json, write_text

    result = breakdown(arrays, stage, split, seed, scores)
    out_dir = Path(out_dir)
    write_json(out_dir / "breakdown.json", {"stage": stage, "split": split, "groups": result})
    table = breakdown_table(result, split)
    write_text(out_dir / "breakdown.md", table + "\n")
    return {"groups": result, "table": table}
