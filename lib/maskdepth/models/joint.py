"""`joint` (the default model): one shared encoder and decoder, mask and depth together.

Why this shape: mask and depth share almost all the evidence (the pasted foreground is what
changes both), so one encoder-decoder is trained by both losses and each task only adds a light
full-resolution refinement and a 1x1 output conv: about the cost of one single-task U-Net instead
of two. The encoder is chosen by name (`encoders`); options add an image-level context, a
space-to-depth input (no layer at full resolution) and a depth head that sees the mask.
The layers and options: docs/models.md, "`joint`"."""

from __future__ import annotations

import torch
from torch import nn

from maskdepth.core.errors import MaskdepthError
from maskdepth.models.blocks import OUTPUTS, ConvBNReLU, check_input, task_outputs, upsample2x
from maskdepth.models.encoders import get_encoder
from maskdepth.models.registry import register


class UpFuse(nn.Module):
    """Reduce the deeper feature (1x1, at low resolution), upsample x2, cat the skip, 3x3 conv."""

    def __init__(self, deep_ch: int, skip_ch: int, out_ch: int):
        super().__init__()
        self.reduce = ConvBNReLU(deep_ch, out_ch, kernel_size=1, bias=False)
        self.fuse = ConvBNReLU(out_ch + skip_ch, out_ch, bias=False)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([upsample2x(self.reduce(deep)), skip], dim=1))


class GlobalContext(nn.Module):
    """Image-level context added to every position of the deepest feature.

    Single-image depth needs the whole layout (horizon, walls, where the floor ends); a
    pooled summary broadcast back gives every pixel of the deepest feature that view, at
    the cost of two 1x1 convolutions on a vector."""

    def __init__(self, channels: int):
        super().__init__()
        self.mix = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(x.mean(dim=(2, 3), keepdim=True))


class TaskHead(nn.Sequential):
    """Light per-task refinement at the decoder's last resolution, then the raw 1-channel
    output; at stride s > 1 the head predicts each s x s block (s*s channels, PixelShuffle)."""

    def __init__(self, channels: int, refine: bool, extra_in: int = 0, stride: int = 1):
        layers = [ConvBNReLU(channels + extra_in, channels, bias=False)] if refine else []
        out = nn.Conv2d(channels if refine else channels + extra_in, stride * stride, kernel_size=1)
        super().__init__(*layers, out, *([nn.PixelShuffle(stride)] if stride > 1 else []))


class JointUNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        encoder: str = "efficientnet_lite0",
        base_channels: int = 16,
        refine: bool = True,
        weights="default",
        num_stages: int = 3,
        max_channels: int = 0,
        context: bool = True,
        mask_to_depth: bool = False,
        space_to_depth: int = 1,
    ):
        super().__init__()
        if base_channels < 4:
            raise MaskdepthError(f"joint: base_channels must be >= 4, got {base_channels}")
        self.tasks = OUTPUTS
        self.in_channels = in_channels
        if space_to_depth != 1 and encoder != "lean":
            raise MaskdepthError(f"joint: space_to_depth={space_to_depth} needs the lean encoder, not {encoder!r}")
        enc_kwargs = ({"base_channels": base_channels, "num_stages": num_stages, "max_channels": max_channels,
                       "space_to_depth": space_to_depth} if encoder == "lean" else {})
        self.encoder = get_encoder(encoder, in_channels, weights=weights, **enc_kwargs)
        channels, strides = list(self.encoder.channels), list(self.encoder.strides)
        self.out_stride = space_to_depth  # the heads predict out_stride x out_stride blocks
        if strides[0] != self.out_stride:  # no feature at the output's stride: a light stem for crisp edges
            self.full_res = nn.Sequential(
                ConvBNReLU(in_channels, base_channels, bias=False),
                ConvBNReLU(base_channels, base_channels, bias=False),
            )
            channels, strides = [base_channels, *channels], [1, *strides]
        else:
            self.full_res = None
        self.size_multiple = strides[-1]
        self.context = GlobalContext(channels[-1]) if context else None
        self.ups = nn.ModuleList()
        deep = channels[-1]
        for skip in reversed(channels[:-1]):
            self.ups.append(UpFuse(deep, skip, skip))
            deep = skip
        self.mask_to_depth = mask_to_depth
        self.heads = nn.ModuleDict({
            task: TaskHead(channels[0], refine, extra_in=int(mask_to_depth and task == "depth"), stride=self.out_stride)
            for task in self.tasks
        })

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(x, self.in_channels, self.size_multiple, "joint")
        feats = self.encoder(x)
        if self.full_res is not None:
            feats = [self.full_res(x), *feats]
        y = feats[-1] if self.context is None else self.context(feats[-1])
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            y = up(y, skip)
        if self.mask_to_depth:
            mask_raw = self.heads["mask"](y)
            mask_in = torch.sigmoid(mask_raw)
            if self.out_stride > 1:  # the mask's share of each block, at the decoder's resolution
                mask_in = nn.functional.avg_pool2d(mask_in, self.out_stride)
            depth_raw = self.heads["depth"](torch.cat([y, mask_in], dim=1))
            raw = torch.cat([{"mask": mask_raw, "depth": depth_raw}[task] for task in self.tasks], dim=1)
        else:
            raw = torch.cat([self.heads[task](y) for task in self.tasks], dim=1)
        return task_outputs(raw, self.tasks)


@register("joint", description="shared encoder-decoder with mask and depth heads (default: the ImageNet "
                          "EfficientNet-Lite0 encoder with context)")
def joint(
    in_channels: int,
    *,
    encoder: str = "efficientnet_lite0",
    base_channels: int = 16,
    refine: bool = True,
    weights="default",
    num_stages: int = 3,
    max_channels: int = 0,
    context: bool = True,
    mask_to_depth: bool = False,
    space_to_depth: int = 1,
) -> nn.Module:
    return JointUNet(
        in_channels, encoder=encoder, base_channels=base_channels, refine=refine, weights=weights,
        num_stages=num_stages, max_channels=max_channels, context=context, mask_to_depth=mask_to_depth,
        space_to_depth=space_to_depth,
    )
