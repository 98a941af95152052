"""Every kind of user image file, generated here with Pillow, and every way one can be bad."""

from __future__ import annotations

import io
import os
import resource
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.core.imageio import expand_inputs, load_image, save_png, to_rgb_array


def _halves(width=40, height=30, left=(255, 0, 0), right=(0, 0, 255)) -> Image.Image:
    """Left half one colour, right half another: shows both orientation and channel order."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = left
    array[:, width // 2 :] = right
    return Image.fromarray(array)


def test_rgb_png_keeps_values_and_orientation(tmp_path):
    path = tmp_path / "rgb.png"
    _halves(40, 30, left=(255, 128, 0), right=(0, 0, 51)).save(path)
    pixels = load_image(path)
    assert pixels.shape == (30, 40, 3) and pixels.dtype == np.float32
    np.testing.assert_allclose(pixels[5, 3], [1.0, 128 / 255, 0.0], atol=1e-6)
    np.testing.assert_allclose(pixels[5, 35], [0.0, 0.0, 0.2], atol=1e-6)


def test_rgba_is_composited_on_white(tmp_path):
    array = np.zeros((20, 30, 4), np.uint8)
    array[..., 0] = 200  # red everywhere...
    array[:, :10, 3] = 255  # ...opaque on the left third
    array[:, 10:20, 3] = 0  # transparent (colour underneath must not leak)
    array[:, 20:, 3] = 128  # half transparent
    path = tmp_path / "rgba.png"
    Image.fromarray(array, "RGBA").save(path)
    pixels = load_image(path)
    assert pixels.shape == (20, 30, 3)
    np.testing.assert_allclose(pixels[0, 0], [200 / 255, 0, 0], atol=1e-6)
    np.testing.assert_allclose(pixels[0, 15], [1.0, 1.0, 1.0], atol=1e-6)
    a = 128 / 255
    np.testing.assert_allclose(pixels[0, 25], [200 / 255 * a + 1 - a, 1 - a, 1 - a], atol=1e-6)


def test_greyscale_and_greyscale_with_alpha(tmp_path):
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (12, 1))  # 12 x 25
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    pixels = load_image(tmp_path / "l.png")
    assert pixels.shape == (12, 25, 3)
    np.testing.assert_allclose(pixels[:, :, 0], grey / 255.0, atol=1e-6)
    assert np.array_equal(pixels[:, :, 0], pixels[:, :, 2])

    la = Image.merge("LA", [Image.fromarray(grey, "L"), Image.new("L", (25, 12), 0)])
    la.save(tmp_path / "la.png")
    np.testing.assert_allclose(load_image(tmp_path / "la.png"), 1.0)  # fully transparent -> white


def test_palette_image_uses_its_palette(tmp_path):
    image = Image.new("P", (16, 10), 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * (256 * 3 - 6))
    image.save(tmp_path / "p.png")
    pixel = load_image(tmp_path / "p.png")[4, 4]
    np.testing.assert_allclose(pixel, [10 / 255, 200 / 255, 30 / 255], atol=1e-6)


def test_sixteen_bit_greyscale_keeps_precision(tmp_path):
    values = np.array([[0, 1000, 40000, 65535]] * 9, dtype=np.uint16)  # 9 x 4 -> pad to min side
    values = np.tile(values, (1, 3))  # 9 x 12
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = load_image(path)
    np.testing.assert_allclose(pixels[0, :4, 1], [0.0, 1000 / 65535, 40000 / 65535, 1.0], atol=1e-6)


def test_cmyk_jpeg_and_tiff(tmp_path):
    image = Image.new("CMYK", (24, 16), (0, 255, 255, 0))  # no cyan, full magenta+yellow = red
    image.save(tmp_path / "cmyk.tif")
    image.save(tmp_path / "cmyk.jpg", quality=95)
    np.testing.assert_allclose(load_image(tmp_path / "cmyk.tif")[8, 8], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(load_image(tmp_path / "cmyk.jpg")[8, 8], [1.0, 0.0, 0.0], atol=0.05)


def test_exif_rotated_jpeg_is_loaded_upright(tmp_path):
    stored = _halves(40, 20, left=(255, 0, 0), right=(0, 0, 255))  # stored landscape 40 x 20
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    pixels = load_image(path)
    assert pixels.shape == (40, 20, 3)  # displayed portrait: 20 wide, 40 high
    # Rotating clockwise brings the stored left (red) half to the top.
    assert pixels[5, 10, 0] > 0.9 and pixels[5, 10, 2] < 0.1
    assert pixels[35, 10, 2] > 0.9 and pixels[35, 10, 0] < 0.1


def test_array_inputs():
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[:, 6:, 3] = 255
    out = to_rgb_array(rgba)
    np.testing.assert_allclose(out[0, 0], [1, 1, 1])
    np.testing.assert_allclose(out[0, 11], [0, 1, 0])
    np.testing.assert_allclose(to_rgb_array(np.full((8, 9), 65535, np.uint16)), 1.0)
    assert to_rgb_array(np.zeros((8, 9, 1), np.float32)).shape == (8, 9, 3)
    with pytest.raises(MaskdepthError, match="shape"):
        to_rgb_array(np.zeros((3, 8, 9), np.uint8))
    with pytest.raises(MaskdepthError, match=r"\[0, 1\]"):
        to_rgb_array(np.full((8, 9, 3), 255.0, np.float32))


# --- bad inputs -------------------------------------------------------------------------


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n")
    with pytest.raises(BadInputError, match="not an image") as info:
        load_image(path)
    assert info.value.path == str(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(BadInputError, match="0 bytes"):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(BadInputError, match="truncated") as info:
        load_image(path)
    assert "cut.jpg" in str(info.value)


def test_missing_file_and_folder_given_as_image(tmp_path):
    with pytest.raises(BadInputError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(BadInputError, match="folder"):
        load_image(tmp_path)


def test_one_pixel_image_is_refused(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(path)
    with pytest.raises(BadInputError, match="too small: 1x1"):
        load_image(path)


def _png_claiming_size(path, width: int, height: int) -> None:
    """A valid 8x8 PNG whose IHDR header claims width x height (only the header is rewritten)."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8  # after the signature: length(4) type(4) data(13) crc(4)
    assert data[ihdr + 4 : ihdr + 8] == b"IHDR"
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 21]))
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_huge_image_is_refused_from_its_header_without_decoding(tmp_path):
    path = tmp_path / "huge.png"
    _png_claiming_size(path, 20000, 20000)
    before = _peak_rss_mb()
    with pytest.raises(BadInputError, match="too large") as info:
        load_image(path)
    assert "huge.png" in str(info.value)
    assert _peak_rss_mb() - before < 100  # decoding would need 400 MB for one channel


def test_large_png_over_our_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    _png_claiming_size(path, 9000, 8000)  # 72 Mpx: under Pillow's bomb limit, over ours
    before = _peak_rss_mb()
    with pytest.raises(BadInputError, match=r"9000x8000 = 72 Mpx is over the 64 Mpx limit"):
        load_image(path)
    assert _peak_rss_mb() - before < 100


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path):
    path = tmp_path / "large.jpg"
    _halves(400, 300).save(path, quality=95)
    pixels = load_image(path, max_pixels=20_000)  # 120k px over a 20k limit -> 1/4 scale
    assert pixels.shape == (75, 100, 3)
    assert pixels[30, 10, 0] > 0.9 and pixels[30, 90, 2] > 0.9
    path_png = tmp_path / "large.png"
    _halves(400, 300).save(path_png)
    # no reduced-scale decoding for PNG: refused
    with pytest.raises(BadInputError, match=r"400x300 = 0.12 Mpx is over the 0.02 Mpx limit"):
        load_image(path_png, max_pixels=20_000)


# --- folders ----------------------------------------------------------------------------


def test_folder_expansion_is_recursive_sorted_and_keeps_subfolders(tmp_path):
    root = tmp_path / "photos"
    for rel in ["b.png", "a.jpg", "sub/z.png", "sub/deeper/x.PNG", "other/a.png"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(root / rel, format="PNG")
    (root / "readme.txt").write_text("not an image")
    single = tmp_path / "single.png"
    Image.new("RGB", (8, 8)).save(single)
    files, errors = expand_inputs([root, single, tmp_path / "missing"])
    assert [f.name for f in files] == ["a", "b", "other/a", "sub/deeper/x", "sub/z", "single"]
    assert files[3].path == root / "sub" / "deeper" / "x.PNG"
    assert len(errors) == 1 and "missing" in str(errors[0]) and "no such file" in str(errors[0])


def test_same_names_get_distinct_outputs(tmp_path):
    for name in ["x.png", "x.jpg"]:
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    files, errors = expand_inputs([tmp_path / "x.png", tmp_path / "x.jpg", tmp_path / "x.png"])
    assert errors == []
    assert [f.name for f in files] == ["x", "x_jpg", "x_png"]


def test_unreadable_and_empty_folders_are_reported(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "locked").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "ok.png")
    (tmp_path / "empty").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):  # chmod cannot lock out root, so simulate it
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    files, errors = expand_inputs([root, tmp_path / "empty"])
    assert [f.name for f in files] == ["ok"]
    assert [e.path for e in errors] == [str(root / "locked"), str(tmp_path / "empty")]
    assert errors[0].reason == "cannot read folder (Permission denied)"
    assert errors[1].reason == "folder contains no image files"


def test_save_png_writes_8_and_16_bit(tmp_path):
    save_png(tmp_path / "m.png", np.array([[0, 255]] * 3, np.uint8))
    save_png(tmp_path / "sub" / "d.png", np.array([[0, 65535, 256]] * 2, np.uint16))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "m.png")), [[0, 255]] * 3)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "sub" / "d.png")), [[0, 65535, 256]] * 2)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["d.png", "m.png", "sub"]  # no temp files left
    with pytest.raises(TypeError):
        save_png(tmp_path / "f.png", np.zeros((2, 2), np.float32))
