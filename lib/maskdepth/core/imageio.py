"""Reading users' image files robustly, and writing PNG results atomically.

Anything a user points `maskdepth predict` at ends up here, so every failure becomes a
`BadInputError` naming the file. Decoded images are float32 RGB [H, W, 3] in [0, 1], the range the
dataset feeds the networks; transparency is composited on white (a defined backdrop, not whatever
pixels hide under alpha 0), 16-bit greyscale keeps its precision, EXIF orientation is applied, and
size limits are checked from the header before decoding (large JPEGs are decoded scaled down).
`pair_backgrounds` pairs 6-channel checkpoints' backgrounds with their inputs.
Every conversion and why: docs/predict.md, "Reading images"."""

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

from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.core.fileio import atomic_path

# 64 Mpx: a 48/50 Mpx phone photo loads as it is; a 108 Mpx one is decoded at 1/2 scale.
MAX_PIXELS = 64_000_000
# Below this the network's working size (64 px and up) would be pure interpolation.
MIN_SIDE = 8
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp",
     ".ppm", ".pgm", ".pbm", ".pnm", ".tga"}
)  # fmt: skip


# NAME_bg.EXT is the background of NAME.EXT (6-channel checkpoints, `pair_backgrounds`).
BACKGROUND_MARK = "_bg"


class ImageFile(NamedTuple):
    """A file found among the user's inputs, and the name its outputs get (`a/b` for `DIR/a/b.png`).

    `key`: the file's path relative to the folder it was found in, without suffix (its stem
    when named directly); unlike `name` never made unique, it is what `--bg-dir` is searched for.
    """

    path: Path
    name: str
    key: str = ""


def is_background_name(path) -> bool:
    """Whether the file is named NAME_bg.EXT (with a non-empty NAME)."""
    stem = Path(path).stem
    return stem.endswith(BACKGROUND_MARK) and len(stem) > len(BACKGROUND_MARK)


def background_files(paths) -> set[Path]:
    """Those of `paths` that are backgrounds: named NAME_bg.EXT with an image NAME.* beside them
    (so `cat_bg.png` beside `cat.png` is one, while a lone `fg_bg.png` stays an image)."""
    stems: dict[Path, set[str]] = {}
    found = set()
    for path in map(Path, paths):
        if not is_background_name(path):
            continue
        folder = path.parent
        if folder not in stems:
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            stems[folder] = {Path(n).stem for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES}
        if path.stem[: -len(BACKGROUND_MARK)] in stems[folder]:
            found.add(path)
    return found


def expand_inputs(inputs, *, skip_backgrounds: bool = False) -> tuple[list[ImageFile], list[BadInputError]]:
    """Files and folders -> image files (folders recursively, sorted) and the inputs that failed.

    A file named explicitly is kept whatever its suffix (loading will tell whether it is an
    image); inside folders only files with an image suffix count. Outputs of files found in
    a folder keep their sub-folder, so `a/x.png` and `b/x.png` do not overwrite each other;
    two inputs that would still share a name (`x.png`, `x.jpg`) get their suffix appended.
    `skip_backgrounds`: backgrounds (NAME_bg.EXT beside an image NAME.*, `background_files`),
    in folders or named directly, are not inputs and are left out.
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
            if skip_backgrounds:  # never all of them: each has its image beside it
                skipped = background_files(files)
                files = [f for f in files if f not in skipped]
            for f in files:
                key = f.relative_to(path).with_suffix("").as_posix()
                found.append(ImageFile(f, key, key))
        elif path.is_file():
            if skip_backgrounds and background_files([path]):
                continue
            found.append(ImageFile(path, path.stem, path.stem))
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
        unique.append(ImageFile(file.path, name, file.key or file.path.stem))
    return unique


def pair_backgrounds(files: list[ImageFile], *, bg_dir=None) -> dict[str, Path]:
    """The background of each input (6-channel checkpoints): {ImageFile.name: background file}.

    Without `bg_dir`, the background of `X.EXT` is `X_bg.*` beside it. With `bg_dir`, it is
    `bg_dir/KEY.*` or `bg_dir/KEY_bg.*`, KEY being the input's path relative to the folder it
    was found in, without suffix (`sub/x` for `IN/sub/x.png`; the stem for a file named
    directly). The input itself is never its own background. No background, or more than one
    candidate, is a `MaskdepthError` naming the input (the first one; the count of the others).
    """
    listings: dict[Path, list[Path]] = {}

    def images_in(folder: Path) -> list[Path]:
        if folder not in listings:
            try:
                with os.scandir(folder) as entries:
                    listings[folder] = sorted(Path(e.path) for e in entries
                                              if Path(e.name).suffix.lower() in IMAGE_SUFFIXES and e.is_file())
            except OSError:
                listings[folder] = []
        return listings[folder]

    if bg_dir is not None:
        bg_dir = Path(bg_dir)
        if not bg_dir.is_dir():
            raise MaskdepthError(f"--bg-dir {bg_dir}: no such folder")
    pairs: dict[str, Path] = {}
    missing: list[str] = []
    for file in files:
        key = file.key or file.path.stem
        if bg_dir is None:
            folder, stems = file.path.parent, {f"{file.path.stem}{BACKGROUND_MARK}"}
            wanted = f"{folder / file.path.stem}{BACKGROUND_MARK}.* beside it"
        else:
            target = bg_dir / key
            folder, stems = target.parent, {target.name, f"{target.name}{BACKGROUND_MARK}"}
            wanted = f"{target}.* or {target}{BACKGROUND_MARK}.* (--bg-dir)"
        me = os.path.realpath(file.path)
        found = [p for p in images_in(folder) if p.stem in stems and os.path.realpath(p) != me]
        if len(found) > 1:
            raise MaskdepthError(
                f"{file.path}: more than one background: {', '.join(str(p) for p in found)}; keep one of them"
            )
        if not found:
            missing.append(f"{file.path} has no background: looked for {wanted}")
            continue
        pairs[file.name] = found[0]
    if missing:
        more = f" (and {len(missing) - 1} more input{'s' if len(missing) > 2 else ''} without one)" \
            if len(missing) > 1 else ""
        hint = ("; name it NAME_bg.EXT beside NAME.EXT, or give --bg FILE (one for all) or --bg-dir DIR"
                if bg_dir is None else f"; add it to --bg-dir {bg_dir}, or give --bg FILE (one for all)")
        raise MaskdepthError(missing[0] + more + hint)
    return pairs


def load_image(path, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE,
               reduced: dict | None = None) -> np.ndarray:
    """Decode an image file into float32 RGB [H, W, 3] in [0, 1], or raise `BadInputError`.

    `reduced`: a dict that receives "from": the file's own [H, W] (upright) when it was decoded
    at a reduced scale (a JPEG over `max_pixels`), so that callers can say so and record it."""
    path = Path(path)
    with pillow_errors(path):
        if path.is_dir():
            raise BadInputError(path, "is a folder, not an image file")
        if path.stat().st_size == 0:
            raise BadInputError(path, "empty file (0 bytes)")
        with Image.open(path) as image:
            full = image.size
            _check_size(path, image, max_pixels, min_side)
            image.load()
            decoded = image.size
            image = upright(image)
            if reduced is not None and decoded != full:
                width, height = full if image.size == decoded else full[::-1]  # EXIF may turn it
                reduced["from"] = [height, width]
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


# zlib level of every PNG the package writes: the fastest, because encoding, not the network, is most
# of what predict spends on a photo, and a higher level saves few bytes on depth maps (docs/predict.md).
PNG_COMPRESS_LEVEL = 1


def save_png(path, array: np.ndarray) -> None:
    """Write uint8 ([H, W] or [H, W, 3]) or uint16 ([H, W], 16-bit PNG) atomically."""
    array = np.ascontiguousarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"save_png takes uint8 or uint16 arrays, not {array.dtype}")
    image = Image.fromarray(array)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
