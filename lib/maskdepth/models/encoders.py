"""Encoders by name: feature pyramids that the U-Net decoders consume.

Every encoder is an `nn.Module` whose forward returns a list of feature maps, shallowest
first, and which describes them with `channels` and `strides` (input size / feature size).
`get_encoder(name, in_channels, weights=None)` builds one:

* ``lean``: a small conv+BN+ReLU encoder that keeps a full-resolution feature (stride 1),
  widths base, 2x, 4x, 8x base at strides 1, 2, 4, 8. Fast on a CPU.
* ``resnet18`` / ``resnet34``: torchvision's ResNet without avgpool/fc, features at strides
  2, 4, 8, 16, 32 (the ResNetUNet "layer0..layer4").

`weights=PATH` loads a torchvision ResNet state_dict from a local file (nothing is ever
downloaded). For 6 input channels (bg + fg_bg) the pretrained RGB filters of conv1 are
copied to both triplets and halved, so the layer initially responds to the mean of the two
images the way the pretrained net responds to one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from maskdepth.errors import MaskdepthError
from maskdepth.models.blocks import ConvBNReLU

_ENCODERS: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str):
    def decorate(builder):
        _ENCODERS[name] = builder
        return builder

    return decorate


def list_encoders() -> list[str]:
    return list(_ENCODERS)


def get_encoder(name: str, in_channels: int, weights: str | os.PathLike | None = None, **kwargs) -> nn.Module:
    """Build encoder `name` for `in_channels` (3 or 6), optionally with local pretrained weights."""
    if name not in _ENCODERS:
        raise MaskdepthError(f"unknown encoder {name!r}; choose one of: {', '.join(_ENCODERS)}")
    if in_channels not in (3, 6):
        raise MaskdepthError(f"in_channels must be 3 (fg_bg) or 6 (bg + fg_bg), got {in_channels!r}")
    return _ENCODERS[name](in_channels, weights=weights, **kwargs)


class LeanEncoder(nn.Module):
    """Stem, then `num_stages` stride-2 stages of two conv+BN+ReLU each.

    The stem works at full resolution (stride 1) by default: a stride-1 feature lets the
    decoder draw crisp mask edges without a separate full-resolution branch. With
    `space_to_depth=2` it works on the input's 2x2 blocks folded into channels
    (PixelUnshuffle: 3 -> 12 channels at half size, nothing lost) and every feature is at
    stride >= 2: the memory-bound full-resolution layers, 61 % of the default model's float32
    step on a 2-core CPU (bench figure 3's profile), are gone; the model predicts each 2x2
    output block from it (`joint`'s heads, PixelShuffle).
    """

    def __init__(self, in_channels: int, base_channels: int = 16, num_stages: int = 3, max_channels: int = 0,
                 space_to_depth: int = 1):
        super().__init__()
        if not 1 <= num_stages <= 6:
            raise MaskdepthError(f"lean encoder: num_stages must be 1..6, got {num_stages!r}")
        if space_to_depth not in (1, 2):
            raise MaskdepthError(f"lean encoder: space_to_depth must be 1 or 2, got {space_to_depth!r}")
        widths = [base_channels * 2**i for i in range(num_stages + 1)]
        if max_channels:  # deep encoders: keep the widest stages affordable
            widths = [min(w, max(max_channels, base_channels)) for w in widths]
        self.fold = nn.PixelUnshuffle(space_to_depth) if space_to_depth > 1 else nn.Identity()
        self.stem = ConvBNReLU(in_channels * space_to_depth**2, widths[0], bias=False)
        self.stages = nn.ModuleList(
            nn.Sequential(ConvBNReLU(cin, cout, stride=2, bias=False), ConvBNReLU(cout, cout, bias=False))
            for cin, cout in zip(widths[:-1], widths[1:])
        )
        self.channels = tuple(widths)
        self.strides = tuple(space_to_depth * 2**i for i in range(num_stages + 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(self.fold(x))]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


@register_encoder("lean")
def _lean(in_channels: int, weights=None, base_channels: int = 16, num_stages: int = 3,
          max_channels: int = 0, space_to_depth: int = 1) -> nn.Module:
    if weights is not None:
        raise MaskdepthError("weights: pretrained weights exist only for the resnet18/resnet34 encoders")
    return LeanEncoder(in_channels, base_channels=base_channels, num_stages=num_stages, max_channels=max_channels,
                       space_to_depth=space_to_depth)


class ResNetEncoder(nn.Module):
    """torchvision ResNet trunk; submodule names match torchvision so its state_dicts load as-is.

    avgpool and fc are not kept: they are unused, and registering them would add 513k
    parameters that never train.
    """

    def __init__(self, arch: str, in_channels: int):
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.arch = arch
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = (64, 64, 128, 256, 512)
        self.strides = (2, 4, 8, 16, 32)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]


def load_resnet_weights(encoder: ResNetEncoder, path: str | os.PathLike) -> None:
    """Load a local torchvision ResNet state_dict into `encoder`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise MaskdepthError(f"encoder weights {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MaskdepthError(f"encoder weights {path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MaskdepthError(f"encoder weights {path}: not a state_dict (a dict of tensors)")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    conv1 = state.get("conv1.weight")
    want = encoder.conv1.weight.shape
    if conv1 is not None and conv1.shape != want:
        if conv1.dim() == 4 and conv1.shape[1] == 3 and want[1] == 6 and conv1.shape[0] == want[0]:
            state["conv1.weight"] = torch.cat([conv1, conv1], dim=1) / 2
        else:
            raise MaskdepthError(
                f"encoder weights {path}: conv1.weight has shape {tuple(conv1.shape)}, "
                f"{encoder.arch} with {want[1]} input channels needs {tuple(want)}"
            )
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        missing = sorted(set(encoder.state_dict()) - set(state))
        unexpected = sorted(set(state) - set(encoder.state_dict()))
        detail = f"missing {missing[:4]}, unexpected {unexpected[:4]}" if missing or unexpected else str(exc)
        raise MaskdepthError(
            f"encoder weights {path}: not a torchvision {encoder.arch} state_dict ({detail})"
        ) from exc


def _resnet(arch: str, in_channels: int, weights) -> nn.Module:
    encoder = ResNetEncoder(arch, in_channels)
    if weights is not None:
        load_resnet_weights(encoder, weights)
    return encoder


@register_encoder("resnet18")
def _resnet18(in_channels: int, weights=None) -> nn.Module:
    return _resnet("resnet18", in_channels, weights)


@register_encoder("resnet34")
def _resnet34(in_channels: int, weights=None) -> nn.Module:
    return _resnet("resnet34", in_channels, weights)
