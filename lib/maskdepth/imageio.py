"""Reading users' image files robustly, and writing PNG results atomically.

Anything a user points `maskdepth predict` at ends up here, so every failure becomes a
`BadInputError` naming the file: not an image, empty, truncated, too small, too large,
unreadable. Decoded images are float32 RGB arrays [H, W, 3] in [0, 1], the value range
the dataset feeds the networks.

Conversions (documented choices):

* Transparency (RGBA, LA, PA, P with a transparent colour) is composited on **white**.
  Pixels under full transparency often hold garbage (black, or leftovers of an editor);
  a plain white background is a defined, neutral backdrop, whereas dropping alpha would
  show the model whatever happens to be stored there.
* Greyscale and 1-bit images are replicated to three channels; palette, CMYK and YCbCr
  images go through Pillow's RGB conversion.
* 16-bit greyscale ("I;16", or "I" as Pillow opens 16-bit PNG/TIFF) is scaled by 1/65535,
  keeping its precision instead of Pillow's clipping to 0..255. Float images ("F") in
  [0, 1] are used as they are, others are min-max normalised.
* EXIF orientation is applied, so a portrait photo from a phone is predicted upright and
  the outputs have the rotated size.
* Size limits are checked from the header, before any pixel is decoded. A JPEG above
  `MAX_PIXELS` is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, cheap in memory
  and time); any other format above the limit is refused with a message saying so.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from maskdepth.errors import BadInputError, MaskdepthError
from maskdepth.io import atomic_path

# 64 Mpx: a 48/50 Mpx phone photo loads as it is; a 108 Mpx one is decoded at 1/2 scale.
MAX_PIXELS = 64_000_000
# Below this the network's working size (64 px and up) would be pure interpolation.
MIN_SIDE = 8
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp",
     ".ppm", ".pgm", ".pbm", ".pnm", ".tga"}
)  # fmt: skip


class ImageFile(NamedTuple):
    """A file found among the user's inputs, and the name its outputs get (`a/b` for `DIR/a/b.png`)."""

    path: Path
    name: str


def expand_inputs(inputs) -> tuple[list[ImageFile], list[BadInputError]]:
    """Files and folders -> image files (folders recursively, sorted) and the inputs that failed.

    A file named explicitly is kept whatever its suffix (loading will tell whether it is an
    image); inside folders only files with an image suffix count. Outputs of files found in
    a folder keep their sub-folder, so `a/x.png` and `b/x.png` do not overwrite each other;
    two inputs that would still share a name (`x.png`, `x.jpg`) get their suffix appended.
    """
    found: list[ImageFile] = []
    errors: list[BadInputError] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files, folder_errors = _walk_images(path)
            errors.extend(folder_errors)
            if not files and not folder_errors:
                errors.append(BadInputError(path, "folder contains no image files"))
            found.extend(ImageFile(f, f.relative_to(path).with_suffix("").as_posix()) for f in files)
        elif path.is_file():
            found.append(ImageFile(path, path.stem))
        elif path.is_symlink():
            errors.append(BadInputError(path, symlink_problem(path)))
        elif path.exists():
            errors.append(BadInputError(path, "not a regular file or folder"))
        else:
            errors.append(BadInputError(path, "no such file or folder"))
    return _unique_names(found), errors


def symlink_problem(path) -> str:
    """Why a symbolic link cannot be followed: a loop, or a missing target."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (too many levels of symbolic links)"
        if exc.errno == errno.ENOENT:
            return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
        return f"symbolic link cannot be followed ({exc.strerror or exc})"
    return "symbolic link to something that is not a regular file or folder"


def _walk_images(folder: Path) -> tuple[list[Path], list[BadInputError]]:
    errors: list[BadInputError] = []

    def on_error(exc: OSError) -> None:
        errors.append(BadInputError(exc.filename or folder, f"cannot read folder ({exc.strerror or exc})"))

    files = []
    for root, dirs, names in os.walk(folder, onerror=on_error):
        dirs.sort()
        files.extend(Path(root, n) for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES)
    return sorted(files, key=lambda p: p.relative_to(folder).parts), errors


def _unique_names(files: list[ImageFile]) -> list[ImageFile]:
    taken: set[str] = set()
    unique = []
    for file in files:
        name = file.name
        if name in taken:
            base = f"{name}_{file.path.suffix.lstrip('.').lower()}"
            name, n = base, 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
        taken.add(name)
        unique.append(ImageFile(file.path, name))
    return unique


def load_image(path, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> np.ndarray:
    """Decode an image file into float32 RGB [H, W, 3] in [0, 1], or raise `BadInputError`."""
    path = Path(path)
    with pillow_errors(path):
        if path.is_dir():
            raise BadInputError(path, "is a folder, not an image file")
        if path.stat().st_size == 0:
            raise BadInputError(path, "empty file (0 bytes)")
        with Image.open(path) as image:
            _check_size(path, image, max_pixels, min_side)
            image.load()
            image = upright(image)
            return to_rgb_array(image)


@contextlib.contextmanager
def pillow_errors(name):
    """Turn whatever Pillow raises for a bad file into one `BadInputError` naming it.

    Also silences Pillow's decompression-bomb *warning*: callers enforce their own limit."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except BadInputError:
        raise
    except FileNotFoundError as exc:
        if isinstance(name, (str, os.PathLike)) and os.path.islink(name):
            raise BadInputError(name, symlink_problem(name)) from exc
        raise BadInputError(name, "no such file") from exc
    except PermissionError as exc:
        raise BadInputError(name, "cannot read file (permission denied)") from exc
    except UnidentifiedImageError as exc:
        raise BadInputError(name, "not an image (or a format Pillow cannot read)") from exc
    except Image.DecompressionBombError as exc:
        raise BadInputError(name, f"too large to decode safely ({exc})") from exc
    except MemoryError as exc:
        raise BadInputError(name, "too large to decode in the available memory") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadInputError(name, "symbolic link loop (too many levels of symbolic links)") from exc
        if exc.errno is not None:  # the system refused the read; Pillow's own errors carry no errno
            raise BadInputError(name, f"cannot read file ({exc.strerror or exc})") from exc
        raise BadInputError(name, f"truncated or corrupt image ({exc})") from exc
    except (SyntaxError, ValueError, EOFError, IndexError) as exc:
        # Pillow reports truncated/corrupt data with any of these, depending on the format.
        raise BadInputError(name, f"truncated or corrupt image ({exc})") from exc


def _check_size(path: Path, image: Image.Image, max_pixels: int, min_side: int) -> None:
    """Refuse tiny images, and huge ones unless a JPEG can be decoded at a reduced scale."""
    width, height = image.size
    if min(width, height) < min_side:
        raise BadInputError(path, f"too small: {width}x{height} (needs at least {min_side} px per side)")
    if width * height <= max_pixels:
        return
    if image.format == "JPEG":
        factor = math.sqrt(width * height / max_pixels)
        scale = min(8, 2 ** math.ceil(math.log2(factor)))
        image.draft("RGB", (max(1, width // scale), max(1, height // scale)))
        if image.size[0] * image.size[1] <= max_pixels:
            return
    raise BadInputError(
        path,
        f"too large: {width}x{height} = {width * height / 1e6:.3g} Mpx is over the "
        f"{max_pixels / 1e6:.3g} Mpx limit; downscale it first",
    )


def upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block is ignored rather than failing the image."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF: the pixels themselves are fine
        return image


def to_rgb_array(image) -> np.ndarray:
    """PIL image or array -> float32 RGB [H, W, 3] in [0, 1] (see the module docstring for modes).

    Arrays may be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (alpha composited on white);
    uint8 is scaled by 1/255, uint16 by 1/65535, bool to {0, 1}, floats must be in [0, 1].
    """
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise MaskdepthError(f"image array of shape {array.shape}: expected [H, W], [H, W, 3] or [H, W, 4]")
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif array.dtype == bool:
        values = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
            raise MaskdepthError("float image arrays must hold finite values in [0, 1]")
    else:
        raise MaskdepthError(f"image array of dtype {array.dtype}: expected uint8, uint16, bool or float")
    if values.ndim == 2:
        values = np.repeat(values[:, :, None], 3, axis=2)
    elif values.shape[2] == 4:
        values = _on_white(values[:, :, :3], values[:, :, 3:])
    return np.ascontiguousarray(values)


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        grey = np.asarray(image, dtype=np.float32)
        grey = grey / 65535.0 if grey.max(initial=0) <= 65535 and grey.min(initial=0) >= 0 else _min_max(grey)
        return np.repeat(np.clip(grey, 0.0, 1.0)[:, :, None], 3, axis=2)
    if mode == "F":
        grey = np.asarray(image, dtype=np.float32)
        grey = np.nan_to_num(grey, nan=0.0, posinf=0.0, neginf=0.0)
        if grey.min(initial=0) < 0.0 or grey.max(initial=0) > 1.0:
            grey = _min_max(grey)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        return np.ascontiguousarray(_on_white(rgba[:, :, :3], rgba[:, :, 3:]))
    if mode != "RGB":
        try:
            image = image.convert("RGB")
        except (ValueError, OSError) as exc:
            raise MaskdepthError(f"image mode {mode!r} cannot be converted to RGB") from exc
    return np.asarray(image, dtype=np.float32) / 255.0


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return rgb * alpha + (1.0 - alpha)


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def save_png(path, array: np.ndarray) -> None:
    """Write uint8 ([H, W] or [H, W, 3]) or uint16 ([H, W], 16-bit PNG) atomically."""
    array = np.ascontiguousarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"save_png takes uint8 or uint16 arrays, not {array.dtype}")
    image = Image.fromarray(array)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
