"""`Predictor`: a checkpoint loaded once, any image predicted at its own aspect ratio and brought back
to the image's resolution (guided filter or bilinear); `predict` for one call. The manual (working
size, upsampling, precision, backgrounds of 6-channel checkpoints) is docs/predict.md."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.core.device import resolve_device
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.imageio import load_image, to_rgb_array, upright
from maskdepth.core.progress import progress
from maskdepth.core.runs import resolve_checkpoint
from maskdepth.datasets.dataset import model_input
from maskdepth.models.checkpoint import input_size, load_model
from maskdepth.prediction.speed import AUTO_BF16, PRECISIONS, inference_network, outputs_agree
from maskdepth.prediction.upsample import (
    GUIDED_EPS_DEPTH,
    GUIDED_EPS_MASK,
    GUIDED_RADIUS,
    UPSAMPLE_METHODS,
    bilinear,
    guided_upsample,
)

MASK_THRESHOLD = 0.5
DEFAULT_UPSAMPLE = "guided"  # measured better than bilinear at object edges (see the module docstring)
MAX_ASPECT = 4.0  # a longer image is squashed to this aspect ratio (panoramas), and says so
MAX_SHORT_SIDE = 1024  # largest working size (short side) a user may ask for


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
                 upsample: str = DEFAULT_UPSAMPLE, precision: str = "auto", size: int | None = None,
                 tta: str | None = None):
        if not 0.0 < threshold < 1.0:
            raise MaskdepthError(f"threshold must be in (0, 1), got {threshold}")
        if precision not in PRECISIONS:
            raise MaskdepthError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
        self.upsample = check_upsample(upsample)
        checkpoint = resolve_checkpoint(checkpoint)
        self.checkpoint = str(checkpoint)
        self.device = resolve_device(device).device
        model, info = load_model(checkpoint, map_location="cpu")
        # The fastest equivalent network for inference (module doc), read as its recipe says.
        self.model, self.tta = inference_network(model, info.get("config"), self.device, tta)
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
    tta: str | None = None,
) -> list[dict[str, np.ndarray]]:
    """Mask and depth of each image, at the image's resolution.

    `images`: one or a list of file paths, PIL images, arrays [H,W], [H,W,3|4] (uint8,
    uint16 or float in [0,1]) or tensors [3,H,W] in [0,1]. `checkpoint`: a checkpoint file
    (nothing else is needed) or a run folder (its best checkpoint). `bg`: for 6-channel
    checkpoints only, the background of every image, or a list with one per image.
    `upsample`: "guided" (default: the outputs follow the image's edges) or "bilinear"
    (see the module docstring). `precision`: "auto" (float32), "float32" or "bf16" (where
    native, once verified against float32 on the first batch; see the module docstring).
    `size`: the working size (short side; default the checkpoint's training size). `tta`: the
    test-time augmentation, none | flip | flip_scale (`maskdepth.models.tta`; default: the
    checkpoint's recipe).

    Returns one dict per image, with the keys its checkpoint predicts: "mask" (bool [H,W]),
    "mask_prob" (float32 [H,W] in [0,1]) and "depth" (float32 [H,W], metres).
    A bad file raises `BadInputError` naming it.
    """
    predictor = Predictor(checkpoint, device=device, threshold=threshold, upsample=upsample, precision=precision,
                          size=size, tta=tta)
    return predictor.predict(images, bg=bg, batch_size=batch_size, show_progress=show_progress)


# --------------------------------------------------------------------------- files
