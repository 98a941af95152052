"""Forward a model over one split and measure it: `run_split`, the one loop behind training-time
evaluation (`maskdepth.training.trainer`, every epoch) and `maskdepth.validation.validate` (a
checkpoint), so both compute the same numbers the same way.

Batches go to the device in the memory format the model trained in, through the model under
autocast only where `DeviceInfo.eval_amp` allows (CUDA; a CPU stays float32), into the
dataset-accumulated meters, the criterion's losses and, on request, the predictions that
validate's predictions.npz keeps (`per_sample_metrics`, `load_predictions` read them back).
Details: docs/evaluation.md, "The loop that scores a split"."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


def to_device(batch: dict, device, channels_last: bool = False) -> dict:
    """The batch's floating tensors on `device` (4-D ones channels_last if asked); the rest as is."""
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v) and v.is_floating_point():
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


@dataclass
class SplitRun:
    """What `run_split` measured over one split."""

    count: int  # samples seen
    losses: dict[str, float]  # mean per sample of each criterion entry ({} without a criterion)
    meters: dict  # task -> MaskMeter / DepthMeter, for the tasks measured
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # keep=True: index, gt_mask, mask_logits, ...

    def metrics(self) -> dict[str, float]:
        """Every meter's metrics in one dict (undefined ones NaN)."""
        out: dict[str, float] = {}
        for meter in self.meters.values():
            out.update(meter.compute())
        return out


@torch.no_grad()
def run_split(model: nn.Module, batches: Iterable[dict], *, tasks, in_channels: int, device_info,
              channels_last: bool = False, criterion: nn.Module | None = None, keep: bool = False) -> SplitRun:
    """Run `model` (in eval mode) over `batches` in their order and measure `tasks`.

    `criterion`: also average its losses per sample (floats; NaN stays NaN, for the trainer's
    divergence check). `keep`: also return the predictions and the ground truth as numpy arrays
    (the GT mask for every model: depth is also scored inside it)."""
    from maskdepth.datasets.dataset import model_input
    from maskdepth.evaluation.metrics import DepthMeter, MaskMeter

    model.eval()
    meters = {task: {"mask": MaskMeter, "depth": DepthMeter}[task]() for task in ("mask", "depth") if task in tasks}
    sums: dict[str, float] = {}
    count = 0
    kept: dict[str, list] = {"index": [], "mask_logits": [], "depth": [], "gt_mask": [], "gt_depth": []}
    dev = device_info.device
    for batch in batches:
        batch = to_device(batch, dev, channels_last)
        x = model_input(batch, in_channels)
        with torch.autocast(dev.type, dtype=device_info.amp_dtype, enabled=device_info.eval_amp):
            pred = model(x)
        pred = {k: v.float() for k, v in pred.items()}
        n = x.shape[0]
        count += n
        if criterion is not None:
            for k, v in criterion(pred, batch).items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
        if "mask" in meters:
            meters["mask"].update(pred["mask"], batch["mask"])
        if "depth" in meters:
            meters["depth"].update(pred["depth"], batch["depth"], mask=batch["mask"])
        if keep:
            kept["index"].append(torch.as_tensor(batch["index"]).cpu().numpy().astype(np.int64))
            kept["gt_mask"].append((batch["mask"] > 0.5).to(torch.uint8).cpu().numpy())
            if "mask" in meters:
                kept["mask_logits"].append(pred["mask"].cpu().numpy())
            if "depth" in meters:
                kept["depth"].append(pred["depth"].cpu().numpy())
                kept["gt_depth"].append(batch["depth"].float().cpu().numpy())
    losses = {k: float(v / max(count, 1)) for k, v in sums.items()}
    arrays = {k: np.concatenate(v) for k, v in kept.items() if v} if keep else {}
    return SplitRun(count, losses, meters, arrays)


def per_sample_metrics(arrays: dict) -> list[dict]:
    """One record per sample from saved predictions (also how tests recompute metrics.json)."""
    from maskdepth.evaluation.catalogue import finite_or_none
    from maskdepth.evaluation.metrics import depth_errors_per_sample, mask_scores_per_sample

    columns: dict[str, np.ndarray] = {}
    if "mask_logits" in arrays:
        scores = mask_scores_per_sample(torch.from_numpy(arrays["mask_logits"]), torch.from_numpy(arrays["gt_mask"]).float())
        columns.update({k: v.numpy() for k, v in scores.items()})
    if "depth" in arrays:
        gt_mask = torch.from_numpy(arrays["gt_mask"]).float() if "gt_mask" in arrays else None
        errors = depth_errors_per_sample(torch.from_numpy(arrays["depth"]), torch.from_numpy(arrays["gt_depth"]),
                                         mask=gt_mask)
        columns.update({k: v.numpy() for k, v in errors.items()})
    return [
        {"index": int(idx), **{k: finite_or_none(v[i]) for k, v in columns.items()}}
        for i, idx in enumerate(arrays["index"])
    ]


def load_predictions(path) -> dict[str, np.ndarray]:
    """The arrays of a predictions.npz that `validate` wrote (index, mask_logits, depth, gt_*)."""
    from pathlib import Path

    from maskdepth.core.errors import MaskdepthError

    path = Path(path)
    if not path.is_file():
        raise MaskdepthError(f"predictions {path}: no such file")
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}
