"""A split scored: the model run over it in dataset order (`evaluation.run_split`, the loop training
validates with), its overall and per-sample metrics, predictions.npz and the breakdown by family.

predictions.npz holds index [N], mask_logits / depth [N,1,H,W] float32 and the ground truth
(gt_mask uint8, gt_depth float32) they were scored against, so anyone can recompute
metrics.json without the model or the dataset.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from maskdepth.core.fileio import write_bytes

PREDICTIONS_NPZ = "predictions.npz"


def write_predictions(path: Path, arrays: dict) -> None:
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



def reading_mode(config: dict, tta: str | None = None) -> str:
    """The test-time augmentation a split is scored with: `tta` when given, else the recipe's
    (`maskdepth.models.tta`); named in a split's metrics even when it has no samples to read."""
    from maskdepth.models.tta import reading_tta

    return reading_tta(config, tta)


def score_split(model, dataset, tasks, in_channels: int, *, config: dict, device: str, batch_size: int,
                tta: str | None = None, progress_bar: bool = True) -> tuple[dict, dict[str, float], list[dict], str]:
    """`model` over `dataset` on `device`, read as its recipe (`config`) says or with test-time
    augmentation `tta` (`maskdepth.models.tta`): (arrays, overall metrics, per-sample metrics, the mode)."""
    from maskdepth.core.device import resolve_device
    from maskdepth.evaluation.loop import per_sample_metrics
    from maskdepth.models.tta import as_recipe_reads

    dev = resolve_device(device)
    model, mode = as_recipe_reads(model.to(dev.device), config, tta)
    # In the memory format it was trained and validated in, so the numbers are training's own.
    channels_last = bool(config.get("channels_last", False))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    arrays, meters = predict_split(model, dataset, tasks, in_channels, batch_size=batch_size,
                                   device_info=dev, channels_last=channels_last, progress_bar=progress_bar)
    overall: dict[str, float] = {}
    for meter in meters.values():
        overall.update(meter.compute())
    return arrays, overall, per_sample_metrics(arrays), mode


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


def write_breakdown(arrays: dict, per_sample: list[dict], data: str, split: str, seed: int,
                    out: Path) -> str | None:
    """breakdown.md/.json (`maskdepth.evaluation.breakdown`: the scores grouped by scene and object family,
    size, camera height and distance) for a split of a synthetic stage; None for a folder."""
    from maskdepth.plan.stages import STAGES

    if data not in STAGES or "gt_mask" not in arrays:
        return None
    from maskdepth.evaluation.breakdown import write_breakdown_arrays

    write_breakdown_arrays(arrays, data, split, out, seed, scores=per_sample)
    return "breakdown.md"

