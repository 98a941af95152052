"""The batch file job behind `maskdepth predict`: inputs to output files, never over an input, never
over an existing file without `overwrite`, one predictions.json per call (docs/predict.md).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.core.fileio import check_output, folder_lock
from maskdepth.core.imageio import MAX_PIXELS, ImageFile, load_image, save_png
from maskdepth.core.progress import progress
from maskdepth.prediction.predictor import (
    DEFAULT_UPSAMPLE,
    MASK_THRESHOLD,
    MAX_ASPECT,
    Predictor,
    network_size,
    resize_image,
)
from maskdepth.prediction.preview import preview_image, preview_size

OUTPUT_SUFFIXES = {"mask": ("_mask.png",), "depth": ("_depth.png", "_depth_color.png")}
PREVIEW_SUFFIX = "_preview.png"
PREDICTIONS_JSON = "predictions.json"
# Write errors that belong to one input's output name, not to the output folder.
PER_FILE_ERRNOS = {errno.ENAMETOOLONG, errno.EILSEQ}
BACKGROUND_CACHE = 256  # prepared backgrounds kept while predicting files (inputs often share one)


@dataclass
class PredictSummary:
    """What `predict_files` did: the names written and the inputs that failed (with why)."""

    written: list[str] = field(default_factory=list)
    failed: list[BadInputError] = field(default_factory=list)
    entries: list[dict] = field(default_factory=list)  # predictions.json's "predictions"
    manifest: Path | None = None  # the predictions.json written

    @property
    def line(self) -> str:
        sizes = sorted({"x".join(map(str, e["network_size"][::-1])) for e in self.entries if "network_size" in e})
        shown = f"; the network saw {', '.join(sizes[:3])}{' ...' if len(sizes) > 3 else ''} (W x H)" if sizes else ""
        return f"{len(self.written)} ok, {len(self.failed)} failed{shown}"


@dataclass
class _Loaded:
    file: ImageFile
    size: tuple[int, int]
    prepared: torch.Tensor
    preview_input: np.ndarray | None  # uint8 [h, w, 3] at the preview size
    background: Path | None = None  # its own background (6-channel checkpoints)
    prepared_bg: torch.Tensor | None = None
    reduced_from: list[int] | None = None  # [H, W] of the file when it was decoded smaller (huge JPEG)


def predict_files(
    files: list[ImageFile],
    predictor: Predictor,
    out_dir,
    *,
    preview: bool = True,
    depth_range: str = "fixed",
    batch_size: int = 32,
    failed: list[BadInputError] | None = None,
    overwrite: bool = False,
    backgrounds: dict[str, Path] | None = None,
) -> PredictSummary:
    """Predict each file and write its outputs, then predictions.json, into `out_dir`; bad
    files are reported and skipped.

    `depth_range`: "fixed" (default) colours NAME_depth_color.png and the preview over
    [DEPTH_MIN, DEPTH_MAX], "auto" over each image's own range (see `maskdepth.figures.depthviz`).
    `failed`: inputs that already failed (e.g. in `expand_inputs`), counted in the summary.
    `backgrounds`: 6-channel checkpoints, each input's own background file by `ImageFile.name`
    (`maskdepth.core.imageio.pair_backgrounds`); without it, the predictor's `set_background` one.
    A background that cannot be read fails its inputs. Images are loaded a batch at a time and
    reduced to the working size right away (guided upsampling reads each again when its outputs
    are written), so the memory used does not grow with the number or size of the inputs.
    Outputs never replace an input or a background, nor an existing file unless `overwrite`
    (see the module docstring).
    """
    from maskdepth.figures.depthviz import DEPTH_RANGES

    if batch_size < 1:
        raise MaskdepthError(f"--batch-size must be at least 1, got {batch_size}")
    if depth_range not in DEPTH_RANGES:
        raise MaskdepthError(f"--depth-range {depth_range!r}: choose one of {', '.join(DEPTH_RANGES)}")
    backgrounds = dict(backgrounds or {})
    if backgrounds and not predictor.needs_background:
        raise MaskdepthError(f"checkpoint {predictor.checkpoint} takes the image alone (input_mode fg_bg, "
                             "3 channels): it uses no backgrounds")
    if predictor.needs_background and backgrounds:
        unpaired = [f for f in files if f.name not in backgrounds]
        if unpaired:
            raise MaskdepthError(f"{unpaired[0].path} has no background among the {len(backgrounds)} given")
    elif predictor.needs_background and predictor._background is None and files:
        raise MaskdepthError(f"{files[0].path} has no background (checkpoint {predictor.checkpoint} takes one, "
                             "input_mode bg_fg_bg): set one with set_background, or give backgrounds")
    out_dir = check_output(out_dir, reads=[predictor.checkpoint], folder=True)
    protected = [ImageFile(Path(p), Path(p).stem) for p in dict.fromkeys(backgrounds.values())]
    check_outputs(files + protected, out_dir, output_suffixes(predictor, preview), overwrite=overwrite,
                  extra_files=(PREDICTIONS_JSON,), planned_for=files)
    with folder_lock(out_dir, "predict"):
        return _predict_locked(files, predictor, out_dir, preview, depth_range, batch_size, failed, backgrounds)


def _predict_locked(files, predictor, out_dir: Path, preview: bool, depth_range: str, batch_size: int, failed,
                    backgrounds: dict) -> PredictSummary:
    summary = PredictSummary(failed=list(failed or []))
    # First an "in progress" predictions.json with this call's settings: an interrupted call
    # (e.g. --overwrite at another threshold) never leaves an earlier call's record beside its sets.
    record = Path(out_dir) / PREDICTIONS_JSON
    had_record = record.exists()
    write_predictions_json(out_dir, predictor, summary, preview=preview, depth_range=depth_range,
                           status="in progress")
    try:
        bg_cache: dict[Path, torch.Tensor | BadInputError] = {}
        with progress(total=len(files), desc="predict", unit="img") as bar:
            for start in range(0, len(files), batch_size):
                loaded = []
                for file in files[start : start + batch_size]:
                    try:
                        item = _load(file, predictor, preview)
                        if item.reduced_from is not None:
                            bar.write(f"note: {file.path}: {item.reduced_from[1]}x{item.reduced_from[0]} decoded at "
                                      f"{item.size[1]}x{item.size[0]} (over the {MAX_PIXELS / 1e6:g} Mpx limit); its "
                                      "outputs have that size (recorded in predictions.json)", file=sys.stderr)
                        if backgrounds:
                            item.background = Path(backgrounds[file.name])
                            item.prepared_bg = _background(item.background, file, predictor, bg_cache)
                        loaded.append(item)
                    except BadInputError as exc:
                        summary.failed.append(exc)
                        bar.write(f"skipped {exc}", file=sys.stderr)
                if loaded:
                    outputs = predictor.run([item.prepared for item in loaded],
                                            [item.prepared_bg for item in loaded] if backgrounds else None)
                    for index, item in enumerate(loaded):
                        try:
                            entry = _write_outputs(out_dir, item, predictor, outputs, index, depth_range)
                        except BadInputError as exc:
                            summary.failed.append(exc)
                            bar.write(f"skipped {exc}", file=sys.stderr)
                            continue
                        summary.written.append(item.file.name)
                        summary.entries.append(entry)
                bar.update(len(files[start : start + batch_size]))
    except BaseException:
        # Stopped (Ctrl-C, a full disk, anything): the record lists the whole sets written so far,
        # or goes when this call made it and wrote nothing.
        with contextlib.suppress(Exception):
            if summary.entries or had_record:
                write_predictions_json(out_dir, predictor, summary, preview=preview, depth_range=depth_range,
                                       status="interrupted")
            else:
                record.unlink()
        raise
    summary.manifest = write_predictions_json(out_dir, predictor, summary, preview=preview, depth_range=depth_range)
    return summary


def predict_paths(
    inputs,
    checkpoint,
    out_dir,
    *,
    bg=None,
    bg_dir=None,
    upsample: str = DEFAULT_UPSAMPLE,
    preview: bool = True,
    depth_range: str = "fixed",
    batch_size: int = 32,
    threshold: float = MASK_THRESHOLD,
    device: str = "auto",
    overwrite: bool = False,
    precision: str = "auto",
    size: int | None = None,
    tta: str | None = None,
) -> PredictSummary:
    """`maskdepth predict` as a function: image files and folders -> files in `out_dir`.

    `inputs`: a path or a list of paths (files, folders searched recursively). 6-channel
    checkpoints take `bg` (one background file for all), or `bg_dir` (`pair_backgrounds`), or
    else NAME_bg.* beside NAME.*; backgrounds are then no inputs. A missing or ambiguous
    background raises `MaskdepthError` before anything is written; inputs that cannot be read
    are named on stderr, listed in the summary's `failed` and predictions.json, and skipped.
    """
    from maskdepth.core.imageio import expand_inputs, pair_backgrounds

    if batch_size < 1:
        raise MaskdepthError(f"--batch-size must be at least 1, got {batch_size}")
    if bg is not None and bg_dir is not None:
        raise MaskdepthError("give one background for all (--bg FILE) or a folder of them (--bg-dir DIR), not both")
    predictor = Predictor(checkpoint, device=device, threshold=threshold, upsample=upsample, precision=precision,
                          size=size, tta=tta)
    if not predictor.needs_background and bg_dir is not None:
        raise MaskdepthError(
            f"checkpoint {predictor.checkpoint} takes the image alone (input_mode fg_bg, 3 channels): "
            "drop the backgrounds (--bg-dir)"
        )
    if bg is not None:
        predictor.set_background(bg)  # a bad --bg fails every input: an error, not a skip
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    files, failed = expand_inputs(paths, skip_backgrounds=predictor.needs_background)
    backgrounds = None
    if predictor.needs_background and bg is None:
        backgrounds = pair_backgrounds(files, bg_dir=bg_dir)  # one-line error when one is missing
    for error in failed:
        print(f"skipped {error}", file=sys.stderr)
    return predict_files(files, predictor, out_dir, preview=preview, depth_range=depth_range,
                         batch_size=batch_size, failed=failed, overwrite=overwrite, backgrounds=backgrounds)


def _background(path: Path, file: ImageFile, predictor: Predictor, cache: dict) -> torch.Tensor:
    """The prepared background of `file` (read once per background file), or BadInputError for the input."""
    if path not in cache:
        if len(cache) >= BACKGROUND_CACHE:
            cache.clear()
        try:
            cache[path] = predictor.prepare(load_image(path))
        except BadInputError as exc:
            cache[path] = exc
    found = cache[path]
    if isinstance(found, BadInputError):
        raise BadInputError(file.path, f"its background {found}")
    return found


def predictions_record(predictor: Predictor, summary: PredictSummary, *, preview: bool, depth_range: str) -> dict:
    """The content of predictions.json: what was predicted from what, and how to read the files."""
    from maskdepth.core.depth import DEPTH_PNG_SCALE
    from maskdepth.figures.depthviz import DEPTH_CMAP

    colour = (f"near = bright, log scale over [{DEPTH_MIN:g}, {DEPTH_MAX:g}] m (fixed: the same colour is the "
              "same depth in every image)" if depth_range == "fixed" else
              "near = bright, log scale over the image's own depth range (its depth_color_range_m)")
    files = {}
    if "mask" in predictor.tasks:
        files["mask"] = "NAME_mask.png: 8-bit, 0 = background, 255 = foreground"
    if "depth" in predictor.tasks:
        files["depth"] = (f"NAME_depth.png: 16-bit, metres x {DEPTH_PNG_SCALE:g} (metres = value / "
                          f"{DEPTH_PNG_SCALE:g}; 0 = no depth)")
        files["depth_color"] = f"NAME_depth_color.png: RGB, {colour}"
    if preview:
        files["preview"] = "NAME_preview.png: input | mask overlay | depth colour | colour bar in metres"
    return {
        "checkpoint": os.path.abspath(predictor.checkpoint),
        "tasks": list(predictor.tasks),
        "input_mode": predictor.info.get("input_mode"),
        "input_size": list(predictor.input_size),
        "working_size": {"short_side": predictor.short_side, "multiple": predictor.size_multiple,
                         "max_aspect": MAX_ASPECT},
        "threshold": predictor.threshold,
        "tta": predictor.tta,
        "upsample": predictor.upsample_record,
        "depth_png_scale": DEPTH_PNG_SCALE,
        "depth_color": {"range": depth_range, "colormap": DEPTH_CMAP, "scale": "log", "near": "bright",
                        "range_m": [DEPTH_MIN, DEPTH_MAX] if depth_range == "fixed" else "per image"},
        "files": files,
        "predictions": summary.entries,
        "failed": [{"input": exc.path, "error": exc.reason} for exc in summary.failed
                   if isinstance(exc, BadInputError)],
    }


def write_predictions_json(out_dir: Path, predictor: Predictor, summary: PredictSummary, *, preview: bool,
                           depth_range: str, status: str = "complete") -> Path:
    """predictions.json in `out_dir` (atomically; `check_outputs` has cleared its name). `status`
    "in progress" is written before the first output, "complete" after the last."""
    from maskdepth.core.fileio import write_json

    path = Path(out_dir) / PREDICTIONS_JSON
    record = {"status": status, **predictions_record(predictor, summary, preview=preview, depth_range=depth_range)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, record)
    except OSError as exc:
        raise MaskdepthError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def output_suffixes(predictor: Predictor, preview: bool) -> list[str]:
    """The suffixes of the files written per input (NAME + suffix)."""
    tasks = [t for t in OUTPUT_SUFFIXES if t in predictor.tasks] or list(OUTPUT_SUFFIXES)
    return [s for t in tasks for s in OUTPUT_SUFFIXES[t]] + ([PREVIEW_SUFFIX] if preview else [])


def _same_file_key(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def check_outputs(files: list[ImageFile], out_dir: Path, suffixes: list[str], *, overwrite: bool,
                  extra_files=(), planned_for: list[ImageFile] | None = None) -> None:
    """Refuse, before anything is written, outputs that would replace an input (always) or an
    existing file (unless `overwrite`): NAME + suffix per input of `planned_for` (default
    `files`), and `extra_files` (names in `out_dir`, e.g. predictions.json) once. `files` are
    the files never replaced (the inputs, and their backgrounds)."""
    inputs = {_same_file_key(f.path): f.path for f in files}
    inodes = {_inode(f.path): f.path for f in files}
    inodes.pop(None, None)
    existing = []
    planned = [out_dir / f"{file.name}{suffix}" for file in (files if planned_for is None else planned_for)
               for suffix in suffixes]
    for out in planned + [out_dir / name for name in extra_files]:
        source = inputs.get(_same_file_key(out)) or inodes.get(_inode(out))
        if source is not None:
            raise MaskdepthError(
                f"--out {out_dir}: the output {out} would replace the input {source}; nothing was written. "
                "Choose another --out folder (inputs are never overwritten, not even with --overwrite)"
            )
        if os.path.lexists(out):
            existing.append(out)
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise MaskdepthError(
            f"--out {out_dir}: {existing[0]}{more} already exists; nothing was written. Choose a new or empty "
            "--out folder, or pass --overwrite to replace existing outputs"
        )


def _load(file: ImageFile, predictor: Predictor, preview: bool) -> _Loaded:
    reduced: dict = {}
    pixels = load_image(file.path, max_pixels=MAX_PIXELS, reduced=reduced)
    size = pixels.shape[:2]
    preview_input = None
    if preview:
        tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        small = resize_image(tensor, preview_size(size))[0].permute(1, 2, 0).numpy()
        preview_input = np.rint(np.clip(small, 0.0, 1.0) * 255.0).astype(np.uint8)
    return _Loaded(file, size, predictor.prepare(pixels), preview_input, reduced_from=reduced.get("from"))


def _write_outputs(out_dir: Path, item: _Loaded, predictor: Predictor, outputs, index: int,
                   depth_range: str = "fixed") -> dict:
    """Write one input's files; returns its predictions.json entry (file names relative to out_dir)."""
    from maskdepth.core.depth import depth_to_png16
    from maskdepth.figures.depthviz import auto_range, depth_to_uint8

    stem = out_dir / item.file.name
    suffixes = output_suffixes(predictor, item.preview_input is not None)
    guide = None
    seen = network_size(outputs, index)
    if predictor.upsample == "guided" and any(s > w for s, w in zip(item.size, seen, strict=True)):
        guide = load_image(item.file.path, max_pixels=MAX_PIXELS)  # read again: inputs are not all kept at full size
        if guide.shape[:2] != tuple(item.size):
            raise BadInputError(item.file.path, "changed while it was being predicted")
    result = predictor.at_size(outputs, index, item.size, guide=guide)
    del guide
    vrange = None
    written: list[str] = []
    entry: dict = {"input": str(item.file.path), "name": item.file.name, "size": list(item.size),
                   "network_size": list(seen), "outputs": {}}
    if item.background is not None:
        entry["background"] = str(item.background)
    if item.reduced_from is not None:
        entry["reduced_from"] = list(item.reduced_from)  # the file's own [H, W]; "size" is what was predicted

    def save(kind: str, path: str, array: np.ndarray) -> None:
        save_png(path, array)
        written.append(path)
        entry["outputs"][kind] = Path(path).relative_to(out_dir).as_posix()

    try:
        if "mask" in result:
            save("mask", f"{stem}_mask.png", result["mask"].astype(np.uint8) * 255)
        if "depth" in result:
            save("depth", f"{stem}_depth.png", depth_to_png16(result["depth"]))
            # Rounded as listed in predictions.json, so the listed range decodes the colours exactly.
            vrange = tuple(round(v, 4) for v in auto_range(result["depth"])) if depth_range == "auto" \
                else (DEPTH_MIN, DEPTH_MAX)
            save("depth_color", f"{stem}_depth_color.png", depth_to_uint8(result["depth"], *vrange))
            entry["depth_color_range_m"] = list(vrange)
        if item.preview_input is not None:
            small = predictor.at_size(outputs, index, item.preview_input.shape[:2], guide=item.preview_input)
            save("preview", f"{stem}{PREVIEW_SUFFIX}", preview_image(item.preview_input, small, vrange))
        return entry
    except BaseException as exc:  # a full disk (DiskFullError), Ctrl-C, anything: no partial set of outputs
        # Written now, or left by an earlier call (--overwrite): none of this input's set stays.
        for path in dict.fromkeys([*written, *(f"{stem}{suffix}" for suffix in suffixes)]):
            with contextlib.suppress(OSError):
                os.unlink(path)
        if not isinstance(exc, OSError):
            raise
        if exc.errno in PER_FILE_ERRNOS:  # this input's name, not the folder: skip it, go on
            raise BadInputError(
                item.file.path, f"cannot write its outputs under {out_dir}: {exc.strerror or exc} "
                "(rename the file or choose a shorter --out path)"
            ) from exc
        # The output folder, not the input, is at fault: stop everything.
        raise MaskdepthError(
            f"cannot write the outputs of {item.file.path} under {out_dir}: {exc.strerror or exc}"
            f"{f' ({exc.filename})' if exc.filename else ''}"
        ) from exc
