"""Test-time augmentation: a model read over several views of each image, its outputs averaged.

A network trained on flipped images is no more right about an image than about its mirror, and a
view enlarged by 4/3 shows small and thin objects with more pixels. Averaging the views' outputs
(mask logits as they are, depth in log space, every view brought back to the input's pixels) is
the usual cheap gain at inference (segmentation_models_pytorch users reach for ttach). The mode is
part of the recipe (`TrainConfig.tta`): `validate`, `predict` and the real-photo check read a
checkpoint the way its recipe says; training's per-epoch evaluation reads the plain network.
Measurements: docs/recipes.md, "Test-time augmentation"."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from maskdepth.core.errors import MaskdepthError

# mode -> the scales of the views (each also mirrored left-right, except "none").
TTA_MODES = {"none": (1.0,), "flip": (1.0,), "flip_scale": (1.0, 4.0 / 3.0)}
# What a checkpoint whose recipe names no mode (trained before the setting existed) is read with.
UNSET_TTA = "none"


def check_tta(mode) -> str:
    if mode not in TTA_MODES:
        raise MaskdepthError(f"tta={mode!r}: choose one of {', '.join(TTA_MODES)}")
    return mode


def recipe_tta(config: dict | None) -> str:
    """The mode a checkpoint's recipe (its saved TrainConfig) asks for."""
    return check_tta((config or {}).get("tta", UNSET_TTA))


def scaled_size(height: int, width: int, scale: float, multiple: int) -> tuple[int, int]:
    """(h, w) of a view enlarged by `scale`, each side a multiple of `multiple` (at least one)."""
    return (max(multiple, round(height * scale / multiple) * multiple),
            max(multiple, round(width * scale / multiple) * multiple))


class TestTimeAugmented(nn.Module):
    """`model` over the views of `mode` (see TTA_MODES), outputs averaged at the input's size: the
    same output contract as the model (mask logits, depth in metres)."""

    def __init__(self, model: nn.Module, mode: str):
        super().__init__()
        self.model = model
        self.mode = check_tta(mode)
        self.mirrored = mode != "none"  # each view read with its mirror, in one batch
        self.size_multiple = int(getattr(model, "size_multiple", 1))

    @property
    def tasks(self):
        return self.model.tasks

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = x.shape[-2:]
        n = x.shape[0]
        totals: dict[str, torch.Tensor] = {}
        views = 0
        for scale in TTA_MODES[self.mode]:
            view = x
            if scale != 1.0:
                view = F.interpolate(x, size=scaled_size(height, width, scale, self.size_multiple), mode="bilinear",
                                     align_corners=False)
            if self.mirrored:
                view = torch.cat([view, view.flip(-1)])
            out = self.model(view)
            for key, value in out.items():
                value = value.float()
                value = value.log() if key == "depth" else value
                if self.mirrored:
                    value = value[:n] + value[n:].flip(-1)
                if value.shape[-2:] != (height, width):
                    value = F.interpolate(value, size=(height, width), mode="bilinear", align_corners=False)
                totals[key] = totals[key] + value if key in totals else value
            views += 2 if self.mirrored else 1
        return {key: (total / views).exp() if key == "depth" else total / views for key, total in totals.items()}


def with_tta(model: nn.Module, mode: str) -> nn.Module:
    """`model` itself for "none", else wrapped in `TestTimeAugmented`."""
    return model if check_tta(mode) == "none" else TestTimeAugmented(model, mode)


def reading_tta(config: dict | None, tta: str | None = None) -> str:
    """The mode a model is read with: `tta` when given (checked), else its recipe's."""
    return recipe_tta(config) if tta is None else check_tta(tta)


def as_recipe_reads(model: nn.Module, config: dict | None, tta: str | None = None) -> tuple[nn.Module, str]:
    """(`model` read over the views of `tta`, else of its recipe's mode; that mode)."""
    mode = reading_tta(config, tta)
    return with_tta(model, mode), mode
