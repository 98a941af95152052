"""Checkpoints hold everything needed to resume training *and* to use the model alone.

A checkpoint is a dict saved with `torch.save` (atomically):

    format        "maskdepth-checkpoint/1"
    model_spec    {"name", "in_channels", "kwargs"}: rebuilds the net with create_model
    state_dict    model weights (unwrapped from DDP)
    info          {"task", "input_mode", "input_size": [H, W], "tasks": [...]} for predict/validate
    config        the training config (dict), for the record
    epoch, step   progress counters (epoch = number of finished epochs)
    optimizer, scheduler, scaler, criterion   state dicts (may be None)
    rng           python / numpy / torch RNG states, for an exact resume
    metrics       validation metrics at save time
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskdepth.errors import MaskdepthError
from maskdepth.io import torch_save

FORMAT = "maskdepth-checkpoint/1"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def model_spec(model: nn.Module) -> dict:
    spec = getattr(unwrap(model), "maskdepth_spec", None)
    if spec is None:
        raise MaskdepthError("model was not built with maskdepth.models.create_model (no maskdepth_spec)")
    return dict(spec)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    info: dict | None = None,
    config: dict | None = None,
    epoch: int = 0,
    step: int = 0,
    optimizer=None,
    scheduler=None,
    scaler=None,
    criterion: nn.Module | None = None,
    rng: dict | None = None,
    metrics: dict | None = None,
) -> None:
    net = unwrap(model)
    ckpt = {
        "format": FORMAT,
        "model_spec": model_spec(net),
        "state_dict": net.state_dict(),
        "info": dict(info or {}),
        "config": dict(config or {}),
        "epoch": int(epoch),
        "step": int(step),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "criterion": criterion.state_dict() if criterion is not None else None,
        "rng": rng,
        "metrics": dict(metrics or {}),
    }
    torch_save(ckpt, path)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read and validate a checkpoint; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise MaskdepthError(f"checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated / not a torch file
        raise MaskdepthError(f"checkpoint {path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise MaskdepthError(f"checkpoint {path}: not a maskdepth checkpoint (format {FORMAT!r} expected)")
    return ckpt


def build_model_from_checkpoint(ckpt: dict) -> nn.Module:
    from maskdepth.models import create_model

    spec = ckpt["model_spec"]
    model = create_model(spec["name"], in_channels=spec["in_channels"], **spec.get("kwargs", {}))
    model.load_state_dict(ckpt["state_dict"])
    return model


def load_model(path: str | os.PathLike, map_location: Any = "cpu") -> tuple[nn.Module, dict]:
    """Model in eval mode plus the checkpoint's info (task, input_mode, input_size, ...).

    Needs nothing but the checkpoint file: the spec to rebuild the net travels inside it.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    model = build_model_from_checkpoint(ckpt).eval()
    info = dict(ckpt.get("info", {}))
    info.setdefault("in_channels", ckpt["model_spec"]["in_channels"])
    info["model_spec"] = ckpt["model_spec"]
    info["epoch"] = ckpt.get("epoch")
    info["metrics"] = ckpt.get("metrics", {})
    info["config"] = ckpt.get("config", {})
    return model, info
