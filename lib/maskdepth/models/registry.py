"""Model registry: every network is built by name through `create_model`.

A builder is registered with `@register("name", description=...)` and has the signature
``builder(in_channels, *, option=default, ...) -> nn.Module``. `create_model` validates the
name, the channel count and the options, builds the net and stamps it with
``maskdepth_spec`` (name, in_channels and *all* options with defaults filled in, minus
``weights``), which is what a checkpoint needs to rebuild the same net later even if a
default changes. Pretrained weights only initialise training; the trained state_dict
replaces them, so the weights file is not needed to rebuild.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from maskdepth.errors import MaskdepthError

IN_CHANNELS = (3, 6)  # fg_bg alone, or bg + fg_bg
DEFAULT_MODEL = "joint"
_NOT_IN_SPEC = ("weights",)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str


_MODELS: dict[str, ModelEntry] = {}


def register(name: str, *, description: str):
    """Decorator: register `builder(in_channels, **options)` under `name`."""

    def decorate(builder):
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = ModelEntry(name, builder, description)
        return builder

    return decorate


def list_models() -> list[str]:
    return list(_MODELS)


def model_options(name: str) -> dict:
    """Options of model `name` with their defaults (what `create_model(name)` uses)."""
    entry = _entry(name)
    params = list(inspect.signature(entry.builder).parameters.values())[1:]
    return {p.name: p.default for p in params}


def _entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise MaskdepthError(f"unknown model {name!r}; choose one of: {', '.join(_MODELS)}")
    return _MODELS[name]


def create_model(name: str, in_channels: int = 3, **kwargs) -> nn.Module:
    """Build model `name` for `in_channels` input channels (3: fg_bg, 6: bg + fg_bg).

    forward(x) returns {"mask": logits [B,1,H,W], "depth": metres [B,1,H,W]} (single-task
    models only their key); `model.tasks` lists the keys, `model.size_multiple` the number
    H and W must be multiples of.
    """
    entry = _entry(name)
    if isinstance(in_channels, bool) or in_channels not in IN_CHANNELS:
        raise MaskdepthError(
            f"in_channels must be 3 (fg_bg) or 6 (bg + fg_bg), got {in_channels!r} (model {name})"
        )
    options = model_options(name)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise MaskdepthError(
            f"model {name}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(options) or 'none'}"
        )
    resolved = {**options, **kwargs}
    model = entry.builder(in_channels, **kwargs)
    spec_kwargs = {k: v for k, v in resolved.items() if k not in _NOT_IN_SPEC}
    try:
        json.dumps(spec_kwargs)
    except TypeError as exc:
        raise MaskdepthError(f"model {name}: options must be plain JSON values ({exc})") from exc
    model.maskdepth_spec = {"name": name, "in_channels": int(in_channels), "kwargs": spec_kwargs}
    return model


def count_parameters(model: nn.Module) -> int:
    """Parameters the model owns, each counted once (shared modules are not double-counted)."""
    return sum(p.numel() for p in model.parameters())


def forward_gflops(model: nn.Module, size: int = 64) -> float:
    """Forward GFLOPs (multiply and add counted separately) for one size x size image."""
    from torch.utils.flop_counter import FlopCounterMode

    in_channels = model.maskdepth_spec["in_channels"]
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, in_channels, size, size, device=next(model.parameters()).device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9


def model_info(name: str, in_channels: int = 3, size: int = 64, **kwargs) -> dict:
    """What `maskdepth models` prints for one model: params, inputs, outputs, GFLOPs."""
    model = create_model(name, in_channels=in_channels, **kwargs)
    return {
        "name": name,
        "description": _entry(name).description,
        "kwargs": model.maskdepth_spec["kwargs"],
        "in_channels": in_channels,
        "outputs": list(model.tasks),
        "params": count_parameters(model),
        "size_multiple": model.size_multiple,
        "gflops": round(forward_gflops(model, size), 4),
        "gflops_size": [size, size],
    }
