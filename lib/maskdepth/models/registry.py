"""Model registry: every network is built by name through `create_model`.

`@register("name", description=...)` records a builder; `create_model` validates the name,
channels and options, builds the net and stamps it with ``maskdepth_spec`` (all options, defaults
filled in), so a checkpoint rebuilds the same net even if a default changes. The registry also
holds what a model *is* (`model_entry`, `model_meta`: tasks, input channels, size multiple), so
no code outside `maskdepth.models` names a model to know it; every built model meets
`MaskdepthModel`. Details: docs/models.md, "The registry"; the contract: docs/architecture.md."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from maskdepth.core.errors import MaskdepthError
from maskdepth.models.blocks import OUTPUTS

IN_CHANNELS = (3, 6)  # fg_bg alone, or bg + fg_bg
DEFAULT_MODEL = "joint"
TASK_OPTION = "task"  # a builder that takes this option predicts the one task it names
_NOT_IN_SPEC = ("weights",)
_DERIVED = object()  # register(): task_option read from the builder's signature


@runtime_checkable
class MaskdepthModel(Protocol):
    """What every model built by `create_model` has (besides ``forward(x) -> {task: [B,1,H,W]}``)."""

    tasks: tuple[str, ...]  # the keys forward returns, in order
    size_multiple: int  # H and W must be multiples of it
    in_channels: int  # 3 (fg_bg) or 6 (bg + fg_bg)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder and what every net built from it is."""

    name: str
    builder: Callable[..., nn.Module]
    description: str
    tasks: tuple[str, ...] = OUTPUTS  # the outputs it can predict
    task_option: str | None = None  # the builder option that picks one of `tasks`; None: all at once
    in_channels: tuple[int, ...] = IN_CHANNELS  # the input channel counts it takes

    @property
    def single_task(self) -> bool:
        return self.task_option is not None

    def options_for(self, options: dict | None, task: str) -> dict:
        """`options` for a run of `task`: a single-task model is told its task unless `options` say it."""
        options = dict(options or {})
        if self.task_option is not None:
            options.setdefault(self.task_option, task)
        return options

    def outputs(self, options: dict | None = None) -> tuple[str, ...]:
        """The outputs (model.tasks) of the net built with `options` (defaults filled in)."""
        if self.task_option is None:
            return self.tasks
        return (dict(model_options(self.name), **(options or {}))[self.task_option],)


_MODELS: dict[str, ModelEntry] = {}


def register(name: str, *, description: str, tasks: tuple[str, ...] = OUTPUTS, task_option=_DERIVED,
             in_channels: tuple[int, ...] = IN_CHANNELS):
    """Decorator: register `builder(in_channels, **options)` under `name`. `task_option` defaults
    to TASK_OPTION when the builder takes it (a single-task model), else None."""

    def decorate(builder):
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        option = task_option
        if option is _DERIVED:
            option = TASK_OPTION if TASK_OPTION in inspect.signature(builder).parameters else None
        _MODELS[name] = ModelEntry(name, builder, description, tuple(tasks), option, tuple(in_channels))
        return builder

    return decorate


def model_entry(name: str) -> ModelEntry:
    """The registry entry of model `name` (a MaskdepthError listing the choices if unknown)."""
    return _entry(name)


def single_task_models() -> list[str]:
    return [n for n, e in _MODELS.items() if e.single_task]


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
    if isinstance(in_channels, bool) or in_channels not in entry.in_channels:
        meaning = {3: "3 (fg_bg)", 6: "6 (bg + fg_bg)"}
        allowed = " or ".join(meaning.get(c, str(c)) for c in entry.in_channels)
        raise MaskdepthError(f"in_channels must be {allowed}, got {in_channels!r} (model {name})")
    options = model_options(name)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise MaskdepthError(
            f"model {name}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(options) or 'none'}"
        )
    resolved = {**options, **kwargs}
    model = entry.builder(in_channels, **kwargs)
    _check_protocol(model, entry, resolved, in_channels)
    spec_kwargs = {k: v for k, v in resolved.items() if k not in _NOT_IN_SPEC}
    try:
        json.dumps(spec_kwargs)
    except TypeError as exc:
        raise MaskdepthError(f"model {name}: options must be plain JSON values ({exc})") from exc
    model.maskdepth_spec = {"name": name, "in_channels": int(in_channels), "kwargs": spec_kwargs}
    return model


def _check_protocol(model: nn.Module, entry: ModelEntry, options: dict, in_channels: int) -> None:
    """A registered builder must give a net that meets `MaskdepthModel` and says what its entry says."""
    if not isinstance(model, MaskdepthModel):
        missing = [a for a in ("tasks", "size_multiple", "in_channels") if not hasattr(model, a)]
        raise TypeError(f"model {entry.name}: the built net has no {', '.join(missing)} (see MaskdepthModel)")
    if tuple(model.tasks) != entry.outputs(options) or int(model.in_channels) != int(in_channels):
        raise TypeError(f"model {entry.name}: the net predicts {tuple(model.tasks)} for {model.in_channels} channels, "
                        f"its registry entry says {entry.outputs(options)} for {in_channels}")


def model_meta(name: str, in_channels: int = 3, **kwargs) -> dict:
    """What a net built by `create_model(name, in_channels, **kwargs)` is, without its weights:
    {"tasks", "size_multiple", "in_channels"} (the net is built on the meta device)."""
    with torch.device("meta"):
        model = create_model(name, in_channels=in_channels, **kwargs)
    return {"tasks": tuple(model.tasks), "size_multiple": int(model.size_multiple), "in_channels": int(in_channels)}


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
