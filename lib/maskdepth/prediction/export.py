"""Export a checkpoint to ONNX, verified against torch with onnxruntime before it is written.

The graph takes the checkpoint's input (3 or 6 channels at its input_size, batch dynamic) and
gives one output per task (`mask_logits`, `depth` in metres); its metadata repeat the checkpoint's
task, input_mode and input_size, so the .onnx file is usable on its own. It is run by onnxruntime
on random inputs at several batch sizes and written (atomically) only if it agrees with torch
within `atol`. Inputs and outputs: docs/predict.md, "ONNX export"."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from maskdepth.core.errors import MaskdepthError

INPUT_NAME = "image"
OUTPUT_NAMES = {"mask": "mask_logits", "depth": "depth"}
VERIFY_BATCH_SIZES = (1, 3)
MIN_OPSET = 18  # the oldest opset torch's dynamo exporter writes
EXAMPLE_BATCH = 2  # export traces with batch 2: batch 1 would get specialised as a constant


@dataclass(frozen=True)
class ExportResult:
    path: Path
    opset: int
    input_name: str
    input_shape: list  # ["batch", C, H, W]
    output_names: list[str]
    max_abs_diff: float  # over all outputs and batch sizes
    diffs: dict[str, float]  # per output name
    batch_sizes: tuple[int, ...]


class _TupleOutputs(nn.Module):
    """The model with its dict outputs as a tuple in a fixed order (ONNX outputs are positional)."""

    def __init__(self, model: nn.Module, tasks: list[str]):
        super().__init__()
        self.model = model
        self.tasks = tasks

    def forward(self, image: torch.Tensor):
        outputs = self.model(image)
        return tuple(outputs[task] for task in self.tasks)


def _require_onnx():
    try:
        import onnx  # noqa: F401  (torch's ONNX exporter needs all three)
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise MaskdepthError(
            f"ONNX export needs the optional packages onnx, onnxruntime and onnxscript ({exc.name} is "
            "missing): pip install 'maskdepth[onnx]'"
        ) from exc
    return onnxruntime


def export_onnx(
    checkpoint,
    onnx_path,
    *,
    opset: int | None = None,
    atol: float = 1e-4,
    batch_sizes=VERIFY_BATCH_SIZES,
    seed: int = 0,
    overwrite: bool = True,
) -> ExportResult:
    """Write `checkpoint`'s model as ONNX to `onnx_path` after checking onnxruntime matches torch.

    Raises `MaskdepthError` when the export fails or differs from torch by more than `atol`
    (then nothing is written), and before any work when `onnx_path` is the checkpoint, a
    folder, or (unless `overwrite`) an existing file.
    """
    import math

    onnxruntime = _require_onnx()
    from maskdepth.core.fileio import check_output, write_bytes
    from maskdepth.core.runs import resolve_checkpoint
    from maskdepth.models.checkpoint import load_model

    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not (math.isfinite(atol) and atol > 0):
        raise MaskdepthError(f"--atol {atol!r}: must be a positive finite number (e.g. 1e-4); NaN would turn "
                             "the check off")
    if opset is not None:
        import onnx

        newest = onnx.defs.onnx_opset_version()
        if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
            raise MaskdepthError(f"--opset {opset!r}: choose {MIN_OPSET}..{newest} (or leave it out for the "
                                 "exporter's default)")
    checkpoint = resolve_checkpoint(checkpoint)
    check_output(onnx_path, reads=[checkpoint], overwrite=overwrite)
    model, info = load_model(checkpoint, map_location="cpu")
    tasks = [t for t in ("mask", "depth") if t in getattr(model, "tasks", ())]
    if not tasks:
        raise MaskdepthError(f"checkpoint {checkpoint}: the model declares no outputs (model.tasks)")
    size = info.get("input_size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        raise MaskdepthError(f"checkpoint {checkpoint}: info['input_size'] [H, W] is missing or invalid")
    shape = [int(info["in_channels"]), int(size[0]), int(size[1])]
    wrapper = _TupleOutputs(model, tasks).eval()
    output_names = [OUTPUT_NAMES[t] for t in tasks]

    generator = torch.Generator().manual_seed(seed)
    example = torch.rand(EXAMPLE_BATCH, *shape, generator=generator)
    try:
        program = torch.onnx.export(
            wrapper,
            (example,),
            input_names=[INPUT_NAME],
            output_names=output_names,
            opset_version=opset,
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    except Exception as exc:  # the exporter raises many types; the user needs the cause, named
        raise MaskdepthError(
            f"checkpoint {checkpoint}: ONNX export failed ({type(exc).__name__}: {exc})"
        ) from exc
    proto = program.model_proto
    metadata = {
        "maskdepth.task": str(info.get("task", "+".join(tasks))),
        "maskdepth.input_mode": str(info.get("input_mode", "fg_bg" if shape[0] == 3 else "bg_fg_bg")),
        "maskdepth.input_size": json.dumps([shape[1], shape[2]]),
        "maskdepth.model_spec": json.dumps(info.get("model_spec", {})),
        "maskdepth.units": "image in [0,1]; mask_logits: sigmoid > 0.5 is foreground; depth in metres",
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    diffs = {name: 0.0 for name in output_names}
    for batch in batch_sizes:
        x = torch.rand(batch, *shape, generator=generator)
        with torch.inference_mode():
            expected = wrapper(x)
        got = session.run(output_names, {INPUT_NAME: x.numpy()})
        for name, want, have in zip(output_names, expected, got, strict=True):
            if tuple(have.shape) != tuple(want.shape):
                raise MaskdepthError(
                    f"ONNX export of {checkpoint}: output {name} has shape {have.shape} for batch {batch}, "
                    f"torch gives {tuple(want.shape)}"
                )
            diff = float((torch.from_numpy(have) - want).abs().max())
            diffs[name] = max(diffs[name], diff if diff == diff else float("inf"))  # NaN counts as a failure
    max_diff = max(diffs.values())
    if max_diff > atol:
        worst = max(diffs, key=diffs.get)
        raise MaskdepthError(
            f"ONNX export of {checkpoint}: onnxruntime differs from torch by {max_diff:.3g} on {worst} "
            f"(more than the {atol:g} allowed); {onnx_path} not written"
        )
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset or 0)
    if opset is not None and opset_used != opset:
        raise MaskdepthError(f"--opset {opset}: the exporter wrote opset {opset_used} instead; {onnx_path} not "
                             "written (choose another opset, or leave it out)")
    onnx_path = Path(onnx_path)
    write_bytes(onnx_path, data)
    return ExportResult(
        path=onnx_path,
        opset=int(opset_used),
        input_name=INPUT_NAME,
        input_shape=["batch", *shape],
        output_names=output_names,
        max_abs_diff=max_diff,
        diffs=diffs,
        batch_sizes=tuple(batch_sizes),
    )
