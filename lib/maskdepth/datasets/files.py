"""Strict reading of dataset image files: every problem is a `BadInputError` naming the file.

Unlike `maskdepth.core.imageio.load_image` (which converts anything a user wants predicted),
files that become training labels are not converted silently: a greyscale, palette or
16-bit photo where an RGB one is needed, or a foreground without alpha, is refused, because
a guessed conversion would give a wrong label without anyone noticing.

Files may live in a folder or inside a zip archive: `source` is a path or a readable
binary file object, `name` the name shown in messages (e.g. `data.zip:fg_bg/x.jpg`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from maskdepth.core.errors import BadInputError
from maskdepth.core.imageio import MAX_PIXELS, pillow_errors, upright

MODE_NAMES = {
    "1": "1-bit black and white", "L": "greyscale", "LA": "greyscale with alpha", "P": "palette",
    "PA": "palette with alpha", "I": "32-bit integer (16-bit PNG)", "I;16": "16-bit greyscale",
    "I;16B": "16-bit greyscale", "F": "32-bit float", "CMYK": "CMYK", "YCbCr": "YCbCr",
    "RGB": "RGB", "RGBA": "RGBA",
}  # fmt: skip


def describe_mode(mode: str) -> str:
    return f"mode {mode} ({MODE_NAMES.get(mode, 'unusual')})"


def open_image(source, name=None, *, decode: bool = True) -> Image.Image:
    """Open (and by default fully decode) an image; truncated or non-image data -> BadInputError."""
    name = name if name is not None else source
    with pillow_errors(name):
        image = Image.open(source)
        w, h = image.size
        if w * h > MAX_PIXELS:
            raise BadInputError(name, f"too large: {w}x{h} is over the {MAX_PIXELS / 1e6:.3g} Mpx limit")
        if decode:
            image.load()
        return image


def rgb_array(image: Image.Image, name) -> np.ndarray:
    """uint8 [H, W, 3] of an RGB image (EXIF orientation applied); other modes are refused."""
    if image.mode != "RGB":
        raise BadInputError(name, f"{describe_mode(image.mode)}: expected an 8-bit RGB image "
                                  "(convert it to RGB first if that is what you mean)")
    return np.asarray(upright(image), dtype=np.uint8)


def rgba_array(image: Image.Image, name) -> np.ndarray:
    """uint8 [H, W, 4] of a foreground with an alpha channel (RGBA, LA, or palette with transparency)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        raise BadInputError(name, f"{describe_mode(image.mode)} has no alpha channel: a foreground must be an "
                                  "RGBA PNG whose transparent pixels are the background")
    rgba = np.asarray(upright(image).convert("RGBA"), dtype=np.uint8)
    if not (rgba[..., 3] > 127).any():
        raise BadInputError(name, "fully transparent: the foreground has no pixel with alpha > 0.5")
    return rgba


def mask_array(image: Image.Image, name) -> np.ndarray:
    """uint8 {0, 1} [H, W] of an 8-bit greyscale or 1-bit mask (foreground where value > 127)."""
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8)
    if image.mode != "L":
        raise BadInputError(name, f"{describe_mode(image.mode)}: a mask must be an 8-bit greyscale "
                                  "(or 1-bit) image, foreground white")
    return (np.asarray(image) > 127).astype(np.uint8)


def mask_values(image: Image.Image, name) -> np.ndarray:
    """uint8 [H, W] of a mask's stored values, not yet thresholded: 8-bit greyscale as stored
    (0/255, 0/1 or soft), 1-bit as 0/255. The importer picks the threshold from the dataset's range."""
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8) * np.uint8(255)
    if image.mode != "L":
        raise BadInputError(name, f"{describe_mode(image.mode)}: a mask must be an 8-bit greyscale "
                                  "(or 1-bit) image, foreground white")
    return np.asarray(image, dtype=np.uint8)


def depth_raw_array(image: Image.Image, name) -> tuple[np.ndarray, int]:
    """(values, bits) of a greyscale depth map: 8-bit (mode L) or 16-bit (I;16 / I)."""
    if image.mode == "L":
        return np.asarray(image, dtype=np.uint16), 8
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise BadInputError(name, "depth values outside 0..65535: expected a 16-bit PNG")
        return values.astype(np.uint16), 16
    raise BadInputError(name, f"{describe_mode(image.mode)}: a depth map must be a single-channel 8-bit "
                              "or 16-bit greyscale PNG")


def resize(array: np.ndarray, size: int, *, label: bool) -> np.ndarray:
    """Resize [H, W] or [H, W, C] to size x size: area average for images, nearest for labels."""
    if array.shape[0] == size and array.shape[1] == size:
        return array
    if label:
        ys = (np.arange(size) * array.shape[0] / size + array.shape[0] / (2 * size)).astype(np.int64)
        xs = (np.arange(size) * array.shape[1] / size + array.shape[1] / (2 * size)).astype(np.int64)
        return array[ys[:, None], xs[None, :]]
    shrink = array.shape[0] >= size and array.shape[1] >= size
    method = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(array).resize((size, size), method))


def center_square(array: np.ndarray) -> np.ndarray:
    """The largest centred square of [H, W, ...] (a real photo keeps its aspect ratio)."""
    h, w = array.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return array[y0 : y0 + side, x0 : x0 + side]

