"""Depth teachers: a model file the user supplies labels real photos with depth.

maskdepth downloads no model. A teacher is a TorchScript or ONNX file taking RGB in [0, 1] (any
normalisation it needs belongs inside the exported file) and giving depth or inverse depth, scaled
to metres; relative teachers (MiDaS) give depth up to scale, which dataset.json records. Depth is
clamped to [DEPTH_MIN, DEPTH_MAX]; a non-finite or non-positive depth is an error naming the teacher.
The input and output contract: docs/data.md, "Depth teachers"."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.core.errors import BadInputError, MaskdepthError

OUTPUTS = ("depth", "inverse")
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")
HOW_TO = (
    "pass --teacher FILE: a depth model you export yourself, TorchScript (.pt, torch.jit.save of a "
    "scripted/traced model) or ONNX (.onnx), taking float [B,3,H,W] RGB in [0,1] and returning depth "
    "(or inverse depth with --teacher-output inverse) [B,1,H,W]; e.g. MiDaS or DenseDepth wrapped with their "
    "normalisation (see maskdepth/datasets/teacher.py)"
)


class Teacher:
    """Runs a depth model on batches of images; returns metres."""

    def __init__(self, path, output: str = "depth", scale: float = 1.0, input_size: int | None = None,
                 device: str = "auto"):
        from maskdepth.core.device import resolve_device

        if path is None or str(path) == "":
            raise MaskdepthError(f"no depth teacher given: {HOW_TO}")
        self.path = Path(path)
        if not self.path.is_file():
            raise BadInputError(self.path, f"no such teacher file; {HOW_TO}")
        if output not in OUTPUTS:
            raise MaskdepthError(f"--teacher-output {output!r}: choose depth or inverse")
        if not (scale > 0 and np.isfinite(scale)):
            raise MaskdepthError(f"--teacher-scale {scale!r}: must be a positive number")
        self.output, self.scale, self.input_size = output, float(scale), input_size
        self.device = resolve_device(device).device
        suffix = self.path.suffix.lower()
        if suffix == ".onnx":
            self.kind = "onnx"
            self._run = self._load_onnx()
        elif suffix in TORCHSCRIPT_SUFFIXES:
            self.kind = "torchscript"
            self._run = self._load_torchscript()
        else:
            raise BadInputError(self.path, f"unknown teacher format {suffix or '(no suffix)'}: use a TorchScript "
                                           f"({', '.join(TORCHSCRIPT_SUFFIXES)}) or ONNX (.onnx) file")

    def describe(self) -> dict:
        return {"file": str(self.path.resolve()), "format": self.kind, "output": self.output, "scale": self.scale,
                "input_size": self.input_size}

    def _load_torchscript(self):
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated upstream but is what users export
                warnings.simplefilter("ignore", FutureWarning)
                model = torch.jit.load(str(self.path), map_location=self.device).eval()
        except Exception as exc:  # torch raises RuntimeError/ValueError/… for files that are not TorchScript
            raise BadInputError(self.path, f"not a loadable TorchScript model ({type(exc).__name__}: "
                                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc

        def run(batch: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return _first_tensor(model(batch.to(self.device)), self.path).float().cpu()

        return run

    def _load_onnx(self):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MaskdepthError("ONNX teachers need onnxruntime: pip install onnxruntime "
                                 "(or onnxruntime-gpu), or export the teacher as TorchScript") from exc
        wanted = ["CUDAExecutionProvider"] if self.device.type == "cuda" else []
        providers = [p for p in wanted if p in ort.get_available_providers()] + ["CPUExecutionProvider"]
        try:
            session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for invalid models
            raise BadInputError(self.path, f"not a loadable ONNX model ({type(exc).__name__}: "
                                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        name = session.get_inputs()[0].name

        def run(batch: torch.Tensor) -> torch.Tensor:
            outputs = session.run(None, {name: batch.numpy().astype(np.float32)})
            return torch.from_numpy(np.asarray(outputs[0], dtype=np.float32))

        return run

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """float32 [B, 3, H, W] in [0, 1] -> depth in metres float32 [B, H, W], clamped to the range."""
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        b, _, h, w = x.shape
        if self.input_size and (h, w) != (self.input_size, self.input_size):
            x = torch.nn.functional.interpolate(x, size=(self.input_size,) * 2, mode="bilinear",
                                                align_corners=False, antialias=True)
        try:
            raw = self._run(x)
        except BadInputError:
            raise
        except Exception as exc:  # a model failing on our input: say which file and what it got
            raise BadInputError(self.path, f"failed on input float32 {list(x.shape)} ({type(exc).__name__}: "
                                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        if raw.dim() == 3:
            raw = raw[:, None]
        if raw.dim() != 4 or raw.shape[0] != b or raw.shape[1] != 1:
            raise BadInputError(self.path, f"output of shape {list(raw.shape)} for a batch of {b}: expected "
                                           f"[{b}, 1, h, w] or [{b}, h, w]")
        if raw.shape[-2:] != (h, w):
            raw = torch.nn.functional.interpolate(raw, size=(h, w), mode="bilinear", align_corners=False)
        if not torch.isfinite(raw).all():
            raise BadInputError(self.path, "output holds NaN or infinite values")
        if self.output == "depth":
            if not bool((raw > 0).all()):
                share = float((raw <= 0).float().mean())
                raise BadInputError(self.path, f"outputs zero or negative depth ({share:.0%} of the pixels of a "
                                               "batch): a depth teacher must give positive distances; if it "
                                               "returns inverse depth (MiDaS), pass --teacher-output inverse")
            metres = raw * self.scale
        else:
            metres = self.scale / raw.clamp_min(1e-12)
        return metres.clamp(DEPTH_MIN, DEPTH_MAX)[:, 0].numpy()


def _first_tensor(out, path) -> torch.Tensor:
    if isinstance(out, dict):
        out = out.get("depth", next(iter(out.values())) if len(out) == 1 else None)
    elif isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not torch.is_tensor(out):
        raise BadInputError(path, f"teacher returned {type(out).__name__}, expected a depth tensor")
    return out
