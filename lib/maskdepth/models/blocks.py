"""Small building blocks shared by the models: conv+BN+ReLU, size checks, output heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from maskdepth.core.depth import depth_from_raw
from maskdepth.core.errors import MaskdepthError

OUTPUTS = ("mask", "depth")  # what a model may predict: the keys of its forward's dict, in order


class ConvBNReLU(nn.Sequential):
    """Conv2d -> BatchNorm2d -> ReLU, the unit every maskdepth U-Net is made of.

    `bias=True` by default to match the capstone's layers (its parameter counts include the bias);
    new designs pass `bias=False` since BatchNorm makes it redundant.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, bias: bool = True):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class ConvReLU(nn.Sequential):
    """Conv2d -> ReLU without normalisation (the ResNetUNet decoder's unit)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2), nn.ReLU(inplace=True)
        )


def upsample2x(x: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """x2 upsampling; bilinear without corner alignment exports cleanly to ONNX."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.interpolate(x, scale_factor=2.0, mode=mode, align_corners=False)


def check_input(x: torch.Tensor, in_channels: int, multiple: int, model_name: str) -> None:
    """Fail early, naming the size, for inputs the network's strides cannot take.

    Without it the skip connections fail deep inside torch.cat with a message about
    tensor sizes that says nothing about the image.
    """
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return  # shapes are symbolic there; checked on the eager path
    if x.dim() != 4:
        raise MaskdepthError(f"{model_name}: input must be [B, C, H, W], got shape {tuple(x.shape)}")
    c, h, w = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    if c != in_channels:
        raise MaskdepthError(f"{model_name}: input has {c} channels, the model was built for {in_channels}")
    if h % multiple or w % multiple or h == 0 or w == 0:
        raise MaskdepthError(
            f"{model_name}: input size {h}x{w} is not allowed: height and width must be positive "
            f"multiples of {multiple} (e.g. {max(multiple, h - h % multiple)}x{max(multiple, w - w % multiple)})"
        )


def task_outputs(raw: torch.Tensor, tasks: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Split a [B, len(tasks), H, W] raw map into the output dict of the model contract.

    mask -> logits as they are; depth -> metres through `maskdepth.core.depth.depth_from_raw`.
    """
    out = {}
    for i, task in enumerate(tasks):
        r = raw[:, i : i + 1]
        out[task] = depth_from_raw(r) if task == "depth" else r
    return out


def check_task(task: str, model_name: str) -> tuple[str, ...]:
    if task not in OUTPUTS:
        raise MaskdepthError(f"{model_name}: task must be one of {', '.join(OUTPUTS)}, got {task!r}")
    return (task,)
