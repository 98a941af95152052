"""Prediction on user images: API, outputs at the input's resolution, files written, CLI exit codes."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import maskdepth
from maskdepth.cli import main
from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN, depth_from_png16
from maskdepth.core.errors import MaskdepthError
from maskdepth.figures.depthviz import STRIP_WIDTH_PX, depth_to_uint8
from maskdepth.models import create_model
from maskdepth.models.checkpoint import save_checkpoint
from maskdepth.prediction.files import predict_paths
from maskdepth.prediction.predictor import Predictor, predict

SIZE = [64, 64]


def _save(path, model, input_mode="fg_bg", task="joint"):
    save_checkpoint(path, model, info={"task": task, "input_mode": input_mode, "input_size": SIZE})
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Small untrained models: weights are random, but outputs are deterministic and checkable."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt")
    return {
        "joint": _save(folder / "joint.pt", create_model("joint", encoder="lean", context=False, base_channels=8)),
        "mask": _save(folder / "mask.pt", create_model("lean_unet", task="mask"), task="mask"),
        "depth": _save(folder / "depth.pt", create_model("lean_unet", task="depth"), task="depth"),
        "joint6": _save(
            folder / "joint6.pt", create_model("joint", in_channels=6, encoder="lean", context=False, base_channels=8), input_mode="bg_fg_bg"
        ),
    }


def _noise(height, width, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _working_size(height, width, short=64, multiple=8):
    """The documented working size, written out: short side 64, aspect kept, multiples of 8."""
    long = max(short, round(short * max(height, width) / min(height, width) / multiple) * multiple)
    return (short, long) if height <= width else (long, short)


def _reference(checkpoint, image_u8: np.ndarray, bg_u8: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """The documented recipe with upsample="bilinear", written out independently: resize to the
    working size (bilinear, antialias), run the net, upsample logits / depth bilinearly to the input size."""
    model, _ = maskdepth.models.checkpoint.load_model(checkpoint)
    work = _working_size(*image_u8.shape[:2], multiple=model.size_multiple)

    def to_net(u8):
        x = torch.from_numpy(u8).float().div(255).permute(2, 0, 1)[None]
        return F.interpolate(x, size=work, mode="bilinear", align_corners=False, antialias=True)

    x = to_net(image_u8)
    if bg_u8 is not None:
        x = torch.cat([to_net(bg_u8), x], dim=1)
    with torch.no_grad():
        out = model(x)
    size = image_u8.shape[:2]
    return {k: F.interpolate(v, size=size, mode="bilinear", align_corners=False)[0, 0]
            for k, v in out.items()}


def test_outputs_are_at_the_input_resolution_and_follow_the_recipe(checkpoints):
    image = _noise(37, 100)  # 100 wide, 37 high: neither the working size nor its aspect
    (result,) = predict([image], checkpoints["joint"], device="cpu", show_progress=False, upsample="bilinear")
    assert set(result) == {"mask", "mask_prob", "depth"}
    assert result["mask"].shape == result["mask_prob"].shape == result["depth"].shape == (37, 100)
    assert result["mask"].dtype == bool and result["depth"].dtype == np.float32
    ref = _reference(checkpoints["joint"], image)
    np.testing.assert_allclose(result["depth"], ref["depth"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result["mask_prob"], torch.sigmoid(ref["mask"]).numpy(), atol=1e-6)
    # thresholded after upsampling (not an upsampled 64x64 mask)
    assert np.array_equal(result["mask"], ref["mask"].numpy() > 0)
    assert DEPTH_MIN <= result["depth"].min() and result["depth"].max() <= DEPTH_MAX


def test_the_network_sees_the_aspect_ratio_and_the_size_asked(checkpoints, tmp_path):
    from maskdepth.prediction.predictor import Predictor

    predictor = Predictor(checkpoints["joint"], device="cpu")
    assert predictor.working_size(500, 741) == (64, 96)  # a Middlebury photo: never squashed to 64x64
    assert predictor.working_size(741, 500) == (96, 64)
    assert predictor.working_size(100, 1000) == (64, 256)  # panoramas stop at 4:1
    assert Predictor(checkpoints["joint"], device="cpu", size=128).working_size(500, 741) == (128, 192)
    with pytest.raises(MaskdepthError, match="--size 3"):
        Predictor(checkpoints["joint"], device="cpu", size=3)
    Image.fromarray(_noise(50, 74)).save(tmp_path / "wide.png")
    summary = predict_paths([tmp_path / "wide.png"], checkpoints["joint"], tmp_path / "out", device="cpu", size=96)
    (entry,) = json.loads((tmp_path / "out" / "predictions.json").read_text())["predictions"]
    assert entry["network_size"] == [96, 144] and entry["size"] == [50, 74]
    assert "144x96" in summary.line


def test_batching_does_not_change_results(checkpoints):
    images = [_noise(40 + 9 * i, 50 + 13 * i, seed=i) for i in range(5)]
    one = predict(images, checkpoints["joint"], batch_size=1, device="cpu", show_progress=False)
    many = predict(images, checkpoints["joint"], batch_size=4, device="cpu", show_progress=False)
    for a, b, image in zip(one, many, images, strict=True):
        assert a["depth"].shape == image.shape[:2]
        np.testing.assert_allclose(a["depth"], b["depth"], rtol=1e-5)
        np.testing.assert_allclose(a["mask_prob"], b["mask_prob"], atol=1e-6)


def test_every_input_kind_through_the_api(checkpoints, tmp_path):
    rgb = _noise(30, 44)
    files = {}
    files["rgb.png"] = Image.fromarray(rgb)
    files["rgba.png"] = Image.fromarray(np.dstack([rgb, np.full((30, 44), 255, np.uint8)]), "RGBA")
    files["l.png"] = Image.fromarray(rgb[:, :, 0], "L")
    files["p.gif"] = Image.fromarray(rgb).convert("P")
    files["g16.png"] = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    files["cmyk.jpg"] = Image.fromarray(rgb).convert("CMYK")
    for name, image in files.items():
        image.save(tmp_path / name)
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    inputs = [tmp_path / n for n in files] + [str(tmp_path / "rotated.jpg"), Image.fromarray(rgb),
                                               rgb, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255]
    results = predict(inputs, checkpoints["joint"], device="cpu", show_progress=False)
    shapes = [r["depth"].shape for r in results]
    assert shapes == [(30, 44)] * len(files) + [(44, 30)] + [(30, 44)] * 3
    # identical pixels through different doors give identical predictions
    np.testing.assert_allclose(results[0]["depth"], results[-1]["depth"], rtol=1e-5)
    np.testing.assert_allclose(results[0]["depth"], results[-2]["depth"], rtol=1e-6)
    np.testing.assert_allclose(results[0]["depth"], results[1]["depth"], rtol=1e-6)  # opaque RGBA == RGB
    np.testing.assert_allclose(results[2]["depth"], results[4]["depth"], rtol=1e-6)  # 16-bit x257 == 8-bit


def test_single_image_gives_a_list_of_one(checkpoints):
    results = predict(_noise(20, 24), checkpoints["joint"], device="cpu", show_progress=False)
    assert isinstance(results, list) and len(results) == 1
    assert results[0]["depth"].shape == (20, 24)


def test_package_level_api(checkpoints):
    import maskdepth.prediction.predictor  # noqa: F401  (importing the module must not shadow the function)

    image = _noise(20, 24)
    (result,) = maskdepth.predict([image], checkpoint=checkpoints["joint"], device="cpu", show_progress=False)
    (direct,) = predict([image], checkpoints["joint"], device="cpu", show_progress=False)
    assert callable(maskdepth.predict)
    np.testing.assert_array_equal(result["depth"], direct["depth"])


def test_single_task_checkpoints_predict_only_their_output(checkpoints):
    image = _noise(33, 21)
    (mask_only,) = predict([image], checkpoints["mask"], device="cpu", show_progress=False)
    (depth_only,) = predict([image], checkpoints["depth"], device="cpu", show_progress=False)
    assert set(mask_only) == {"mask", "mask_prob"} and mask_only["mask"].shape == (33, 21)
    assert set(depth_only) == {"depth"} and depth_only["depth"].shape == (33, 21)


def test_six_channel_checkpoint_uses_the_background(checkpoints):
    image, bg, other_bg = _noise(40, 52, 1), _noise(40, 52, 2), _noise(40, 52, 3)
    (result,) = predict([image], checkpoints["joint6"], bg=bg, device="cpu", show_progress=False,
                        upsample="bilinear")
    ref = _reference(checkpoints["joint6"], image, bg)
    np.testing.assert_allclose(result["depth"], ref["depth"].numpy(), rtol=1e-5, atol=1e-5)
    (other,) = predict([image], checkpoints["joint6"], bg=other_bg, device="cpu", show_progress=False)
    assert np.abs(other["depth"] - result["depth"]).max() > 1e-3  # the background really is an input
    with pytest.raises(MaskdepthError, match=r"needs the background.*--bg"):
        predict([image], checkpoints["joint6"], device="cpu", show_progress=False)
    with pytest.raises(MaskdepthError, match="3 channels"):
        predict([image], checkpoints["joint"], bg=bg, device="cpu", show_progress=False)


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(MaskdepthError, match="nope.pt"):
        Predictor(tmp_path / "nope.pt", device="cpu")
    no_size = tmp_path / "nosize.pt"
    save_checkpoint(no_size, create_model("lean_unet", task="mask"), info={"task": "mask"})
    with pytest.raises(MaskdepthError, match=r"nosize.pt.*input_size"):
        Predictor(no_size, device="cpu")


# --- command line -----------------------------------------------------------------------


def _png_claiming_size(path, width, height):
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def test_cli_partial_success_writes_the_good_and_names_the_bad(checkpoints, tmp_path, capsys):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    Image.fromarray(_noise(37, 100)).save(inputs / "wide.png")
    Image.fromarray(_noise(48, 30)).save(inputs / "sub" / "tall.jpg")
    (inputs / "text.png").write_text("hello")
    (inputs / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (1, 1)).save(inputs / "dot.png")
    jpeg = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(jpeg, format="JPEG")
    (inputs / "cut.jpg").write_bytes(jpeg.getvalue()[:400])
    _png_claiming_size(inputs / "huge.png", 20000, 20000)
    out = tmp_path / "out"

    code = main(["predict", "--checkpoint", str(checkpoints["joint"]), str(inputs),
                 str(tmp_path / "missing.png"), "--out", str(out), "--preview", "--batch-size", "2",
                 "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1
    assert "2 ok, 6 failed" in captured.out
    for name in ["text.png", "empty.jpg", "dot.png", "cut.jpg", "huge.png", "missing.png"]:
        assert name in captured.err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(f"{n}_{kind}.png" for n in ["wide", "sub/tall"]
                             for kind in ["mask", "depth", "depth_color", "preview"])

    (api,) = predict([inputs / "wide.png"], checkpoints["joint"], device="cpu", show_progress=False)
    mask = np.asarray(Image.open(out / "wide_mask.png"))
    assert mask.shape == (37, 100) and mask.dtype == np.uint8
    assert np.array_equal(mask, api["mask"].astype(np.uint8) * 255)
    depth_png = Image.open(out / "wide_depth.png")
    assert depth_png.mode.startswith("I;16") and depth_png.size == (100, 37)
    np.testing.assert_allclose(depth_from_png16(np.asarray(depth_png)), api["depth"], atol=0.5 / 256 + 1e-6)
    assert Image.open(out / "wide_depth_color.png").mode == "RGB"
    assert Image.open(out / "wide_depth_color.png").size == (100, 37)
    # input | mask overlay | depth | colour bar in metres
    assert Image.open(out / "wide_preview.png").size == (300 + STRIP_WIDTH_PX, 37)
    assert Image.open(out / "sub" / "tall_depth.png").size == (30, 48)


def test_cli_all_good_exits_zero_and_single_task_writes_only_its_output(checkpoints, tmp_path, capsys):
    Image.fromarray(_noise(20, 30)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    code = main(["predict", "-c", str(checkpoints["mask"]), str(tmp_path / "a.png"), "--out", str(out),
                 "--preview", "--device", "cpu"])
    assert code == 0
    assert "1 ok, 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a_mask.png", "a_preview.png", "predictions.json"]
    assert Image.open(out / "a_preview.png").size == (60, 20)  # input | mask overlay (no depth, no bar)


def test_cli_six_channel_needs_bg(checkpoints, tmp_path, capsys):
    Image.fromarray(_noise(20, 30, 1)).save(tmp_path / "fg_bg.png")
    Image.fromarray(_noise(20, 30, 2)).save(tmp_path / "bg.png")
    out = tmp_path / "out"
    args = ["predict", "-c", str(checkpoints["joint6"]), str(tmp_path / "fg_bg.png"), "--out", str(out),
            "--device", "cpu"]
    assert main(args) == 2
    assert "--bg FILE" in capsys.readouterr().err
    assert not out.exists()

    assert main([*args, "--bg", str(tmp_path / "bg.png")]) == 0
    (api,) = predict([tmp_path / "fg_bg.png"], checkpoints["joint6"], bg=tmp_path / "bg.png", device="cpu",
                     show_progress=False)
    written = depth_from_png16(np.asarray(Image.open(out / "fg_bg_depth.png")))
    np.testing.assert_allclose(written, api["depth"], atol=0.5 / 256 + 1e-6)

    (tmp_path / "bad_bg.png").write_text("no")
    assert main([*args, "--bg", str(tmp_path / "bad_bg.png")]) == 2
    assert "bad_bg.png: not an image" in capsys.readouterr().err


# --- issue 16: never overwrite, per-file failures, non-finite outputs, symlink loops, device, disk full --


def test_cli_never_replaces_an_input_nor_an_existing_file_without_overwrite(checkpoints, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(_noise(20, 30)).save(data / "cat.png")
    Image.fromarray((_noise(20, 30)[:, :, 0] > 127).astype(np.uint8) * 255).save(data / "cat_mask.png")
    truth = (data / "cat_mask.png").read_bytes()
    for extra in ([], ["--overwrite"]):  # an input is never replaced, not even with --overwrite
        capsys.readouterr()
        assert main(["predict", "-c", str(checkpoints["joint"]), str(data), "--out", str(data), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "would replace the input" in err and "cat_mask.png" in err
        assert (data / "cat_mask.png").read_bytes() == truth
        assert sorted(p.name for p in data.iterdir()) == ["cat.png", "cat_mask.png"]  # nothing written

    out = tmp_path / "out"
    image = str(data / "cat.png")
    assert main(["predict", "-c", str(checkpoints["joint"]), image, "--out", str(out)]) == 0
    (out / "cat_depth.png").write_bytes(b"someone else's file")
    capsys.readouterr()
    assert main(["predict", "-c", str(checkpoints["joint"]), image, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already exists" in err and "--overwrite" in err
    assert (out / "cat_depth.png").read_bytes() == b"someone else's file"
    assert main(["predict", "-c", str(checkpoints["joint"]), image, "--out", str(out), "--overwrite"]) == 0
    assert Image.open(out / "cat_depth.png").size == (30, 20)


def test_cli_a_name_too_long_fails_that_file_only(checkpoints, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    long_name = "a" * 240  # fits as NAME.png, too long as NAME_depth_color.png (255 bytes at most)
    Image.fromarray(_noise(20, 30)).save(inputs / f"{long_name}.png")
    Image.fromarray(_noise(20, 30, 1)).save(inputs / "z.png")
    out = tmp_path / "out"
    assert main(["predict", "-c", str(checkpoints["joint"]), str(inputs), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "1 ok, 1 failed" in captured.out
    assert long_name in captured.err and "too long" in captured.err.lower()
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json", "z_depth.png", "z_depth_color.png",
                                                     "z_mask.png", "z_preview.png"]
    listed = json.loads((out / "predictions.json").read_text())
    assert [e["name"] for e in listed["predictions"]] == ["z"]
    assert [f["input"] for f in listed["failed"]] == [str(inputs / f"{long_name}.png")]


def test_non_finite_outputs_are_refused_naming_the_checkpoint(checkpoints, tmp_path):
    predictor = Predictor(checkpoints["joint"], device="cpu")
    real = predictor.model
    predictor.model = lambda x: {k: v * float("inf") for k, v in real(x).items()}
    with pytest.raises(MaskdepthError, match=r"joint.pt: the network outputs NaN or infinite"):
        predictor.run([predictor.prepare(np.zeros((20, 30, 3), np.float32))])


def test_symlink_loop_is_reported_as_such(checkpoints, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(_noise(20, 30)).save(inputs / "good.png")
    (inputs / "a.png").symlink_to(inputs / "b.png")
    (inputs / "b.png").symlink_to(inputs / "a.png")
    (inputs / "gone.png").symlink_to(inputs / "nowhere.png")
    out = tmp_path / "out"
    assert main(["predict", "-c", str(checkpoints["joint"]), str(inputs), str(inputs / "a.png"),
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    loops = [line for line in err.splitlines() if "a.png" in line or "b.png" in line]
    assert len(loops) == 3 and all("symbolic link loop" in line for line in loops)
    assert "corrupt" not in err
    assert "gone.png: broken symbolic link" in err


def test_unknown_device_and_full_disk_are_one_line_errors(checkpoints, tmp_path, capsys, monkeypatch):
    import errno

    Image.fromarray(_noise(20, 30)).save(tmp_path / "a.png")
    args = ["predict", "-c", str(checkpoints["joint"]), str(tmp_path / "a.png"), "--out", str(tmp_path / "out")]
    assert main([*args, "--device", "tpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--device 'tpu'" in err and "cpu" in err

    def full(self, fp, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on device" in err and "a_mask.png" in err
    assert not list((tmp_path / "out").iterdir())  # no temporary file left behind


# --- issue 18: one depth convention, preview by default, predictions.json ---------------------------


@pytest.fixture
def ramp_network(monkeypatch):
    """The network replaced by a known output: depth growing from 0.5 m (left) to 20 m (right)
    at the working size, mask logits positive in the left half."""
    row = torch.exp(torch.linspace(np.log(0.5), np.log(20.0), SIZE[1]))
    depth = row.expand(1, 1, *SIZE)
    logits = torch.where(torch.arange(SIZE[1]) < SIZE[1] // 2, 5.0, -5.0).expand(1, 1, *SIZE)

    def run(self, prepared, backgrounds=None):
        return [{"mask": logits.clone(), "depth": depth.clone()} for _ in prepared]

    monkeypatch.setattr(Predictor, "run", run)


def _luma(rgb) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float64)[..., :3] @ np.array([0.299, 0.587, 0.114])


def test_depth_colour_is_fixed_by_default_and_per_image_with_auto(checkpoints, tmp_path, ramp_network):
    Image.fromarray(_noise(30, 80)).save(tmp_path / "a.png")
    (api,) = predict([tmp_path / "a.png"], checkpoints["joint"], device="cpu", show_progress=False)
    runs = {}
    for mode in ("fixed", "auto"):
        out = tmp_path / mode
        extra = [] if mode == "fixed" else ["--depth-range", "auto"]
        assert main(["predict", "-c", str(checkpoints["joint"]), str(tmp_path / "a.png"), "--out", str(out),
                     "--device", "cpu", *extra]) == 0
        colour = np.asarray(Image.open(out / "a_depth_color.png").convert("RGB"))
        luma = _luma(colour).mean(axis=0)
        assert luma[:10].mean() > luma[-10:].mean() + 100, mode  # near (left) is bright
        (entry,) = json.loads((out / "predictions.json").read_text())["predictions"]
        runs[mode] = (colour, entry["depth_color_range_m"])
    colour, (lo, hi) = runs["fixed"]
    assert (lo, hi) == (DEPTH_MIN, DEPTH_MAX)
    np.testing.assert_array_equal(colour, depth_to_uint8(api["depth"]))  # the documented range
    colour, (lo, hi) = runs["auto"]
    assert lo == pytest.approx(float(api["depth"].min()), abs=1e-4)
    assert hi == pytest.approx(float(api["depth"].max()), abs=1e-4)
    np.testing.assert_array_equal(colour, depth_to_uint8(api["depth"], lo, hi))  # decodable from the JSON
    assert not np.array_equal(runs["auto"][0], runs["fixed"][0])
    assert _luma(runs["auto"][0][:, 0]).mean() > _luma(runs["fixed"][0][:, 0]).mean()  # more contrast
    with pytest.raises(SystemExit):  # an unknown choice is refused by the parser
        main(["predict", "-c", str(checkpoints["joint"]), str(tmp_path / "a.png"), "--out", str(tmp_path / "bad"),
              "--depth-range", "per-image"])


def test_preview_is_on_by_default_and_shows_depth_near_bright_with_its_bar(checkpoints, tmp_path, ramp_network):
    Image.fromarray(_noise(50, 70)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(["predict", "-c", str(checkpoints["joint"]), str(tmp_path / "a.png"), "--out", str(out),
                 "--device", "cpu"]) == 0
    preview = np.asarray(Image.open(out / "a_preview.png").convert("RGB"))
    assert preview.shape == (50, 3 * 70 + STRIP_WIDTH_PX, 3)
    np.testing.assert_array_equal(preview[:, :70], _noise(50, 70))  # the input, untouched
    depth_panel = _luma(preview[:, 140:210]).mean(axis=0)
    assert depth_panel[:10].mean() > depth_panel[-10:].mean() + 100
    bar = preview[6:-6, 210 + 5 : 210 + 13]
    assert _luma(bar[-3:]).mean() > _luma(bar[:3]).mean() + 100  # the bar: near (bottom) bright
    assert (preview[:, 70:105] != preview[:, :35]).any()  # mask overlay tints the left half
    skipped = tmp_path / "skipped"
    assert main(["predict", "-c", str(checkpoints["joint"]), str(tmp_path / "a.png"), "--out", str(skipped),
                 "--device", "cpu", "--no-preview"]) == 0
    assert sorted(p.name for p in skipped.iterdir()) == ["a_depth.png", "a_depth_color.png", "a_mask.png",
                                                        "predictions.json"]
    assert "preview" not in json.loads((skipped / "predictions.json").read_text())["predictions"][0]["outputs"]


def test_predictions_json_lists_inputs_outputs_scale_and_checkpoint(checkpoints, tmp_path):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    Image.fromarray(_noise(20, 30)).save(inputs / "a.png")
    Image.fromarray(_noise(24, 16, 1)).save(inputs / "sub" / "b.jpg")
    (inputs / "bad.png").write_text("no image")
    out = tmp_path / "out"
    assert main(["predict", "-c", str(checkpoints["joint"]), str(inputs), "--out", str(out), "--device", "cpu"]) == 1
    record = json.loads((out / "predictions.json").read_text())
    assert record["checkpoint"] == os.path.abspath(checkpoints["joint"])
    assert record["depth_png_scale"] == 256
    assert "metres x 256" in record["files"]["depth"] and "value / 256" in record["files"]["depth"]
    assert record["depth_color"] == {"range": "fixed", "colormap": "magma_r", "scale": "log", "near": "bright",
                                     "range_m": [DEPTH_MIN, DEPTH_MAX]}
    assert (record["tasks"], record["input_mode"], record["input_size"]) == (["mask", "depth"], "fg_bg", SIZE)
    assert [(e["input"], e["name"], e["size"]) for e in record["predictions"]] == [
        (str(inputs / "a.png"), "a", [20, 30]), (str(inputs / "sub" / "b.jpg"), "sub/b", [24, 16])]
    for entry in record["predictions"]:
        assert set(entry["outputs"]) == {"mask", "depth", "depth_color", "preview"}
        for name in entry["outputs"].values():
            assert (out / name).is_file()  # relative to the output folder
    assert record["predictions"][1]["outputs"]["depth"] == "sub/b_depth.png"
    (failed,) = record["failed"]
    assert failed["input"] == str(inputs / "bad.png") and "image" in failed["error"]
    # the depth PNG holds metres x 256, as the file says
    (api,) = predict([inputs / "a.png"], checkpoints["joint"], device="cpu", show_progress=False)
    stored = np.asarray(Image.open(out / "a_depth.png")).astype(np.float64) / record["depth_png_scale"]
    np.testing.assert_allclose(stored, api["depth"], atol=0.5 / 256 + 1e-6)
    # a single-task checkpoint lists only what it writes
    mask_out = tmp_path / "mask_only"
    assert main(["predict", "-c", str(checkpoints["mask"]), str(inputs / "a.png"), "--out", str(mask_out),
                 "--device", "cpu"]) == 0
    record = json.loads((mask_out / "predictions.json").read_text())
    assert set(record["files"]) == {"mask", "preview"}
    assert set(record["predictions"][0]["outputs"]) == {"mask", "preview"}


def test_predictions_json_follows_the_overwrite_rules(checkpoints, tmp_path, capsys):
    Image.fromarray(_noise(20, 30)).save(tmp_path / "a.png")
    Image.fromarray(_noise(20, 30, 1)).save(tmp_path / "b.png")
    out = tmp_path / "out"
    base = ["predict", "-c", str(checkpoints["joint"]), "--device", "cpu", "--out", str(out)]
    assert main([*base, str(tmp_path / "a.png")]) == 0
    first = (out / "predictions.json").read_text()
    capsys.readouterr()
    # another input into the same folder: only predictions.json is in the way, and it is refused
    assert main([*base, str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "predictions.json already exists" in err and "--overwrite" in err
    assert (out / "predictions.json").read_text() == first and not (out / "b_mask.png").exists()
    assert main([*base, str(tmp_path / "b.png"), "--overwrite"]) == 0
    assert [e["name"] for e in json.loads((out / "predictions.json").read_text())["predictions"]] == ["b"]
    # an input that would be replaced by predictions.json is refused, even with --overwrite
    (out / "predictions.json").unlink()
    Image.fromarray(_noise(20, 30, 2)).save(out / "predictions.json", format="PNG")
    before = (out / "predictions.json").read_bytes()
    for extra in ([], ["--overwrite"]):
        capsys.readouterr()
        assert main([*base, str(out / "predictions.json"), *extra]) == 2
        assert "would replace the input" in capsys.readouterr().err
    assert (out / "predictions.json").read_bytes() == before


# --- issue 18 item 2: edge-aware upsampling, background pairing --------------------------------------


def _square_scene(size=128):
    """An image with a bright square object (rows/cols 37..90) on a dark, slightly noisy ground."""
    rng = np.random.default_rng(3)
    image = np.full((size, size, 3), 40, np.uint8) + rng.integers(0, 6, (size, size, 3), dtype=np.uint8)
    image[37:91, 37:91] = [220, 180, 60]
    truth = np.zeros((size, size), bool)
    truth[37:91, 37:91] = True
    return image, truth


@pytest.fixture
def square_network(monkeypatch):
    """The network replaced by blurry but well-placed outputs for `_square_scene` at the working size:
    logits from the antialiased true mask, depth 2 m on the object and 10 m around it."""

    def run(self, prepared, backgrounds=None):
        _, truth = _square_scene()
        small = F.interpolate(torch.from_numpy(truth).float()[None, None], size=SIZE, mode="bilinear",
                              antialias=True, align_corners=False)
        small = F.avg_pool2d(small, 3, 1, 1, count_include_pad=False)
        return [{"mask": 8 * (small - 0.5), "depth": torch.exp(np.log(10.0) + (np.log(2.0) - np.log(10.0)) * small)}
                for _ in prepared]

    monkeypatch.setattr(Predictor, "run", run)


def test_guided_upsampling_is_the_default_and_follows_the_image_edges(checkpoints, tmp_path, square_network):
    image, truth = _square_scene()
    (guided,) = predict([image], checkpoints["joint"], device="cpu", show_progress=False)
    (plain,) = predict([image], checkpoints["joint"], device="cpu", show_progress=False, upsample="bilinear")
    near = np.zeros_like(truth)  # within 3 px of the square's edge
    near[34:94, 34:94] = True
    near[40:88, 40:88] = False

    def edge_errors(result):
        return int((result["mask"] != truth)[near].sum())

    assert edge_errors(guided) < edge_errors(plain) // 2
    depth_truth = np.where(truth, 2.0, 10.0)
    rel = {k: float((np.abs(r["depth"] - depth_truth) / depth_truth)[near].mean())
           for k, r in (("guided", guided), ("plain", plain))}
    assert rel["guided"] < 0.5 * rel["plain"]
    assert DEPTH_MIN <= guided["depth"].min() and guided["depth"].max() <= DEPTH_MAX
    with pytest.raises(MaskdepthError, match="upsample='nearest'"):
        predict([image], checkpoints["joint"], device="cpu", show_progress=False, upsample="nearest")

    # the command line writes the same, says how in predictions.json, and refuses unknown methods
    Image.fromarray(image).save(tmp_path / "sq.png")
    for method, api in (("guided", guided), ("bilinear", plain)):
        out = tmp_path / method
        extra = [] if method == "guided" else ["--upsample", "bilinear"]
        assert main(["predict", "-c", str(checkpoints["joint"]), str(tmp_path / "sq.png"), "--out", str(out),
                     "--device", "cpu", *extra]) == 0
        assert np.array_equal(np.asarray(Image.open(out / "sq_mask.png")) > 0, api["mask"])
        written = depth_from_png16(np.asarray(Image.open(out / "sq_depth.png")))
        np.testing.assert_allclose(written, api["depth"], atol=0.5 / 256 + 1e-5)
        assert json.loads((out / "predictions.json").read_text())["upsample"]["method"] == method
    with pytest.raises(SystemExit):
        main(["predict", "-c", str(checkpoints["joint"]), str(tmp_path / "sq.png"), "--out", str(tmp_path / "x"),
              "--upsample", "nearest"])


def _pair_folder(root, names, seed=10):
    """Write small noise images under `root` (relative names); returns {name: uint8 pixels}."""
    pixels = {}
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pixels[name] = _noise(24, 32, seed + i)
        Image.fromarray(pixels[name]).save(root / name)
    return pixels


def _depth_written(out, name):
    return depth_from_png16(np.asarray(Image.open(out / f"{name}_depth.png")))


def _api(checkpoint, image, bg):
    (result,) = predict([image], checkpoint, bg=bg, device="cpu", show_progress=False)
    return result["depth"]


def test_six_channel_pairs_NAME_bg_beside_NAME(checkpoints, tmp_path, capsys):
    inputs = tmp_path / "in"
    px = _pair_folder(inputs, ["a.png", "a_bg.png", "b.jpg", "b_bg.png", "sub/c.png", "sub/c_bg.jpg", "fg_bg.png",
                               "fg_bg_bg.png"])
    out = tmp_path / "out"
    assert main(["predict", "-c", str(checkpoints["joint6"]), str(inputs), "--out", str(out), "--device", "cpu"]) == 0
    record = json.loads((out / "predictions.json").read_text())
    # backgrounds are no inputs; a lone NAME_bg (fg_bg.png: no fg.* beside it) is one, with its own background
    assert [(e["name"], os.path.basename(e["background"])) for e in record["predictions"]] == [
        ("a", "a_bg.png"), ("b", "b_bg.png"), ("fg_bg", "fg_bg_bg.png"), ("sub/c", "c_bg.jpg")]
    assert not (out / "a_bg_mask.png").exists()
    (b_jpg,) = predict([inputs / "b.jpg"], checkpoints["joint6"], bg=inputs / "b_bg.png", device="cpu",
                       show_progress=False)
    np.testing.assert_allclose(_depth_written(out, "b"), b_jpg["depth"], atol=0.5 / 256 + 1e-5)
    np.testing.assert_allclose(_depth_written(out, "a"), _api(checkpoints["joint6"], px["a.png"], px["a_bg.png"]),
                               atol=0.5 / 256 + 1e-5)
    assert np.abs(_api(checkpoints["joint6"], px["a.png"], px["b_bg.png"]) - _depth_written(out, "a")).max() > 1e-2

    # files named on the command line (a shell glob) follow the same rule
    globbed = tmp_path / "globbed"
    assert main(["predict", "-c", str(checkpoints["joint6"]), str(inputs / "a.png"), str(inputs / "a_bg.png"),
                 "--out", str(globbed), "--device", "cpu"]) == 0
    assert [e["name"] for e in json.loads((globbed / "predictions.json").read_text())["predictions"]] == ["a"]

    # --bg FILE: one background for all; the NAME_bg files are still no inputs
    single = tmp_path / "single"
    assert main(["predict", "-c", str(checkpoints["joint6"]), str(inputs), "--bg", str(inputs / "b_bg.png"),
                 "--out", str(single), "--device", "cpu"]) == 0
    record = json.loads((single / "predictions.json").read_text())
    assert [e["name"] for e in record["predictions"]] == ["a", "b", "fg_bg", "sub/c"]
    np.testing.assert_allclose(_depth_written(single, "a"), _api(checkpoints["joint6"], px["a.png"], px["b_bg.png"]),
                               atol=0.5 / 256 + 1e-5)


def test_six_channel_missing_or_ambiguous_backgrounds_are_one_line_errors(checkpoints, tmp_path, capsys):
    inputs = tmp_path / "in"
    _pair_folder(inputs, ["a.png", "a_bg.png", "b.png", "c.png"])
    out = tmp_path / "out"
    args = ["predict", "-c", str(checkpoints["joint6"]), str(inputs), "--out", str(out), "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{inputs / 'b.png'} has no background" in err and "b_bg.*" in err
    assert "and 1 more input without one" in err and "--bg FILE" in err and "--bg-dir DIR" in err
    assert not out.exists()

    _pair_folder(inputs, ["b_bg.png", "c_bg.png", "c_bg.jpg"])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{inputs / 'c.png'}: more than one background" in err
    assert "c_bg.jpg" in err and "c_bg.png" in err
    assert not out.exists()

    # --bg and --bg-dir together are refused by the parser
    with pytest.raises(SystemExit):
        main([*args, "--bg", str(inputs / "a_bg.png"), "--bg-dir", str(inputs)])


def test_six_channel_bg_dir(checkpoints, tmp_path, capsys):
    inputs, bgs = tmp_path / "in", tmp_path / "bgs"
    px = _pair_folder(inputs, ["a.png", "sub/c.png"])
    bg_px = _pair_folder(bgs, ["a.jpg", "sub/c_bg.png", "unused.png"], seed=50)
    out = tmp_path / "out"
    args = ["predict", "-c", str(checkpoints["joint6"]), str(inputs), "--bg-dir", str(bgs), "--device", "cpu"]
    assert main([*args, "--out", str(out)]) == 0
    record = json.loads((out / "predictions.json").read_text())
    assert [(e["name"], e["background"]) for e in record["predictions"]] == [
        ("a", str(bgs / "a.jpg")), ("sub/c", str(bgs / "sub" / "c_bg.png"))]
    a_bg = np.asarray(Image.open(bgs / "a.jpg"))  # as decoded (JPEG)
    np.testing.assert_allclose(_depth_written(out, "a"), _api(checkpoints["joint6"], px["a.png"], a_bg),
                               atol=0.5 / 256 + 1e-5)
    np.testing.assert_allclose(_depth_written(out, "sub/c"),
                               _api(checkpoints["joint6"], px["sub/c.png"], bg_px["sub/c_bg.png"]),
                               atol=0.5 / 256 + 1e-5)
    # a file named directly is looked up by its stem
    direct = tmp_path / "direct"
    assert main(["predict", "-c", str(checkpoints["joint6"]), str(inputs / "a.png"), "--bg-dir", str(bgs),
                 "--out", str(direct), "--device", "cpu"]) == 0

    # the input folder as --bg-dir: an input is never its own background, NAME_bg.* is found
    _pair_folder(inputs, ["a_bg.png", "sub/c_bg.png"])
    same = tmp_path / "same"
    assert main(["predict", "-c", str(checkpoints["joint6"]), str(inputs), "--bg-dir", str(inputs),
                 "--out", str(same), "--device", "cpu"]) == 0

    # missing, ambiguous, no such folder: one line, exit 2, nothing written
    (bgs / "sub" / "c_bg.png").unlink()
    assert main([*args, "--out", str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{inputs / 'sub' / 'c.png'} has no background" in err
    assert str(bgs / "sub" / "c") in err and "--bg-dir" in err
    _pair_folder(bgs, ["sub/c.png", "sub/c_bg.jpg"])
    assert main([*args, "--out", str(tmp_path / "o2")]) == 2
    assert "more than one background" in capsys.readouterr().err
    assert main(["predict", "-c", str(checkpoints["joint6"]), str(inputs), "--bg-dir", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--bg-dir {tmp_path / 'nope'}: no such folder" in err
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))


def test_six_channel_unreadable_background_fails_its_inputs_only(checkpoints, tmp_path, capsys):
    inputs = tmp_path / "in"
    _pair_folder(inputs, ["a.png", "a_bg.png", "b.png"])
    (inputs / "b_bg.png").write_text("not an image")
    out = tmp_path / "out"
    assert main(["predict", "-c", str(checkpoints["joint6"]), str(inputs), "--out", str(out), "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "1 ok, 1 failed" in captured.out
    assert f"{inputs / 'b.png'}: its background {inputs / 'b_bg.png'}: not an image" in captured.err
    record = json.loads((out / "predictions.json").read_text())
    assert [e["name"] for e in record["predictions"]] == ["a"]
    assert [f["input"] for f in record["failed"]] == [str(inputs / "b.png")]


def test_three_channel_checkpoints_predict_NAME_bg_files_as_images(checkpoints, tmp_path, capsys):
    inputs = tmp_path / "in"
    _pair_folder(inputs, ["a.png", "a_bg.png"])
    out = tmp_path / "out"
    assert main(["predict", "-c", str(checkpoints["joint"]), str(inputs), "--out", str(out), "--device", "cpu"]) == 0
    assert [e["name"] for e in json.loads((out / "predictions.json").read_text())["predictions"]] == ["a", "a_bg"]
    assert "background" not in json.loads((out / "predictions.json").read_text())["predictions"][0]
    for flag in ("--bg", "--bg-dir"):
        target = inputs / "a_bg.png" if flag == "--bg" else inputs
        assert main(["predict", "-c", str(checkpoints["joint"]), str(inputs), flag, str(target),
                     "--out", str(tmp_path / "x"), "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "3 channels" in err and flag in err


def test_api_takes_one_background_per_image(checkpoints):
    images = [_noise(20, 30, 1), _noise(20, 30, 2)]
    bgs = [_noise(20, 30, 3), _noise(20, 30, 4)]
    both = predict(images, checkpoints["joint6"], bg=bgs, device="cpu", show_progress=False, batch_size=1)
    for image, bg, result in zip(images, bgs, both, strict=True):
        np.testing.assert_allclose(result["depth"], _api(checkpoints["joint6"], image, bg), rtol=1e-5, atol=1e-5)
    with pytest.raises(MaskdepthError, match="1 backgrounds for 2 images"):
        predict(images, checkpoints["joint6"], bg=bgs[:1], device="cpu", show_progress=False)


# --- notebooks/04_predict.ipynb: thin, parameterised, runs the library ------------------------------


def test_predict_notebook_parameters_match_the_library():
    import inspect

    from maskdepth.prediction.files import predict_paths
    from maskdepth.workflow.notebooks import declared_parameters, notebooks_dir

    declared = declared_parameters(notebooks_dir() / "04_predict.ipynb")
    assert {"run_dir", "checkpoint", "inputs", "out", "upsample", "bg", "bg_dir"} <= set(declared)
    assert declared["upsample"]["default"].strip("'\"") == inspect.signature(predict_paths).parameters[
        "upsample"].default


def test_predict_notebook_runs_and_shows_the_previews(checkpoints, tmp_path):
    import nbformat

    from maskdepth.workflow.notebooks import execute, notebooks_dir

    inputs = tmp_path / "photos"
    _pair_folder(inputs, ["a.png", "sub/b.jpg"])
    run_dir = tmp_path / "run"
    executed = run_dir / "04_predict.ipynb"
    execute(notebooks_dir() / "04_predict.ipynb", executed,
            {"run_dir": str(run_dir), "checkpoint": str(checkpoints["joint"]), "inputs": [str(inputs)],
             "device": "cpu", "upsample": "bilinear"}, timeout=300)
    record = json.loads((run_dir / "predictions" / "predictions.json").read_text())
    assert [e["name"] for e in record["predictions"]] == ["a", "sub/b"]
    assert record["upsample"]["method"] == "bilinear"
    nb = nbformat.read(executed, as_version=4)
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_readme_python_example_runs(checkpoints, tmp_path, monkeypatch):
    import re
    import shutil
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Predicting"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "maskdepth.load(" in code and ".predict(" in code
    run = tmp_path / "outputs" / "1k" / "my-run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoints["joint"], run / "checkpoints" / "best.pt")
    (run / "config.json").write_text("{}")
    (run / "metrics.json").write_text("{}")
    Image.fromarray(_noise(40, 60)).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert namespace["result"]["mask"].shape == (40, 60) and namespace["result"]["depth"].dtype == np.float32
