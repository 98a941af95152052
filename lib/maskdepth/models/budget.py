"""Memory a model will need, estimated before it is built, and the limit it must stay under.

Model options come from shared checkpoints and from flags, and a few wrong ones ask for terabytes.
`check_model` builds the net on the meta device (nothing allocated), counts its parameters and
sums one image's activations there, and refuses in one line what would not fit the limit
(MASKDEPTH_MEMORY_LIMIT in GB, default DEFAULT_LIMIT_GB: what a 16 GB machine can give one
process) before anything real is allocated. Examples: docs/models.md, "The memory budget"."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from maskdepth.core.errors import MaskdepthError

LIMIT_ENV = "MASKDEPTH_MEMORY_LIMIT"
DEFAULT_LIMIT_GB = 12.0
BYTES = 4  # float32
# Training holds weights, gradients and two optimizer moments per parameter, and per image the
# saved activations plus their gradients.
TRAIN_PARAM_COPIES = 4
TRAIN_ACTIVATION_COPIES = 2


def memory_limit() -> float:
    """The limit in bytes (MASKDEPTH_MEMORY_LIMIT in GB, else DEFAULT_LIMIT_GB)."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_LIMIT_GB * 1e9
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise MaskdepthError(f"{LIMIT_ENV}={text!r}: must be a positive number of GB")
    return value * 1e9


@dataclass(frozen=True)
class Footprint:
    params: int
    activation_bytes: int  # per image, one forward pass (the sum of every layer's output)

    def bytes(self, batch: int = 1, training: bool = False) -> float:
        copies = (TRAIN_PARAM_COPIES, TRAIN_ACTIVATION_COPIES) if training else (1, 1)
        return self.params * BYTES * copies[0] + self.activation_bytes * batch * copies[1]


def footprint(name: str, in_channels: int, kwargs: dict, size) -> Footprint:
    """Parameters and activation bytes per image of model `name` at `size` (H, W), on the meta device."""
    import torch

    from maskdepth.models import create_model

    height, width = (size, size) if isinstance(size, int) else size
    options = {k: v for k, v in dict(kwargs or {}).items() if k != "weights"}  # no file is read here
    with torch.device("meta"):
        model = create_model(name, in_channels=in_channels, **options)
    params = sum(p.numel() for p in model.parameters())
    if params * BYTES > memory_limit():  # no need to run it
        return Footprint(params, 0)
    total = [0]

    def count(_module, _inputs, output):
        values = output.values() if isinstance(output, dict) else output if isinstance(output, (tuple, list)) \
            else (output,)
        total[0] += sum(v.numel() for v in values if isinstance(v, torch.Tensor))

    hooks = [m.register_forward_hook(count) for m in model.modules() if not any(True for _ in m.children())]
    try:
        with torch.no_grad():
            model.eval()(torch.empty(1, in_channels, height, width, device="meta"))
    except Exception as exc:  # the options do not make a working net at this size: say so
        raise MaskdepthError(f"model {name}{f' {options}' if options else ''} cannot run at {height}x{width} "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    finally:
        for hook in hooks:
            hook.remove()
    return Footprint(params, total[0] * BYTES)


def check_model(name: str, in_channels: int, kwargs: dict, size, *, batch: int = 1, training: bool = False,
                source: str = "") -> Footprint:
    """Refuse (MaskdepthError naming `source`) a model whose estimated memory is over the limit."""
    found = footprint(name, in_channels, kwargs, size)
    need, limit = found.bytes(batch, training), memory_limit()
    if need > limit:
        height, width = (size, size) if isinstance(size, int) else size
        what = f"training at batch {batch}" if training else f"{batch} image{'s' if batch != 1 else ''}"
        raise MaskdepthError(
            f"{source + ': ' if source else ''}model {name}{f' {dict(kwargs)}' if kwargs else ''} at {height}x{width} px "
            f"needs about {need / 1e9:.3g} GB ({found.params:,} parameters; {what}), over the "
            f"{limit / 1e9:.3g} GB limit; use smaller options or size, or set {LIMIT_ENV}=GB to allow more")
    return found
