"""Depth parameterisation, shared by data, models, losses, metrics and predictions.

Depth is metric, in metres, everywhere the library exposes it, within [DEPTH_MIN, DEPTH_MAX].
Models emit a raw value that `depth_from_raw` maps log-uniformly onto the range: bounded and
positive (log-metrics are defined), with equal relative resolution near and far, which is what
AbsRel and δ thresholds measure. 16-bit PNGs store depth * DEPTH_PNG_SCALE (KITTI's convention);
0 means "no depth". The formula: docs/architecture.md, Contracts, "Depth"."""

from __future__ import annotations

import math

import numpy as np
import torch

DEPTH_MIN = 0.25
DEPTH_MAX = 80.0
DEPTH_PNG_SCALE = 256.0
_LOG_MIN = math.log(DEPTH_MIN)
_LOG_SPAN = math.log(DEPTH_MAX) - math.log(DEPTH_MIN)


def depth_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """Raw network output -> depth in metres, log-uniform on [DEPTH_MIN, DEPTH_MAX]."""
    return torch.exp(_LOG_MIN + _LOG_SPAN * torch.sigmoid(raw))


def raw_from_depth(depth: torch.Tensor) -> torch.Tensor:
    """Inverse of `depth_from_raw` (clamped inside the range)."""
    t = (torch.log(depth.clamp(DEPTH_MIN * 1.0001, DEPTH_MAX * 0.9999)) - _LOG_MIN) / _LOG_SPAN
    return torch.logit(t)


def normalised_log_depth(depth: torch.Tensor) -> torch.Tensor:
    """Metres -> t in [0, 1], log-uniform over [DEPTH_MIN, DEPTH_MAX] (= sigmoid of the raw output).

    The space the pixel depth losses compare in, and the colour position of depth in every
    picture (`maskdepth.figures.depthviz`, where near = bright)."""
    return (torch.log(depth.clamp(DEPTH_MIN, DEPTH_MAX)) - _LOG_MIN) / _LOG_SPAN


def valid_depth(gt, valid=None):
    """Where ground-truth depth counts (a torch tensor or a numpy array): finite and > 0, since 0
    means "no depth" and NaN "not measured"; and `valid` too where given (same shape)."""
    if torch.is_tensor(gt):
        ok = torch.isfinite(gt) & (gt > 0)
        return ok if valid is None else ok & valid.bool()
    ok = np.isfinite(gt) & (gt > 0)
    return ok if valid is None else ok & np.asarray(valid, bool)


def depth_to_png16(depth: np.ndarray) -> np.ndarray:
    """Metres -> uint16 (depth * 256, rounded); non-finite and <= 0 become 0 (invalid)."""
    d = np.nan_to_num(np.asarray(depth, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(d * DEPTH_PNG_SCALE), 0, 65535).astype(np.uint16)


def depth_from_png16(arr: np.ndarray) -> np.ndarray:
    """uint16 -> metres (float32); 0 stays 0 (invalid)."""
    return np.asarray(arr, dtype=np.float32) / DEPTH_PNG_SCALE
