"""Predict the mask and depth of any image with a trained checkpoint.

The fully convolutional network sees each image at its own aspect ratio (`working_size`): the
short side at the working size (the checkpoint's training size, or `size=` / `--size`), the
long side scaled alike, both rounded to the model's size multiple; never squashed to a square.
Each image is brought there as the dataset resizes (float32 RGB in [0, 1], bilinear with
antialiasing), and the outputs are brought back to the **image's own resolution** (`upsample`):

* "guided" (default): the mask *logits* and the log-depth follow the full-resolution image's
  edges (`maskdepth.prediction.upsample`: the fast guided filter, radius 4 working pixels, RGB guide,
  eps 1e-4 for the mask and 1e-3 for depth). On 256 px renders of the synthetic world with a
  64 px model it measured better than bilinear at object edges (`bench/upsample.py`; numbers
  in bench/results/*-upsample.json and the `maskdepth.prediction.upsample` docstring).
* "bilinear": mask logits and depth (metres) interpolated bilinearly.

Either way the mask is thresholded only after upsampling, and depth stays inside
[DEPTH_MIN, DEPTH_MAX]. This is no super-resolution: what the network saw is the working size's.

Speed: the network runs as its fastest equivalent for inference (`Predictor`): BatchNorm
folded into the convolution before it (`fold_batchnorm`; the outputs equal the checkpoint's
up to float rounding), channels_last memory format and `torch.inference_mode`. bf16 autocast
is used only when asked (`Predictor(precision="bf16")`), only on a CPU with native bf16
(`maskdepth.core.device.cpu_has_fast_bf16`) or a GPU, and only after the first batch showed its
outputs close to float32 (`outputs_agree`: mask IoU > 0.99, mean depth relative error < 2 %;
that batch's float32 outputs are returned). The default ("auto") is float32: on the AVX512-BF16
CPU we measured (no AMX), bf16 inference of the default model was slower than float32 at batch
1 and 32 (bench/ figure 4, "torch bf16" row).

For 6-channel checkpoints (`input_mode` "bg_fg_bg") a background image goes in front of each
image: the network input is cat([bg, image]) (`data.model_input`). One background for all
(`bg=` / `--bg FILE`), or one per input (`predict(bg=[...])`; `predict_files(backgrounds=...)`,
paired by `maskdepth.core.imageio.pair_backgrounds`: NAME_bg.* beside NAME.*, or `--bg-dir DIR`).

Files written per input by `predict_files` (the `maskdepth predict` command), NAME being
the input's name without suffix (with its sub-folder when found in a folder):

    NAME_mask.png         8-bit, 0 background / 255 foreground
    NAME_depth.png        16-bit, depth in metres * 256 (`maskdepth.core.depth.depth_to_png16`;
                          read back with `depth_from_png16`: value / 256 = metres)
    NAME_depth_color.png  depth in colour, the convention of every depth picture
                          (`maskdepth.figures.depthviz`): near = bright, log scale over the fixed range
                          [DEPTH_MIN, DEPTH_MAX] = [0.25 m, 80 m], so any two compare by eye;
                          with depth_range "auto" (--depth-range auto) over this image's own
                          min..max instead (the range is listed in predictions.json)
    NAME_preview.png      (unless --no-preview) input | mask overlay | depth colour | colour
                          bar in metres, side by side, the longer side at most 1024 px

and once per call:

    predictions.json      each input with its output files (and depth colour range, and
                          background), the checkpoint, the upsampling method, the depth PNG
                          scale (metres * 256) and what each file holds

Single-task checkpoints write only what they predict.

Existing files are never replaced by surprise: before anything is predicted, the outputs'
names are checked. An output that would replace one of the inputs (e.g. `--out` is the input
folder, holding `cat.png` and a ground-truth `cat_mask.png`) is refused, always; an output
file that already exists (an earlier run's, or anything else, predictions.json included) is
refused unless `overwrite=True` (`--overwrite`). Either way nothing has been written when it is refused.

An input whose outputs cannot be written for a reason of its own (its name is too long for
the output file system) counts as a failed input and the others go on; a fault of the
output folder itself (no space left, read-only, permission denied) stops the run.
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
import torch.nn.functional as F
from PIL import Image

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.core.device import resolve_device
from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.core.fileio import check_output, folder_lock
from maskdepth.core.imageio import MAX_PIXELS, ImageFile, load_image, save_png, to_rgb_array, upright
from maskdepth.core.progress import progress
from maskdepth.core.runs import resolve_checkpoint
from maskdepth.datasets.dataset import model_input
from maskdepth.models.checkpoint import input_size, load_model
from maskdepth.prediction.upsample import (
    GUIDED_EPS_DEPTH,
    GUIDED_EPS_MASK,
    GUIDED_RADIUS,
    UPSAMPLE_METHODS,
    bilinear,
    guided_upsample,
)

MASK_THRESHOLD = 0.5
PREVIEW_MAX_SIDE = 1024  # preview panels are shrunk to this; the other outputs never are
OUTPUT_SUFFIXES = {"mask": ("_mask.png",), "depth": ("_depth.png", "_depth_color.png")}
PREVIEW_SUFFIX = "_preview.png"
PREDICTIONS_FILE = "predictions.json"
# Write errors that belong to one input's output name, not to the output folder.
PER_FILE_ERRNOS = {errno.ENAMETOOLONG, errno.EILSEQ}
OVERLAY_COLOR = np.array([255, 40, 40], np.float32)
OVERLAY_ALPHA = 0.5
DEFAULT_UPSAMPLE = "guided"  # measured better than bilinear at object edges (see the module docstring)
BACKGROUND_CACHE = 256  # prepared backgrounds kept while predicting files (inputs often share one)
PRECISIONS = ("auto", "float32", "bf16")
AUTO_BF16 = False  # "auto" stays float32: bf16 inference measured slower on an AVX512-BF16 CPU (module doc)
BF16_MIN_MASK_IOU = 0.99  # outputs_agree: bf16 against float32 on the first batch
BF16_MAX_DEPTH_REL = 0.02
MAX_ASPECT = 4.0  # a longer image is squashed to this aspect ratio (panoramas), and says so
MAX_SHORT_SIDE = 1024  # largest working size (short side) a user may ask for


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d in an nn.Sequential (the
    ConvBNReLU unit of every maskdepth network) into that convolution, in place; the BatchNorm
    becomes an Identity. Inference only: the model must stay in eval mode."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in list(model.modules()):
        if not isinstance(module, torch.nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            # a plain BatchNorm2d only: subclasses (timm's BatchNormAct2d) also apply an activation
            if (isinstance(conv, torch.nn.Conv2d) and type(bn) is torch.nn.BatchNorm2d
                    and bn.track_running_stats and bn.running_mean is not None):
                module[i] = fuse_conv_bn_eval(conv.eval(), bn.eval())
                module[i + 1] = torch.nn.Identity()
    return model


def outputs_agree(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> tuple[bool, dict]:
    """Whether `other` (e.g. bf16) outputs match `reference` (float32) closely enough: mask IoU
    (logits > 0) above BF16_MIN_MASK_IOU and mean depth relative error below BF16_MAX_DEPTH_REL;
    with the measured values."""
    found: dict[str, float] = {}
    if "mask" in reference:
        a, b = reference["mask"] > 0, other["mask"] > 0
        union = int((a | b).sum())
        found["mask_iou"] = 1.0 if union == 0 else int((a & b).sum()) / union
    if "depth" in reference:
        ref = reference["depth"].float()
        found["depth_rel"] = float(((other["depth"].float() - ref).abs() / ref.clamp_min(1e-6)).mean())
    ok = found.get("mask_iou", 1.0) > BF16_MIN_MASK_IOU and found.get("depth_rel", 0.0) < BF16_MAX_DEPTH_REL
    return ok, found


def network_size(outputs: list[dict[str, torch.Tensor]], index: int) -> tuple[int, int]:
    """(h, w) at which the network saw image `index` of a `Predictor.run`: its outputs' size."""
    first = next(iter(outputs[index].values()))
    return tuple(first.shape[-2:])


def resize_image(image: torch.Tensor, size) -> torch.Tensor:
    """[B,C,H,W] float -> [B,C,*size]: bilinear with antialiasing, as the dataset resizes."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def check_upsample(method: str) -> str:
    if method not in UPSAMPLE_METHODS:
        raise MaskdepthError(f"upsample={method!r}: choose one of {', '.join(UPSAMPLE_METHODS)}")
    return method


def _guide_tensor(guide, size, device) -> torch.Tensor:
    """float32 RGB [H,W,3] in [0,1] (or uint8) at `size` -> [1,3,H,W] on the device."""
    array = np.asarray(guide)
    if array.shape[:2] != tuple(size) or array.ndim != 3 or array.shape[2] != 3:
        raise MaskdepthError(f"the guide image is {array.shape}, expected {tuple(size)} x 3")
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].to(device)
    return tensor.float().div_(255.0) if array.dtype == np.uint8 else tensor.float()


def as_pixels(image) -> np.ndarray:
    """Path, PIL image, array [H,W(,C)] or tensor [C,H,W] -> float32 RGB [H,W,3] in [0,1]."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return to_rgb_array(upright(image))
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.ndim == 3 and tensor.shape[0] in (1, 3, 4):
            tensor = tensor.permute(1, 2, 0)
        return to_rgb_array(tensor.numpy())
    return to_rgb_array(image)


def _is_single_image(images) -> bool:
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return True
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return images.ndim <= 3
    return False


class Predictor:
    """A checkpoint loaded once (from the file alone) and ready for batches of any-size images."""

    def __init__(self, checkpoint, *, device: str = "auto", threshold: float = MASK_THRESHOLD,
                 upsample: str = DEFAULT_UPSAMPLE, precision: str = "auto", size: int | None = None):
        if not 0.0 < threshold < 1.0:
            raise MaskdepthError(f"threshold must be in (0, 1), got {threshold}")
        if precision not in PRECISIONS:
            raise MaskdepthError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
        self.upsample = check_upsample(upsample)
        checkpoint = resolve_checkpoint(checkpoint)
        self.checkpoint = str(checkpoint)
        self.device = resolve_device(device).device
        model, info = load_model(checkpoint, map_location="cpu")
        # The fastest equivalent network for inference (module doc): BN folded, channels_last.
        self.model = fold_batchnorm(model.eval()).to(self.device, memory_format=torch.channels_last)
        self._bf16 = self._bf16_state(precision)
        self.bf16_check: dict = {}  # what the first batch measured, bf16 against float32
        self.info = info
        self.threshold = threshold
        self.in_channels = int(info["in_channels"])
        self.tasks = tuple(getattr(model, "tasks", ()))
        self.input_size = input_size(info, checkpoint)
        self.size_multiple = int(getattr(model, "size_multiple", 1))
        self.short_side = self._check_size(min(self.input_size) if size is None else size)
        self._background: torch.Tensor | None = None

    def _check_size(self, size) -> int:
        if isinstance(size, bool) or not isinstance(size, int) or not self.size_multiple <= size <= MAX_SHORT_SIDE:
            raise MaskdepthError(f"--size {size!r}: the working size (short side) must be a whole number of pixels "
                                 f"in {self.size_multiple}..{MAX_SHORT_SIDE}")
        return size

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the network sees for an image of `height` x `width`: the short side at `short_side`,
        the aspect ratio kept up to MAX_ASPECT, both rounded to the model's size multiple."""
        m = self.size_multiple
        short = max(m, round(self.short_side / m) * m)
        ratio = min(max(height, width) / max(1, min(height, width)), MAX_ASPECT)
        long = max(short, round(short * ratio / m) * m)
        return (short, long) if height <= width else (long, short)

    def _bf16_state(self, precision: str) -> str:
        """"off", or "pending" (bf16 once the first batch has shown it close to float32)."""
        from maskdepth.core.device import cpu_has_fast_bf16

        wanted = precision == "bf16" or (precision == "auto" and AUTO_BF16)
        native = self.device.type == "cuda" or (self.device.type == "cpu" and cpu_has_fast_bf16())
        return "pending" if wanted and native else "off"

    @property
    def precision(self) -> str:
        """What the network runs in: "float32", "bf16", or "bf16 (pending)" before the first batch."""
        return {"off": "float32", "on": "bf16", "pending": "bf16 (pending)"}.get(self._bf16, "float32")

    def _forward(self, batch: torch.Tensor, bf16: bool = False) -> dict[str, torch.Tensor]:
        x = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            outputs = self.model(x)
        return {k: v.float() for k, v in outputs.items()}

    @property
    def needs_background(self) -> bool:
        return self.in_channels == 6

    def set_background(self, background) -> None:
        """The background (path, PIL image or array) that 6-channel checkpoints see with every image."""
        if not self.needs_background:
            raise MaskdepthError(
                f"checkpoint {self.checkpoint} takes the image alone (input_mode fg_bg, 3 channels): "
                "drop the background (--bg)"
            )
        self._background = self.prepare(as_pixels(background))

    def prepare(self, pixels: np.ndarray) -> torch.Tensor:
        """float32 RGB [H,W,3] -> the tensor [3, h, w] the network sees (`working_size`), on the device."""
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].to(self.device)
        return resize_image(tensor, self.working_size(*pixels.shape[:2]))[0]

    @property
    def upsample_record(self) -> dict:
        """How outputs are brought to the image's size, as listed in predictions.json."""
        if self.upsample == "guided":
            return {"method": "guided", "radius": GUIDED_RADIUS, "guide": "rgb", "of": ["mask logits", "log depth"],
                    "eps": {"mask": GUIDED_EPS_MASK, "depth": GUIDED_EPS_DEPTH}}
        return {"method": "bilinear", "of": ["mask logits", "depth"]}

    @torch.inference_mode()
    def run(self, prepared: list[torch.Tensor], backgrounds: list[torch.Tensor] | None = None
            ) -> list[dict[str, torch.Tensor]]:
        """Network outputs at the working size, one dict of [1,1,h,w] tensors per `prepare`d image
        (images of one shape run as one batch); `backgrounds` (6-channel checkpoints): one
        `prepare`d background per image, else the one set by `set_background`."""
        if self.needs_background:
            if backgrounds is not None and len(backgrounds) != len(prepared):
                raise MaskdepthError(f"{len(backgrounds)} backgrounds for {len(prepared)} images")
            if backgrounds is None and self._background is None:
                raise MaskdepthError(
                    f"checkpoint {self.checkpoint} needs the background image too (input_mode bg_fg_bg, "
                    "6 channels): pass bg=... (command line: --bg FILE, --bg-dir DIR or NAME_bg.* files)"
                )
        groups: dict[tuple, list[int]] = {}
        for i, image in enumerate(prepared):
            groups.setdefault(tuple(image.shape), []).append(i)
        results: list[dict[str, torch.Tensor]] = [{} for _ in prepared]
        for shape, indices in groups.items():
            batch = torch.stack([prepared[i] for i in indices])
            if self.needs_background:
                bg = [backgrounds[i] if backgrounds is not None else self._background for i in indices]
                bg = torch.stack([resize_image(b[None], shape[-2:])[0] for b in bg])
                batch = model_input({"image": batch, "bg": bg}, self.in_channels)
            outputs = self._batch_outputs(batch)
            for row, i in enumerate(indices):
                results[i] = {key: value[row : row + 1] for key, value in outputs.items()}
        return results

    def _batch_outputs(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self._forward(batch, bf16=self._bf16 == "on")
        if self._bf16 == "pending":  # first batch: bf16 only if it agrees with float32 here
            ok, self.bf16_check = outputs_agree(outputs, self._forward(batch, bf16=True))
            self._bf16 = "on" if ok else "off"
        for key, value in outputs.items():
            if not bool(torch.isfinite(value).all()):
                raise MaskdepthError(
                    f"checkpoint {self.checkpoint}: the network outputs NaN or infinite {key} values, so its "
                    "predictions cannot be trusted (a diverged training run?); use another checkpoint"
                )
        return outputs

    def predict(self, images, *, bg=None, batch_size: int = 32, show_progress: bool = True
                ) -> list[dict[str, np.ndarray]]:
        """Mask and depth of one image or a list (paths, PIL images, arrays, tensors; see the
        module-level `predict`) with this loaded network, one dict per image; call it as often
        as you like, the checkpoint is read once."""
        if batch_size < 1:
            raise MaskdepthError(f"batch_size must be at least 1, got {batch_size}")
        items = [images] if _is_single_image(images) else list(images)
        per_image_bg = bg is not None and not _is_single_image(bg)
        if per_image_bg:
            bg = list(bg)
            if len(bg) != len(items):
                raise MaskdepthError(f"bg: {len(bg)} backgrounds for {len(items)} images (give one, or one per image)")
            if not self.needs_background:
                self.set_background(bg[0])  # refused, with the message saying why
        elif bg is not None:
            self.set_background(bg)
        results: list[dict[str, np.ndarray]] = []
        disable = None if show_progress else True  # None: the progress module decides (MASKDEPTH_NO_PROGRESS)
        with progress(total=len(items), desc="predict", unit="img", disable=disable) as bar:
            for start in range(0, len(items), batch_size):
                pixels = [as_pixels(item) for item in items[start : start + batch_size]]
                backgrounds = ([self.prepare(as_pixels(b)) for b in bg[start : start + batch_size]]
                               if per_image_bg else None)
                outputs = self.run([self.prepare(p) for p in pixels], backgrounds)
                results.extend(self.at_size(outputs, i, p.shape[:2], guide=p) for i, p in enumerate(pixels))
                bar.update(len(pixels))
        return results

    @torch.inference_mode()
    def at_size(self, outputs: list[dict[str, torch.Tensor]], index: int, size, guide=None
                ) -> dict[str, np.ndarray]:
        """Image `index`'s outputs (of `run`) brought to `size` (H, W): mask (bool), mask_prob, depth (metres).

        `guide`: the image at `size` (float32 RGB [H,W,3] in [0,1], or uint8), which guided
        upsampling follows; without it, or when `size` is no larger than the working size, or
        with upsample "bilinear", the upsampling is bilinear."""
        size = tuple(int(v) for v in size)
        work = network_size(outputs, index)
        outputs = outputs[index]
        guided = self.upsample == "guided" and guide is not None and (size[0] > work[0] or size[1] > work[1])
        logits = outputs.get("mask")
        depth = outputs.get("depth")
        if guided:
            # one guided filter for both (the guide's statistics are computed once)
            parts = [(v, eps) for v, eps in ((logits, GUIDED_EPS_MASK),
                                             (None if depth is None else torch.log(depth), GUIDED_EPS_DEPTH))
                     if v is not None]
            filtered = guided_upsample(torch.cat([v for v, _ in parts], dim=1),
                                       _guide_tensor(guide, size, parts[0][0].device),
                                       radius=GUIDED_RADIUS, eps=[eps for _, eps in parts])
            if logits is not None:
                logits, filtered = filtered[:, :1], filtered[:, 1:]
            if depth is not None:
                depth = torch.exp(filtered).clamp_(DEPTH_MIN, DEPTH_MAX)
        else:
            logits = None if logits is None else bilinear(logits, size)
            depth = None if depth is None else bilinear(depth, size)
        result = {}
        if logits is not None:
            prob = torch.sigmoid(logits)[0, 0]
            result["mask"] = (prob > self.threshold).cpu().numpy()
            result["mask_prob"] = prob.cpu().numpy().astype(np.float32)
        if depth is not None:
            result["depth"] = depth[0, 0].cpu().numpy().astype(np.float32)
        return result


def predict(
    images,
    checkpoint,
    *,
    bg=None,
    batch_size: int = 32,
    device: str = "auto",
    threshold: float = MASK_THRESHOLD,
    upsample: str = DEFAULT_UPSAMPLE,
    show_progress: bool = True,
    precision: str = "auto",
    size: int | None = None,
) -> list[dict[str, np.ndarray]]:
    """Mask and depth of each image, at the image's resolution.

    `images`: one or a list of file paths, PIL images, arrays [H,W], [H,W,3|4] (uint8,
    uint16 or float in [0,1]) or tensors [3,H,W] in [0,1]. `checkpoint`: a checkpoint file
    (nothing else is needed) or a run folder (its best checkpoint). `bg`: for 6-channel
    checkpoints only, the background of every image, or a list with one per image.
    `upsample`: "guided" (default: the outputs follow the image's edges) or "bilinear"
    (see the module docstring). `precision`: "auto" (float32), "float32" or "bf16" (where
    native, once verified against float32 on the first batch; see the module docstring).
    `size`: the working size (short side; default the checkpoint's training size).

    Returns one dict per image, with the keys its checkpoint predicts: "mask" (bool [H,W]),
    "mask_prob" (float32 [H,W] in [0,1]) and "depth" (float32 [H,W], metres).
    A bad file raises `BadInputError` naming it.
    """
    predictor = Predictor(checkpoint, device=device, threshold=threshold, upsample=upsample, precision=precision,
                          size=size)
    return predictor.predict(images, bg=bg, batch_size=batch_size, show_progress=show_progress)


# --------------------------------------------------------------------------- files


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


def preview_size(size) -> tuple[int, int]:
    """The image's size shrunk (aspect kept) so that its longer side is at most PREVIEW_MAX_SIDE."""
    height, width = size
    scale = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


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
                  extra_files=(PREDICTIONS_FILE,), planned_for=files)
    with folder_lock(out_dir, "predict"):
        return _predict_locked(files, predictor, out_dir, preview, depth_range, batch_size, failed, backgrounds)


def _predict_locked(files, predictor, out_dir: Path, preview: bool, depth_range: str, batch_size: int, failed,
                    backgrounds: dict) -> PredictSummary:
    summary = PredictSummary(failed=list(failed or []))
    # First an "in progress" predictions.json with this call's settings: an interrupted call
    # (e.g. --overwrite at another threshold) never leaves an earlier call's record beside its sets.
    record = Path(out_dir) / PREDICTIONS_FILE
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
                          size=size)
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

    path = Path(out_dir) / PREDICTIONS_FILE
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


def preview_image(image: np.ndarray, result: dict[str, np.ndarray], depth_range=None) -> np.ndarray:
    """uint8 [H, W*k (+ bar), 3]: the input, then the mask overlaid in red, then the coloured depth
    (near = bright, log scale over `depth_range` (vmin, vmax) in metres, default the fixed
    [DEPTH_MIN, DEPTH_MAX]) followed by its colour bar in metres (`depthviz.colorbar_strip`)."""
    from maskdepth.figures.depthviz import colorbar_strip, depth_to_uint8

    panels = [image]
    if "mask" in result:
        tint = result["mask"][:, :, None] * OVERLAY_ALPHA
        panels.append(np.rint(image * (1.0 - tint) + OVERLAY_COLOR * tint).astype(np.uint8))
    if "depth" in result:
        vmin, vmax = depth_range or (DEPTH_MIN, DEPTH_MAX)
        panels.append(depth_to_uint8(result["depth"], vmin, vmax))
        panels.append(colorbar_strip(image.shape[0], float(vmin), float(vmax)))
    return np.concatenate(panels, axis=1)

