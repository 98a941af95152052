"""Import an existing fg_bg / mask / depth dataset (a folder or a zip) as a packed dataset.

Many course students hold the seed's 400k dataset: `fg_bg/`, `mask/`, `depth/` (and
optionally `bg/`) with one file per sample, paired by file stem (sub-folders allowed:
`fg_bg/bg1/x.jpg` pairs with `mask/bg1/x.png`). In a zip, these folders may sit under one
top-level folder.

What is checked (every problem names the file):

* pairing: a stem missing from one of fg_bg / mask / depth, or present twice (x.jpg, x.png);
* readability: not an image, truncated (every file is fully decoded), empty;
* modes: fg_bg and bg 8-bit RGB; masks 8-bit greyscale or 1-bit; depth single-channel 8- or
  16-bit (the majority bit depth; the others are refused);
* mask values, over the whole dataset (recorded in dataset.json `masks` and reported): 0/1
  masks are read as binary (foreground = 1); 0/255 (or 0/N) masks are binary too; soft masks
  (values between 0 and their maximum) are thresholded at half their range, with a warning.
  A mask whose values are 0/1 among masks that use 0..N is a problem file (the ranges would
  be mixed), and a dataset without any foreground pixel in any mask is an error;
* size: every file of a sample has the dataset's size (the most common fg_bg size).

Zip members are read as streams, never unpacked whole into memory: the image header (mode,
size, pixel limit) is checked from the first bytes, and a member that unpacks to more than
`MAX_MEMBER_BYTES` is refused. A corrupt member (bad CRC, damaged data or header) is a
problem file like any other.

Without `skip_bad` any problem fails the import with the list (nothing is written as
valid); with it, the samples with a problem are left out, counted, and listed in
`problems.txt`.

Samples are centre-cropped to a square (when the source is not square) and resized to
`size`: images by area averaging, masks and depth by nearest neighbour (labels are never
interpolated).

Backgrounds: a sample uses the `bg/` file with the same seed-style id (`bg12_fg3_7` ->
`bg/bg12.jpg`); a name ending in `_flip` (as written by `materialize --format folders`) shows
that background mirrored. Samples without a known background use the image itself as `bg`.

Depth units, recorded in dataset.json (`depth.units`):

* 16-bit PNG: metres = value * depth_scale, default 1/256 (this project's and KITTI's
  convention): `metres`.
* 8-bit maps (the seed's, from DenseDepth) hold *relative* depth, not metres. Without
  `depth_scale` they are mapped log-uniformly onto [DEPTH_MIN, DEPTH_MAX], value 0 ->
  DEPTH_MIN and 255 -> DEPTH_MAX (`depth_bright="near"` reverses it): `relative`. Metric
  metrics (AbsRel, RMSE in metres) on such data compare against this mapping, not against
  real distances. With `depth_scale`, metres = value * depth_scale: `metres`.

Depth is clamped to [DEPTH_MIN, DEPTH_MAX] (zeros, "no depth", become DEPTH_MIN); the
fraction of clamped pixels is recorded. Splits: see `datadir.assign_splits` (backgrounds
are held out for `unseen` when names carry seed-style `bg{N}` ids).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import time
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN, DEPTH_PNG_SCALE, depth_to_png16
from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.core.fileio import check_output, folder_lock, write_text
from maskdepth.core.imageio import IMAGE_SUFFIXES
from maskdepth.core.progress import progress
from maskdepth.datasets.datadir import already_complete, assign_splits, bg_id_from_name, claim_output
from maskdepth.datasets.files import (
    center_square,
    depth_raw_array,
    mask_values,
    open_image,
    resize,
    rgb_array,
)
from maskdepth.datasets.packed import PackedSample, write_packed
from maskdepth.plan.stages import SPLITS

FIELDS = ("fg_bg", "mask", "depth")
FLIP_SUFFIX = "_flip"  # `maskdepth data materialize --format folders`: the sample shows its bg mirrored
LISTED = 20  # problems shown in an error message (all of them go to problems.txt)
# Largest unpacked size of one zip member. Image files are compressed already: a member far
# larger than the 64 Mpx pixel limit needs is a decompression bomb, not a photo.
MAX_MEMBER_BYTES = 256 * 2**20


class ImportProblems(MaskdepthError):
    """Files that cannot be imported; `.problems` lists them as BadInputErrors."""

    def __init__(self, src, problems: list[BadInputError], good: int):
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:LISTED])
        more = f"\n  ... and {len(problems) - LISTED} more" if len(problems) > LISTED else ""
        super().__init__(
            f"import of {src}: {len(problems)} problem file(s):\n{shown}{more}\n"
            f"Fix or remove them, or rerun with --skip-bad to import the {good} good samples without them."
        )


class SourceTree:
    """The files of a dataset folder or zip, by posix path relative to its root (the folder holding fg_bg/)."""

    def __init__(self, src):
        self.src = Path(src)
        self.zip = None
        if not self.src.exists():
            raise BadInputError(self.src, "no such file or folder")
        if self.src.is_file():
            try:
                self.zip = zipfile.ZipFile(self.src)
            except (zipfile.BadZipFile, OSError) as exc:
                raise BadInputError(self.src, f"neither a folder nor a readable zip file ({exc})") from exc
            names = [n for n in self.zip.namelist() if not n.endswith("/")]
        else:
            names = [Path(root, n).relative_to(self.src).as_posix()
                     for root, _, files in os.walk(self.src) for n in files]
        names = [n for n in names if not _hidden(n)]
        self.root = _find_root(self.src, names)
        cut = len(self.root)
        self.files = sorted(n[cut:] for n in names if n.startswith(self.root))

    def label(self, rel: str) -> str:
        """How a file is named in messages: the path, or archive.zip:path."""
        if self.zip is not None:
            return f"{self.src}:{self.root}{rel}"
        return str(self.src / self.root / rel)

    def open(self, rel: str):
        """A path, or a stream over the zip member (capped, errors as BadInputError naming it)."""
        if self.zip is None:
            return self.src / self.root / rel
        label = self.label(rel)
        info = self.zip.getinfo(self.root + rel)
        if info.file_size > MAX_MEMBER_BYTES:
            raise BadInputError(label, f"unpacks to {info.file_size / 2**20:.0f} MiB, over the "
                                       f"{MAX_MEMBER_BYTES / 2**20:.0f} MiB limit per file (a zip bomb?)")
        with _zip_errors(label):
            return _MemberStream(self.zip.open(info), label)

    def fingerprint(self) -> str:
        """sha256 of the file list with sizes: a changed source does not resume an old import."""
        h = hashlib.sha256()
        for rel in self.files:
            if self.zip is not None:
                size = self.zip.getinfo(self.root + rel).file_size
            else:
                size = (self.src / self.root / rel).stat().st_size
            h.update(f"{rel}\0{size}\n".encode())
        return h.hexdigest()


@contextlib.contextmanager
def _zip_errors(label: str):
    """A damaged zip member (bad CRC or header, undecodable or cut data, unsupported compression
    or encryption) becomes a BadInputError naming it."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError) as exc:
        raise BadInputError(label, f"corrupt zip member ({type(exc).__name__}: {exc})") from exc


class _MemberStream(io.RawIOBase):
    """A zip member as a seekable binary stream; read errors become BadInputError naming it.
    zipfile never yields more than the member's declared size, which `open` has capped."""

    def __init__(self, member, label: str):
        self._member, self._label = member, label

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with _zip_errors(self._label):
            return self._member.read(size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with _zip_errors(self._label):
            return self._member.seek(offset, whence)

    def tell(self) -> int:
        return self._member.tell()

    def close(self) -> None:
        self._member.close()
        super().close()


def _hidden(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _find_root(src: Path, names: list[str]) -> str:
    """The folder holding fg_bg/: the shallowest one; two at the same depth are refused (which
    one to import would otherwise be arbitrary)."""
    roots = sorted({n[: n.index("fg_bg/")] for n in names if "fg_bg/" in n and
                    (n.startswith("fg_bg/") or n[: n.index("fg_bg/")].endswith("/"))}, key=lambda r: (r.count("/"), r))
    if not roots:
        raise MaskdepthError(f"{src}: no fg_bg/ folder found; expected fg_bg/, mask/ and depth/ "
                             "(and optionally bg/) with files paired by name")
    tied = [r for r in roots if r.count("/") == roots[0].count("/")]
    if len(tied) > 1:
        raise MaskdepthError(f"{src}: holds {len(tied)} datasets ({', '.join(r or '.' for r in tied[:4])}): "
                             "import one at a time (unpack it, or give its folder as SRC)")
    return roots[0]


@dataclass
class Candidate:
    name: str  # stem relative to the field folder, e.g. "bg1/x"
    files: dict[str, str]  # field -> relative path
    bg: str | None = None  # relative path of its background, if known


@dataclass
class Scan:
    candidates: list[Candidate]
    problems: list[BadInputError] = field(default_factory=list)
    backgrounds: dict[str, str] = field(default_factory=dict)  # bg id -> relative path
    unusable: int = 0  # stems left out by pairing (unpaired or duplicate)


def scan(tree: SourceTree) -> Scan:
    """Pair the files by stem; unpaired and duplicate stems are problems."""
    by_field: dict[str, dict[str, list[str]]] = {f: {} for f in (*FIELDS, "bg")}
    for rel in tree.files:
        top, _, rest = rel.partition("/")
        if top in by_field and rest and PurePosixPath(rest).suffix.lower() in IMAGE_SUFFIXES:
            by_field[top].setdefault(str(PurePosixPath(rest).with_suffix("")), []).append(rel)
    problems: list[BadInputError] = []
    for fld in (*FIELDS, "bg"):
        for stem, rels in by_field[fld].items():
            if len(rels) > 1:
                problems.extend(BadInputError(tree.label(r), f"{len(rels)} files share the name {fld}/{stem}.*; "
                                                            "keep one") for r in rels)
    if not by_field["fg_bg"]:
        raise MaskdepthError(f"{tree.label('fg_bg/')}: no image files")
    stems = sorted(set().union(*(by_field[f].keys() for f in FIELDS)))
    candidates = []
    unusable = 0
    for stem in stems:
        have = {f: by_field[f][stem] for f in FIELDS if stem in by_field[f]}
        if len(have) < len(FIELDS):
            missing = ", ".join(f"{f}/{stem}.*" for f in FIELDS if f not in have)
            for rels in have.values():
                problems.append(BadInputError(tree.label(rels[0]), f"unpaired: no {missing}"))
            unusable += 1
            continue
        if any(len(r) > 1 for r in have.values()):
            unusable += 1
            continue
        candidates.append(Candidate(stem, {f: r[0] for f, r in have.items()}))
    backgrounds = {}
    for stem, rels in by_field["bg"].items():
        bg_id = bg_id_from_name(PurePosixPath(stem).name)
        if bg_id is not None and len(rels) == 1:
            backgrounds[bg_id] = rels[0]
    for c in candidates:
        bg_id = bg_id_from_name(PurePosixPath(c.name).name)
        c.bg = backgrounds.get(bg_id) if bg_id is not None else None
    return Scan(candidates, problems, backgrounds, unusable)


@dataclass
class DepthRule:
    """How stored depth values become metres (see the module docstring)."""

    bits: int
    scale: float | None = None  # metres per unit; None with 8 bits: relative, log-uniform
    bright: str = "far"

    @property
    def units(self) -> str:
        return "metres" if self.bits == 16 or self.scale is not None else "relative"

    def metres(self, values: np.ndarray) -> np.ndarray:
        if self.bits == 16 or self.scale is not None:
            scale = self.scale if self.scale is not None else 1.0 / DEPTH_PNG_SCALE
            return values.astype(np.float64) * scale
        t = values.astype(np.float64) / 255.0
        if self.bright == "near":
            t = 1.0 - t
        return DEPTH_MIN * (DEPTH_MAX / DEPTH_MIN) ** t

    def describe(self) -> dict:
        if self.units == "metres":
            scale = self.scale if self.scale is not None else 1.0 / DEPTH_PNG_SCALE
            note = f"{self.bits}-bit maps, metres = value * {scale:g}"
        else:
            note = (f"8-bit maps hold relative depth (e.g. DenseDepth), not metres: mapped log-uniformly onto "
                    f"[{DEPTH_MIN}, {DEPTH_MAX}] m, {'bright = near' if self.bright == 'near' else 'bright = far'}")
        return {"units": self.units, "source_bits": self.bits, "png_scale": DEPTH_PNG_SCALE,
                "range": [DEPTH_MIN, DEPTH_MAX], "note": note}


def import_dataset(src, out, *, size: int = 64, skip_bad: bool = False, depth_scale: float | None = None,
                   depth_bright: str = "far") -> dict:
    """Import `src` into a packed dataset directory at `out`; returns counts, skipped, seconds, samples/s."""
    from maskdepth.world.sources import check_size

    size = check_size(size)
    if depth_bright not in ("far", "near"):
        raise MaskdepthError(f"depth_bright={depth_bright!r}: choose far or near")
    if depth_scale is not None and not (math.isfinite(depth_scale) and depth_scale > 0):
        raise MaskdepthError(f"--depth-scale {depth_scale}: must be a positive number (metres per stored unit)")
    check_output(out, reads=[src], folder=True)
    with folder_lock(out, "data import"):
        return _import(src, out, size, skip_bad, depth_scale, depth_bright)


def _import(src, out, size: int, skip_bad: bool, depth_scale, depth_bright: str) -> dict:
    start = time.perf_counter()
    tree = SourceTree(src)
    found = scan(tree)
    identity = {"kind": "imported", "src": str(Path(src).resolve()), "fingerprint": tree.fingerprint(),
                "size": size, "skip_bad": skip_bad, "depth_scale": depth_scale, "depth_bright": depth_bright}
    if already_complete(out, identity):
        return {"out": str(out), "complete_already": True, "seconds": 0.0, "samples_per_s": None}
    partial = claim_output(out, {"identity": identity, "size": size})
    staged = _stage(tree, found, size, depth_scale, depth_bright, partial)
    problems = found.problems + staged.problems
    if problems and not skip_bad:
        import shutil

        shutil.rmtree(partial, ignore_errors=True)  # nothing valid was written; a rerun starts clean
        raise ImportProblems(src, problems, len(staged.good))
    skipped = len(found.candidates) - len(staged.good) + found.unusable
    if not staged.good:
        raise MaskdepthError(f"import of {src}: no usable samples")
    if staged.mask_rule is not None and staged.mask_rule.top == 0:
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
        raise MaskdepthError(f"import of {src}: every mask is empty (all values 0), no foreground anywhere; masks "
                             "must mark the foreground with non-zero values (255, or 1)")
    good = staged.good
    names = [found.candidates[k].name for k in good]
    groups = [bg_id_from_name(PurePosixPath(n).name) for n in names]
    splits, split_method = assign_splits(names, groups)
    order = {s: [k for k, sp in zip(good, splits) if sp == s] for s in SPLITS}
    counts = {s: len(order[s]) for s in SPLITS}
    arrays = staged.arrays

    def samples(split: str, start_at: int):
        for k in order[split][start_at:]:
            yield PackedSample(arrays["image"][k], arrays["mask"][k], arrays["depth"][k],
                               int(arrays["bg"][k]), found.candidates[k].name.endswith(FLIP_SUFFIX))

    def rows():
        out_rows = []
        for s in SPLITS:
            for i, k in enumerate(order[s]):
                c = found.candidates[k]
                out_rows.append({"split": s, "index": i, "name": c.name, "fg_bg": c.files["fg_bg"],
                                 "mask": c.files["mask"], "depth": c.files["depth"], "bg": c.bg or ""})
        return out_rows

    if problems:
        write_text(Path(out) / "problems.txt", "".join(f"{p}\n" for p in problems))
    meta = {
        "source": {"kind": "imported", "from": identity["src"], "files": len(tree.files),
                   "skipped_samples": skipped, "problem_files": len(problems),
                   "clamped_depth_fraction": staged.clamped / max(1, len(good) * size * size),
                   "all_zero_depth_maps": staged.zero_depth},
        "depth": staged.rule.describe() if staged.rule else {},
        "masks": staged.mask_rule.describe() if staged.mask_rule else {},
        "splits": split_method,
        "backgrounds": staged.bg_names,
    }
    result = write_packed(out, size=size, counts=counts, identity=identity, backgrounds=staged.backgrounds,
                          samples=samples, rows=rows, meta=meta, desc="import")
    seconds = time.perf_counter() - start
    return {**result, "out": str(out), "counts": counts, "samples": len(good), "skipped": skipped,
            "unpaired_or_duplicate": len(found.problems), "problems": [str(p) for p in problems],
            "depth_units": meta["depth"].get("units"), "masks": meta["masks"], "zero_depth": staged.zero_depth,
            "seconds": seconds,
            "samples_per_s": len(good) / seconds if seconds > 0 else None}


@dataclass
class MaskRule:
    """How stored mask values become {0, 1}, from the value range of the whole dataset."""

    top: int  # the dataset's largest mask value: 1 for 0/1 masks, 255 for 0/255 ones
    soft: int = 0  # masks holding values between 0 and their maximum

    @property
    def kind(self) -> str:
        if self.soft:
            return f"soft 0..{self.top}"
        return f"0/{self.top}"

    @property
    def threshold(self) -> float:
        return self.top / 2.0  # foreground: value > threshold

    def describe(self) -> dict:
        if self.top == 1:
            note = "0/1 masks: read as binary, foreground = 1"
        elif self.soft:
            note = (f"soft masks ({self.soft} with values between 0 and {self.top}): thresholded at half their range, "
                    f"foreground > {self.threshold:g}")
        else:
            note = f"binary 0/{self.top} masks: foreground = {self.top}"
        return {"values": self.kind, "threshold": self.threshold, "soft_masks": self.soft, "note": note}


@dataclass
class Staged:
    arrays: dict[str, np.ndarray]
    good: list[int]
    problems: list[BadInputError]
    backgrounds: np.ndarray
    bg_names: list[str]
    rule: DepthRule | None
    clamped: int
    mask_rule: MaskRule | None = None
    zero_depth: int = 0  # depth maps that are 0 everywhere (no depth at all), imported as DEPTH_MIN


def _stage(tree: SourceTree, found: Scan, size: int, depth_scale, depth_bright, partial: Path) -> Staged:
    """Decode every candidate once into memory-mapped staging arrays (in .partial), noting problems."""
    cands = found.candidates
    problems: list[BadInputError] = []
    # The dataset's size and depth bit depth: the most common among the headers.
    sizes: Counter = Counter()
    bits: Counter = Counter()
    headers: dict[tuple[int, str], tuple[tuple[int, int], str]] = {}
    bad: set[int] = set()
    for k, c in enumerate(progress(cands, desc="import: headers", total=len(cands))):
        for fld in FIELDS:
            try:
                with open_image(tree.open(c.files[fld]), tree.label(c.files[fld]), decode=False) as im:
                    headers[k, fld] = (im.size, im.mode)
            except BadInputError as exc:
                problems.append(exc)
                bad.add(k)
        if (k, "fg_bg") in headers:
            sizes[headers[k, "fg_bg"][0]] += 1
        if (k, "depth") in headers:
            mode = headers[k, "depth"][1]
            bits[8 if mode == "L" else 16 if (mode.startswith("I;16") or mode == "I") else 0] += 1
    ref_size = sizes.most_common(1)[0][0] if sizes else None
    ref_bits = max((b for b in bits if b), key=lambda b: bits[b], default=16)
    rule = DepthRule(ref_bits, depth_scale, depth_bright)
    bg_ids = sorted({c.bg for c in cands if c.bg}, key=str)
    backgrounds = np.zeros((0, 3, size, size), np.uint8)
    bg_slot: dict[str, int] = {}
    bg_images = []
    for rel in bg_ids:
        try:
            with open_image(tree.open(rel), tree.label(rel)) as im:
                rgb = rgb_array(im, tree.label(rel))
            if ref_size and rgb.shape[1::-1] != ref_size:
                raise BadInputError(tree.label(rel), f"wrong size {rgb.shape[1]}x{rgb.shape[0]}, the dataset's "
                                                     f"images are {ref_size[0]}x{ref_size[1]}")
            bg_slot[rel] = len(bg_images)
            bg_images.append(resize(center_square(rgb), size, label=False).transpose(2, 0, 1))
        except BadInputError as exc:
            problems.append(exc)
    if bg_images:
        backgrounds = np.stack(bg_images)
    n = len(cands)
    staging = {
        "image": np.lib.format.open_memmap(partial / "staging.image.npy", "w+", np.uint8, (max(n, 1), 3, size, size)),
        "mask": np.lib.format.open_memmap(partial / "staging.mask.npy", "w+", np.uint8, (max(n, 1), size, size)),
        "depth": np.lib.format.open_memmap(partial / "staging.depth.npy", "w+", np.uint16, (max(n, 1), size, size)),
        "bg": np.full(max(n, 1), -1, np.int32),
    }
    good: list[int] = []
    clamped = 0
    zero_depth = 0
    mask_top = np.zeros(max(n, 1), np.int32)  # per sample: largest stored mask value
    mask_soft = np.zeros(max(n, 1), bool)  # per sample: values between 0 and that maximum
    for k, c in enumerate(progress(cands, desc="import: decode", total=n, unit="sample")):
        if k in bad:
            continue
        try:
            image, mask, depth = _decode(tree, c, ref_size, rule)
        except BadInputError as exc:
            problems.append(exc)
            continue
        if c.bg and c.bg not in bg_slot:
            problems.append(BadInputError(tree.label(c.files["fg_bg"]), f"its background {c.bg} is unusable"))
            continue
        zero_depth += not depth.any()
        metres = rule.metres(resize(center_square(depth), size, label=True))
        clamped += int(((metres < DEPTH_MIN) | (metres > DEPTH_MAX)).sum())
        staging["image"][k] = resize(center_square(image), size, label=False).transpose(2, 0, 1)
        staging["mask"][k] = resize(center_square(mask), size, label=True)  # stored values, for now
        mask_top[k] = int(mask.max(initial=0))
        mask_soft[k] = bool(((mask > 0) & (mask < mask_top[k])).any())
        staging["depth"][k] = depth_to_png16(np.clip(metres, DEPTH_MIN, DEPTH_MAX))
        staging["bg"][k] = bg_slot.get(c.bg, -1) if c.bg else -1
        good.append(k)
    mask_rule = None
    if good:
        top = int(mask_top[good].max())
        if top > 1:  # 0/1 masks among 0..top ones: their foreground would vanish
            mixed = [k for k in good if mask_top[k] == 1]
            problems.extend(BadInputError(tree.label(cands[k].files["mask"]), f"mask values 0/1 among masks using "
                                          f"0..{top}: the value ranges would be mixed") for k in mixed)
            good = [k for k in good if mask_top[k] != 1]
        mask_rule = MaskRule(top, int(mask_soft[good].sum()) if good else 0)
        if top > 0:
            for start in range(0, len(good), 4096):  # threshold in place, a chunk at a time
                chunk = good[start : start + 4096]
                staging["mask"][chunk] = (staging["mask"][chunk] > mask_rule.threshold).astype(np.uint8)
    return Staged(staging, good, problems, backgrounds, [tree.label(r) for r in bg_slot], rule, clamped, mask_rule,
                  zero_depth)


def _decode(tree: SourceTree, c: Candidate, ref_size, rule: DepthRule):
    """Decode one sample's three files, checking modes and sizes (BadInputError names the file)."""
    arrays = {}
    for fld, convert in (("fg_bg", rgb_array), ("mask", mask_values), ("depth", depth_raw_array)):
        label = tree.label(c.files[fld])
        with open_image(tree.open(c.files[fld]), label) as im:
            value = convert(im, label)
        if fld == "depth":
            value, bits = value
            if bits != rule.bits:
                raise BadInputError(label, f"{bits}-bit depth map among {rule.bits}-bit ones: depth units would "
                                           "be mixed")
        if value.shape[1::-1] != ref_size:
            raise BadInputError(label, f"wrong size {value.shape[1]}x{value.shape[0]}, the dataset's images "
                                       f"are {ref_size[0]}x{ref_size[1]}")
        arrays[fld] = value
    return arrays["fg_bg"], arrays["mask"], arrays["depth"]

