"""`lean_unet`: the capstone's ~0.5M-parameter U-Net, reproduced layer for layer.

Built from the capstone's printed summary: every block conv+BN+ReLU, nearest-neighbour upsampling
(its F.upsample default), H and W multiples of 8. `bn_relu_head=True` keeps its final 1x1 conv +
BatchNorm + ReLU (a non-negative output, so every mask pixel has probability >= 0.5, as the
capstone had); the default ends with a plain 1x1 conv, so the output is a proper raw value.
The layer table and parameter count: docs/models.md, "`lean_unet`"."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from maskdepth.models.blocks import ConvBNReLU, check_input, check_task, task_outputs, upsample2x
from maskdepth.models.registry import register


class LeanUNet(nn.Module):
    size_multiple = 8

    def __init__(self, in_channels: int = 3, task: str = "mask", bn_relu_head: bool = False):
        super().__init__()
        self.tasks = check_task(task, "lean_unet")
        self.in_channels = in_channels
        self.down_1 = nn.Sequential(ConvBNReLU(in_channels, 16), ConvBNReLU(16, 32, stride=2))
        self.down_2 = nn.Sequential(ConvBNReLU(32, 64), ConvBNReLU(64, 128))
        self.middle = ConvBNReLU(128, 128, kernel_size=1)
        self.up_2 = nn.Sequential(ConvBNReLU(256, 128), ConvBNReLU(128, 32))
        self.up_1 = nn.Sequential(ConvBNReLU(64, 64), ConvBNReLU(64, 32))
        head = ConvBNReLU(16, 1, kernel_size=1) if bn_relu_head else nn.Conv2d(16, 1, kernel_size=1)
        self.output = nn.Sequential(ConvBNReLU(32, 16), head)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(x, self.in_channels, self.size_multiple, "lean_unet")
        s1 = self.down_1(x)
        s2 = self.down_2(F.max_pool2d(s1, 2))
        y = self.middle(F.max_pool2d(s2, 2))
        y = self.up_2(torch.cat([s2, upsample2x(y, "nearest")], dim=1))
        y = self.up_1(torch.cat([s1, upsample2x(y, "nearest")], dim=1))
        y = self.output(upsample2x(y, "nearest"))
        return task_outputs(y, self.tasks)


@register("lean_unet", description="the capstone's lean U-Net (~0.5M params), one task")
def lean_unet(in_channels: int, *, task: str = "mask", bn_relu_head: bool = False) -> nn.Module:
    return LeanUNet(in_channels, task=task, bn_relu_head=bn_relu_head)
