"""Foreground-on-background composition with exact labels, fast enough to run on the fly.

For a manifest row (bg, fg, foot point (u, v), scale, flip) at working size S:

* depth of the foreground = the ground depth at the foot point, computed analytically from
  the background's camera at row v (`Camera.ground_depth`): the object stands on the floor.
  The object is a flat, upright sprite, so its depth is this one value over its whole
  mask (no relief);
* its pixel height is the projection of its real height (height_m * scale) standing at the
  foot point, about height_m * focal / depth, rounded to whole pixels; its width keeps the
  sprite's aspect ratio;
* image = alpha blend of the sprite over the background;
* mask = alpha > 0.5: soft edge pixels with alpha <= 0.5 count as background (mask 0 and the
  background's depth) although their colour is partly the object's; pixels with alpha > 0.5
  are foreground (mask 1, foreground depth);
* a flipped row is the horizontal mirror of the unflipped sample: image, bg, mask, depth.

Sprites are resized (Pillow, area-correct for RGBA) once per (foreground, pixel height) and
kept in a small LRU cache, so composing a sample is numpy slicing only.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
from PIL import Image

from maskdepth.data.sources import Sources

FG_CACHE_BYTES = 256 * 2**20


class Composer:
    """Composes rows of a manifest (given as column arrays) at the sources' working size."""

    def __init__(self, sources: Sources, bg, fg, u, v, scale, flip):
        self.sources = sources
        self.size = S = sources.size
        self.bg = np.asarray(bg, dtype=np.int64)
        self.fg = np.asarray(fg, dtype=np.int64)
        self.u = np.asarray(u, dtype=np.float64)
        self.v = np.asarray(v, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.flip = np.asarray(flip, dtype=bool)
        cams = [b.camera for b in sources.backgrounds]
        h = np.array([c.height for c in cams])[self.bg]
        s = np.array([c.sin_pitch for c in cams])[self.bg]
        c = np.array([c.cos_pitch for c in cams])[self.bg]
        f = np.array([c.focal for c in cams])[self.bg]
        # Same arithmetic as Camera.ground_depth, so labels equal the analytic value bit for bit.
        self.fg_depth = (h / (((self.v - 0.5) / f) * c + s)).astype(np.float32)
        depth = h / (((self.v - 0.5) / f) * c + s)
        size_m = np.array([g.height_m for g in sources.foregrounds])[self.fg] * self.scale
        ground_z = (depth - h * s) / c
        top_depth = -(size_m - h) * s + ground_z * c
        v_top = 0.5 - f * ((size_m - h) * c + ground_z * s) / top_depth
        self.pixel_height = np.maximum(1, np.rint((self.v - v_top) * S)).astype(np.int64)
        R = sources.spec.fg_resolution
        canvas_w = np.diff(sources.fg_offsets)[self.fg]
        self.pixel_width = np.maximum(1, np.rint(canvas_w * self.pixel_height / R)).astype(np.int64)
        self.y0 = np.rint(self.v * S).astype(np.int64) - self.pixel_height
        self.x0 = np.rint(self.u * S - self.pixel_width / 2.0).astype(np.int64)
        used = np.unique(self.bg)
        self._bg_slot = np.zeros(len(sources.backgrounds), dtype=np.int64)
        self._bg_slot[used] = np.arange(len(used))
        self._bg_chw = np.ascontiguousarray(sources.bg_rgb[used].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        self._bg_depth = sources.bg_depth[used]
        self._sprites: OrderedDict = OrderedDict()
        self._sprite_bytes = 0

    def __len__(self) -> int:
        return len(self.bg)

    def sprite(self, fg_id: int, height: int, width: int):
        """(alpha [h, w], premultiplied rgb [3, h, w], mask [h, w]) of a sprite at a pixel size."""
        key = (fg_id, height, width)
        hit = self._sprites.get(key)
        if hit is not None:
            self._sprites.move_to_end(key)
            return hit
        rgba = Image.fromarray(self.sources.fg_rgba(fg_id))
        resized = np.asarray(rgba.resize((int(width), int(height)), Image.Resampling.BOX), dtype=np.float32) / 255.0
        alpha = resized[..., 3]
        entry = (alpha, np.ascontiguousarray((resized[..., :3] * alpha[..., None]).transpose(2, 0, 1)), alpha > 0.5)
        self._sprites[key] = entry
        self._sprite_bytes += alpha.nbytes * 5
        while self._sprite_bytes > FG_CACHE_BYTES and len(self._sprites) > 1:
            _, old = self._sprites.popitem(last=False)
            self._sprite_bytes -= old[0].nbytes * 5
        return entry

    def compose(self, i: int) -> dict[str, np.ndarray]:
        """Sample i as numpy arrays: image/bg float32 [3,S,S] in [0,1], mask {0,1} and depth (m) [1,S,S]."""
        S = self.size
        slot = self._bg_slot[self.bg[i]]
        bg = self._bg_chw[slot]
        image = bg.copy()
        depth = self._bg_depth[slot].copy()
        mask = np.zeros((S, S), dtype=np.float32)
        h, w = int(self.pixel_height[i]), int(self.pixel_width[i])
        y0, x0 = int(self.y0[i]), int(self.x0[i])
        ys, ye, xs, xe = max(y0, 0), min(y0 + h, S), max(x0, 0), min(x0 + w, S)
        if ys < ye and xs < xe:
            alpha, rgb, inside = self.sprite(int(self.fg[i]), h, w)
            win = (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))
            a = alpha[win]
            image[:, ys:ye, xs:xe] = image[:, ys:ye, xs:xe] * (1.0 - a) + rgb[(slice(None),) + win]
            m = inside[win]
            mask[ys:ye, xs:xe] = m
            depth[ys:ye, xs:xe][m] = self.fg_depth[i]
        if self.flip[i]:
            image, bg, mask, depth = image[:, :, ::-1], bg[:, :, ::-1], mask[:, ::-1], depth[:, ::-1]
        return {
            "image": np.ascontiguousarray(image),
            "bg": np.ascontiguousarray(bg) if self.flip[i] else bg.copy(),
            "mask": np.ascontiguousarray(mask)[None],
            "depth": np.ascontiguousarray(depth)[None],
        }


def composition_rate(composer: Composer, n: int = 5000, warmup: int = 1000) -> float:
    """Samples per second of `composer.compose` on this core (after warming the sprite cache)."""
    count = len(composer)
    for i in range(min(warmup, count)):
        composer.compose(i)
    start = time.perf_counter()
    for k in range(n):
        composer.compose(k % count)
    return n / (time.perf_counter() - start)
