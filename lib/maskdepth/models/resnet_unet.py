"""`resnet_unet`: the capstone's ResNet-backbone U-Net, the well-known ResNetUNet design.

A torchvision resnet18 (or resnet34) encoder without avgpool/fc, 1x1 laterals on every layer, a
bilinear decoder and a full-resolution branch on the input, one raw output (mask logits, or depth
through `depth_from_raw`); H and W must be multiples of 32. The layer table, and why its parameter
count differs from the capstone's printed summary: docs/models.md, "`resnet_unet`"."""

from __future__ import annotations

import torch
from torch import nn

from maskdepth.core.errors import MaskdepthError
from maskdepth.models.blocks import ConvReLU, check_input, check_task, task_outputs, upsample2x
from maskdepth.models.encoders import get_encoder
from maskdepth.models.registry import register


class ResNetUNet(nn.Module):
    size_multiple = 32

    def __init__(self, in_channels: int = 3, task: str = "mask", encoder: str = "resnet18", weights=None):
        super().__init__()
        if encoder not in ("resnet18", "resnet34"):
            raise MaskdepthError(f"resnet_unet: encoder must be resnet18 or resnet34, got {encoder!r}")
        self.tasks = check_task(task, "resnet_unet")
        self.in_channels = in_channels
        self.encoder = get_encoder(encoder, in_channels, weights=weights)
        self.layer0_1x1 = ConvReLU(64, 64, 1)
        self.layer1_1x1 = ConvReLU(64, 64, 1)
        self.layer2_1x1 = ConvReLU(128, 128, 1)
        self.layer3_1x1 = ConvReLU(256, 256, 1)
        self.layer4_1x1 = ConvReLU(512, 512, 1)
        self.conv_up3 = ConvReLU(256 + 512, 512, 3)
        self.conv_up2 = ConvReLU(128 + 512, 256, 3)
        self.conv_up1 = ConvReLU(64 + 256, 256, 3)
        self.conv_up0 = ConvReLU(64 + 256, 128, 3)
        self.conv_original_size0 = ConvReLU(in_channels, 64, 3)
        self.conv_original_size1 = ConvReLU(64, 64, 3)
        self.conv_original_size2 = ConvReLU(64 + 128, 64, 3)
        self.conv_last = nn.Conv2d(64, len(self.tasks), 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(x, self.in_channels, self.size_multiple, "resnet_unet")
        x_original = self.conv_original_size1(self.conv_original_size0(x))
        layer0, layer1, layer2, layer3, layer4 = self.encoder(x)
        y = upsample2x(self.layer4_1x1(layer4))
        y = upsample2x(self.conv_up3(torch.cat([y, self.layer3_1x1(layer3)], dim=1)))
        y = upsample2x(self.conv_up2(torch.cat([y, self.layer2_1x1(layer2)], dim=1)))
        y = upsample2x(self.conv_up1(torch.cat([y, self.layer1_1x1(layer1)], dim=1)))
        y = upsample2x(self.conv_up0(torch.cat([y, self.layer0_1x1(layer0)], dim=1)))
        y = self.conv_original_size2(torch.cat([y, x_original], dim=1))
        return task_outputs(self.conv_last(y), self.tasks)


@register("resnet_unet", description="the capstone's ResNetUNet (resnet18 backbone), one task")
def resnet_unet(
    in_channels: int, *, task: str = "mask", encoder: str = "resnet18", weights=None
) -> nn.Module:
    return ResNetUNet(in_channels, task=task, encoder=encoder, weights=weights)
