"""Composing real photos with a depth teacher (TorchScript and ONNX), and every bad input named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskdepth.cli import main
from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.datasets.datadir import read_dataset_json, read_samples_csv
from maskdepth.datasets.dataset import build_dataset
from maskdepth.datasets.real import V_MIN, compose_real
from maskdepth.datasets.teacher import Teacher

SIZE = 32
RED = (255, 0, 0)


class BrightnessDepth(torch.nn.Module):
    """A stand-in teacher with a known answer: depth = 1 + 4 * mean RGB (or its inverse)."""

    def __init__(self, inverse: bool = False):
        super().__init__()
        self.inverse = inverse

    def forward(self, x):
        depth = 1.0 + 4.0 * x.mean(dim=1, keepdim=True)
        return 1.0 / depth if self.inverse else depth


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    (root / "bg").mkdir()
    (root / "fg").mkdir()
    for i in range(3):  # non-square photos: centre-cropped
        Image.fromarray(rng.integers(0, 200, (30, 44, 3), dtype=np.uint8)).save(root / "bg" / f"street{i}.jpg")
    for i, (h, w) in enumerate([(40, 16), (24, 30)]):
        sprite = np.zeros((h + 10, w + 6, 4), np.uint8)  # transparent margin: cropped away
        sprite[5 : 5 + h, 3 : 3 + w] = (*RED, 255)
        Image.fromarray(sprite).save(root / "fg" / f"thing{i}.png")
    return root


@pytest.fixture(scope="module")
def torchscript_teacher(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    torch.jit.save(torch.jit.script(BrightnessDepth()), str(path))
    return path


def test_composed_samples_follow_the_rules(tmp_path, photos, torchscript_teacher):
    r = compose_real(photos / "bg", photos / "fg", Teacher(torchscript_teacher), tmp_path / "real", size=SIZE,
                     per_pair=2, batch_size=5)
    assert sum(r["counts"].values()) == 3 * 2 * 2
    meta = read_dataset_json(tmp_path / "real")
    assert meta["depth"]["units"] == "teacher" and meta["depth"]["teacher"]["format"] == "torchscript"
    rows = read_samples_csv(tmp_path / "real")
    unseen = {r["bg"] for r in rows if r["split"] == "unseen"}
    assert unseen and not unseen & {r["bg"] for r in rows if r["split"] != "unseen"}  # held-out photos
    for split in ("train", "seen", "unseen"):
        ds = build_dataset(str(tmp_path / "real"), split, size=SIZE)
        for i in range(len(ds)):
            s = ds[i]
            mask = s["mask"][0].numpy() > 0
            image, bg = s["image"].numpy(), s["bg"].numpy()
            assert mask.sum() > 20
            untouched = (image[:, ~mask] == bg[:, ~mask]).all(axis=0)
            assert untouched.mean() > 0.9  # off the mask only soft edge pixels (alpha <= 0.5) differ
            red = (image[0] == 1.0) & (image[1] == 0) & (image[2] == 0)
            assert red[mask].mean() > 0.5 and not red[~mask & (bg[0] < 1)].any()
            assert np.flatnonzero(mask.any(axis=1)).max() >= V_MIN * SIZE - 2  # foot on the lower part
            expected = 1.0 + 4.0 * image.mean(axis=0)  # the teacher's answer on the stored composite
            assert np.abs(s["depth"][0].numpy() - expected).max() <= 0.5 / 256 + 1e-5
    compose_real(photos / "bg", photos / "fg", Teacher(torchscript_teacher), tmp_path / "again",
                         size=SIZE, per_pair=2, batch_size=3)
    for name in ("train.image.npy", "train.mask.npy", "train.depth.npy", "unseen.depth.npy"):
        assert (tmp_path / "real" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_onnx_teacher_with_inverse_output(tmp_path, photos, torchscript_teacher):
    pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "teacher.onnx"
    torch.onnx.export(BrightnessDepth(inverse=True), (torch.rand(1, 3, SIZE, SIZE),), str(onnx_path),
                      input_names=["image"], output_names=["inv_depth"],
                      dynamic_axes={"image": {0: "batch"}, "inv_depth": {0: "batch"}}, dynamo=False)
    compose_real(photos / "bg", photos / "fg", Teacher(onnx_path, output="inverse"), tmp_path / "onnx", size=SIZE)
    compose_real(photos / "bg", photos / "fg", Teacher(torchscript_teacher), tmp_path / "ts", size=SIZE)
    assert read_dataset_json(tmp_path / "onnx")["depth"]["teacher"]["format"] == "onnx"
    a = np.load(tmp_path / "onnx" / "train.depth.npy").astype(int)
    b = np.load(tmp_path / "ts" / "train.depth.npy").astype(int)
    assert np.abs(a - b).max() <= 1  # same depth within the 1/256 m step


def test_cli_compose_and_missing_teacher(tmp_path, photos, torchscript_teacher, capsys):
    args = ["data", "compose", "--bg", str(photos / "bg"), "--fg", str(photos / "fg"), "--size", str(SIZE),
            "--per-pair", "1", "--out", str(tmp_path / "cli")]
    assert main(args) == 2
    assert "no depth teacher given: pass --teacher FILE" in capsys.readouterr().err
    assert main([*args, "--teacher", str(torchscript_teacher)]) == 0
    assert "composed 6 samples" in capsys.readouterr().out
    assert len(build_dataset(str(tmp_path / "cli"), "train", size=SIZE)) == read_dataset_json(
        tmp_path / "cli")["counts"]["train"]


def _copy_photos(src: Path, dst: Path) -> Path:
    for sub in ("bg", "fg"):
        (dst / sub).mkdir(parents=True)
        for p in (src / sub).iterdir():
            (dst / sub / p.name).write_bytes(p.read_bytes())
    return dst


def _bad_bg_cases():
    def greyscale(p):
        Image.new("L", (40, 40)).save(p / "bg" / "grey.png")
        return "grey.png", "mode L (greyscale): expected an 8-bit RGB image"

    def sixteen_bit(p):
        Image.fromarray(np.zeros((40, 40), np.uint16)).save(p / "bg" / "deep.png")
        return "deep.png", "16-bit"

    def palette(p):
        Image.new("P", (40, 40)).save(p / "bg" / "pal.png")
        return "pal.png", "mode P (palette)"

    def truncated(p):
        data = (p / "bg" / "street0.jpg").read_bytes()
        (p / "bg" / "street0.jpg").write_bytes(data[: len(data) // 3])
        return "street0.jpg", "truncated"

    def fg_without_alpha(p):
        Image.new("RGB", (20, 40), RED).save(p / "fg" / "opaque.png")
        return "opaque.png", "has no alpha channel"

    def fg_fully_transparent(p):
        Image.new("RGBA", (20, 40)).save(p / "fg" / "ghost.png")
        return "ghost.png", "fully transparent"

    return [greyscale, sixteen_bit, palette, truncated, fg_without_alpha, fg_fully_transparent]


@pytest.mark.parametrize("damage", _bad_bg_cases(), ids=lambda f: f.__name__)
def test_bad_photos_are_named(tmp_path, photos, torchscript_teacher, damage):
    root = _copy_photos(photos, tmp_path / "photos")
    name, reason = damage(root)
    with pytest.raises(BadInputError) as info:
        compose_real(root / "bg", root / "fg", Teacher(torchscript_teacher), tmp_path / "out", size=SIZE)
    assert name in str(info.value) and reason in str(info.value)
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_bad_teachers_are_named(tmp_path, photos):
    with pytest.raises(MaskdepthError, match="no depth teacher given"):
        Teacher(None)
    with pytest.raises(BadInputError, match="nope.pt: no such teacher file"):
        Teacher(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(BadInputError, match="junk.pt: not a loadable TorchScript model"):
        Teacher(tmp_path / "junk.pt")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(BadInputError, match="junk.onnx: not a loadable ONNX model"):
        Teacher(tmp_path / "junk.onnx")
    (tmp_path / "model.h5").write_bytes(b"x")
    with pytest.raises(BadInputError, match="model.h5: unknown teacher format .h5"):
        Teacher(tmp_path / "model.h5")

    class NaNDepth(torch.nn.Module):
        def forward(self, x):
            return x[:, :1] * float("nan")

    torch.jit.save(torch.jit.script(NaNDepth()), str(tmp_path / "nan.pt"))
    with pytest.raises(BadInputError, match="nan.pt: output holds NaN"):
        compose_real(photos / "bg", photos / "fg", Teacher(tmp_path / "nan.pt"), tmp_path / "out", size=SIZE)

    class WrongShape(torch.nn.Module):
        def forward(self, x):
            return x

    torch.jit.save(torch.jit.script(WrongShape()), str(tmp_path / "rgb.pt"))
    with pytest.raises(BadInputError, match=r"rgb.pt: output of shape \[4, 3, 8, 8\]"):
        Teacher(tmp_path / "rgb.pt")(np.zeros((4, 3, 8, 8), np.float32))


def test_a_depth_teacher_giving_zero_or_negative_depth_is_named(tmp_path, photos):
    class NegativeDepth(torch.nn.Module):
        def forward(self, x):
            return x[:, :1] - 0.5

    torch.jit.save(torch.jit.script(NegativeDepth()), str(tmp_path / "neg.pt"))
    with pytest.raises(BadInputError, match=r"neg.pt: outputs zero or negative depth"):
        compose_real(photos / "bg", photos / "fg", Teacher(tmp_path / "neg.pt"), tmp_path / "out", size=SIZE)
