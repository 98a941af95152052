"""Every sample of an import decoded once and checked, into memory-mapped staging arrays.

Checked per file (a problem names it): readable and fully decoded; fg_bg and bg 8-bit RGB, masks
8-bit greyscale or 1-bit, depth single-channel 8- or 16-bit (the majority bit depth); the
dataset's size (the most common fg_bg size). Samples are centre-cropped to a square and resized:
images by area averaging, masks and depth by nearest neighbour (labels are never interpolated).
Depth becomes metres by `DepthRule`, masks {0, 1} by `MaskRule`, both read from the whole dataset.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN, DEPTH_PNG_SCALE, depth_to_png16
from maskdepth.core.errors import BadInputError
from maskdepth.core.progress import progress
from maskdepth.datasets.files import (
    center_square,
    depth_raw_array,
    mask_values,
    open_image,
    resize,
    rgb_array,
)
from maskdepth.datasets.import_source import FIELDS, Candidate, Scan, SourceTree


@dataclass
class DepthRule:
    """How stored depth values become metres, recorded in dataset.json (`depth.units`).

    16-bit PNG: metres = value * scale, default 1/256 (this project's and KITTI's convention):
    "metres". 8-bit maps (the capstone's, from DenseDepth) hold *relative* depth: without a scale they
    are mapped log-uniformly onto [DEPTH_MIN, DEPTH_MAX], 0 -> DEPTH_MIN and 255 -> DEPTH_MAX
    (`bright="near"` reverses it): "relative"; metric metrics on such data compare against this
    mapping, not real distances. With a scale, metres = value * scale. Depth is then clamped to
    [DEPTH_MIN, DEPTH_MAX] (zeros, "no depth", become DEPTH_MIN), the clamped fraction recorded."""

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



@dataclass
class MaskRule:
    """How stored mask values become {0, 1}, from the value range of the whole dataset (recorded in
    dataset.json `masks`): 0/1 and 0/255 (or 0/N) masks are binary, foreground the maximum; soft
    masks (values between 0 and their maximum) are thresholded at half their range, with a warning.
    A 0/1 mask among masks using 0..N is a problem file (the ranges would be mixed)."""

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


def stage_samples(tree: SourceTree, found: Scan, size: int, depth_scale, depth_bright, partial: Path) -> Staged:
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
