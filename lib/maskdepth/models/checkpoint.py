"""Checkpoints hold everything needed to resume training *and* to use the model alone.

A checkpoint is a dict saved atomically with `torch.save`: the net's spec and weights, what
predict/validate need (`info`), the training state for an exact resume and the run's history.
Checkpoints are what people download and share, so they are read with
`torch.load(weights_only=True)` (tensors and plain data only; anything else is refused before any
of it runs), written only from finite weights, and refused when their weights hold NaN or inf.
The keys: docs/models.md, "Checkpoints"."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import torch_save

FORMAT = "maskdepth-checkpoint/1"
# A network's working size [H, W] above this per side is no checkpoint of ours (damaged or
# hostile): predict and export would allocate for it (e.g. 120 GB) before failing.
MAX_INPUT_SIDE = 4096


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
    history: list | None = None,
    train_state: dict | None = None,
) -> None:
    """Write a checkpoint atomically; refuses weights holding NaN or infinite values.

    `model` is what predictions use; `train_state` holds what only a resume needs beyond it
    (the raw weights and counters when the saved model is a moving average of them)."""
    net = unwrap(model)
    state = net.state_dict()
    bad = nonfinite_weights(state)
    if bad:
        raise MaskdepthError(f"{path}: not written: the weights hold NaN or infinite values ({_listed(bad)})")
    ckpt = {
        "format": FORMAT,
        "model_spec": model_spec(net),
        "state_dict": state,
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
        "history": list(history or []),
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    torch_save(ckpt, path)


def nonfinite_weights(state_dict: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or infinite values."""
    return [
        name for name, value in state_dict.items()
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def _listed(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _refusal(exc: Exception) -> str:
    """The part of torch's weights_only message that says what was refused, in one line."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it holds {found.group(1)}, which is not a tensor or plain data"
    found = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
    reason = found.group(1) if found else (text.strip().splitlines() or [type(exc).__name__])[-1]
    return f"it holds something other than tensors and plain data ({reason.strip().rstrip('.')[:200]})"


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read and validate a checkpoint; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise MaskdepthError(f"checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "WeightsUnpickler" not in str(exc):
            raise MaskdepthError(f"checkpoint {path}: cannot be read ({_first_line(exc)})") from exc
        if re.search(r"Unsupported global: GLOBAL numpy\.", str(exc)):  # the numpy RNG state of versions before 0.1.0
            raise MaskdepthError(f"checkpoint {path}: refused: it holds numpy arrays, as checkpoints written by an "
                                 "older maskdepth do; retrain it") from exc
        raise MaskdepthError(
            f"checkpoint {path}: refused: {_refusal(exc)}, and loading it could run code; use checkpoints "
            "written by `maskdepth train` only"
        ) from exc
    except Exception as exc:  # truncated / not a torch file
        raise MaskdepthError(f"checkpoint {path}: cannot be read ({_first_line(exc)})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise MaskdepthError(f"checkpoint {path}: not a maskdepth checkpoint (format {FORMAT!r} expected)")
    spec = ckpt.get("model_spec")
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str) and _is_int(spec.get("in_channels"))
            and isinstance(spec.get("kwargs", {}), dict)):
        raise MaskdepthError(f"checkpoint {path}: model_spec is missing or damaged (name, in_channels, kwargs)")
    if not isinstance(ckpt.get("state_dict"), dict) or not isinstance(ckpt.get("info", {}), dict):
        raise MaskdepthError(f"checkpoint {path}: state_dict or info is missing or damaged")
    bad = nonfinite_weights(ckpt["state_dict"])
    if bad:
        raise MaskdepthError(
            f"checkpoint {path}: the weights hold NaN or infinite values ({_listed(bad)}): the training run "
            "diverged; use an earlier checkpoint, or train again with a lower lr"
        )
    return ckpt


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_weights(model: nn.Module, state_dict: dict, source) -> None:
    """`model.load_state_dict` with a one-line error naming the missing, unexpected or misshapen weights."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    misfit = [
        f"{k} {tuple(state_dict[k].shape) if torch.is_tensor(state_dict[k]) else type(state_dict[k]).__name__}"
        f" (model: {tuple(own[k].shape)})"
        for k in own
        if k in state_dict and not (torch.is_tensor(state_dict[k]) and state_dict[k].shape == own[k].shape)
    ]
    problems = [f"{label} {_listed(names)}" for label, names in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", misfit)) if names]
    if problems:
        spec = getattr(unwrap(model), "maskdepth_spec", {}) or {}
        raise MaskdepthError(
            f"{source}: the weights do not fit model {spec.get('name', type(model).__name__)!r}: "
            f"{'; '.join(problems)}. The file is damaged or belongs to another model"
        )
    model.load_state_dict(state_dict)


def input_size(info: dict, path) -> tuple[int, int]:
    """The checkpoint's working size (H, W), checked: two whole numbers in 1..MAX_INPUT_SIDE."""
    size = info.get("input_size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_int(s) for s in size)):
        raise MaskdepthError(f"checkpoint {path}: info['input_size'] [H, W] is missing or invalid ({size!r})")
    if not all(1 <= s <= MAX_INPUT_SIDE for s in size):
        raise MaskdepthError(
            f"checkpoint {path}: info['input_size'] {list(size)} is outside 1..{MAX_INPUT_SIDE} px per side; "
            "the file is damaged or not a maskdepth checkpoint"
        )
    return int(size[0]), int(size[1])


def check_model_spec(ckpt: dict, source="checkpoint") -> None:
    """Refuse a checkpoint's model before it is built: one that names a file to read (the
    `weights` option: a checkpoint never chooses a path to open) or whose memory, estimated on
    the meta device at its input size, is over the limit (`maskdepth.models.budget`)."""
    from maskdepth.models.budget import check_model

    spec = ckpt["model_spec"]
    kwargs = spec.get("kwargs", {})
    if kwargs.get("weights") is not None:
        raise MaskdepthError(f"{source}: model_spec names a weights file ({str(kwargs['weights'])[:200]!r}); a "
                             "checkpoint carries its weights and never chooses a file to read: refused")
    info = ckpt.get("info") or {}
    try:
        size = input_size(info, source)
    except MaskdepthError:
        size = (64, 64)  # a missing or damaged input_size is refused where it is read
    try:
        check_model(spec["name"], spec["in_channels"], kwargs, size, source=source)
    except MaskdepthError as exc:
        text = str(exc)
        raise MaskdepthError(text if text.startswith(str(source)) else f"{source}: {text}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise MaskdepthError(f"{source}: model_spec {spec['name']!r} cannot be built ({_first_line(exc)})") from exc


def build_model_from_checkpoint(ckpt: dict, source="checkpoint") -> nn.Module:
    from maskdepth.models import create_model, model_options

    spec = ckpt["model_spec"]
    check_model_spec(ckpt, source)
    try:
        # the trained state_dict replaces any initial weights: none are read (the checkpoint chooses no file)
        fresh = {"weights": "none"} if "weights" in model_options(spec["name"]) else {}
        model = create_model(spec["name"], in_channels=spec["in_channels"], **spec.get("kwargs", {}), **fresh)
    except MaskdepthError as exc:
        raise MaskdepthError(f"{source}: {exc}") from exc
    except (TypeError, ValueError, KeyError) as exc:
        raise MaskdepthError(f"{source}: model_spec {spec['name']!r} cannot be built ({_first_line(exc)})") from exc
    load_weights(model, ckpt["state_dict"], source)
    return model


def load_model(path: str | os.PathLike, map_location: Any = "cpu") -> tuple[nn.Module, dict]:
    """Model in eval mode plus the checkpoint's info (task, input_mode, input_size, ...).

    Needs nothing but the checkpoint file: the spec to rebuild the net travels inside it.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    model = build_model_from_checkpoint(ckpt, f"checkpoint {path}").eval()
    info = dict(ckpt.get("info", {}))
    if "input_size" in info:
        info["input_size"] = list(input_size(info, path))
    info.setdefault("in_channels", ckpt["model_spec"]["in_channels"])
    info["model_spec"] = ckpt["model_spec"]
    info["epoch"] = ckpt.get("epoch")
    info["metrics"] = ckpt.get("metrics", {})
    info["config"] = ckpt.get("config", {})
    return model, info
