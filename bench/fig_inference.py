"""Figure 4: inference latency per 64x64 image, batch 1 and a large batch, torch and ONNX Runtime.

Each model (lean_unet, resnet_unet, and the default: `joint` with the 1k stage's model_kwargs)
is untrained (latency does not depend on the weights), saved as a checkpoint and exported
with `maskdepth.prediction.export.export_onnx` (which checks onnxruntime against torch before writing).

torch eager    the checkpoint's network in eval mode under `torch.inference_mode`, contiguous
               float32 (how predict ran it before)
torch predict  what `maskdepth.prediction.predictor.Predictor` runs: BatchNorm folded into the convolutions,
               channels_last, inference_mode, float32 (its default precision), one view (the
               checkpoints carry no recipe, so no test-time augmentation: the network against
               the network; figure 8 times predict with the recipe's)
torch bf16     the same with bf16 autocast (`Predictor(precision="bf16")`), only where the CPU
               has native bf16
onnx           onnxruntime on the CPU provider with as many intra-op threads as torch

All of a batch size's cases run interleaved. The capstone needs *two* resnet_unet forwards per
image (mask and depth). The headline per model: torch predict / onnx at batch 1 (goal <= 2).
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.report import fmt_ms
from bench.settings import Settings
from bench.steps import LEAN, RESNET, default_config, tasks_of
from bench.timing import compare_rates

MODELS = {"lean_unet": LEAN, "resnet_unet": RESNET, "default": ("joint", "joint")}
GOAL = 2.0  # torch predict within 2x of onnxruntime at batch 1


def _checkpoint(model, name: str, task: str, settings: Settings, workdir: Path) -> Path:
    from maskdepth.models.checkpoint import save_checkpoint

    ckpt = workdir / f"{name}.pt"
    info = {"task": task, "tasks": list(tasks_of(task)), "input_mode": "fg_bg",
            "input_size": [settings.size, settings.size]}
    save_checkpoint(ckpt, model, info=info)
    return ckpt


def _onnx_session(ckpt: Path, settings: Settings, workdir: Path):
    """Export the checkpoint; an onnxruntime session on it."""
    import onnxruntime

    from maskdepth.prediction.export import export_onnx

    exported = export_onnx(ckpt, workdir / f"{ckpt.stem}.onnx")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = settings.threads
    # ONNX Runtime's threads spin-wait after every run by default: interleaved with the torch
    # cases on a small machine they would steal the cores torch's next repeat runs on (the
    # torch rates then varied by > 50 % and lost a third). Without spinning each engine has the
    # cores to itself while it runs, as in an application that does other work between images.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
    return session, exported.input_name


def run(settings: Settings, workdir: Path) -> dict:
    from maskdepth.core.device import cpu_has_fast_bf16
    from maskdepth.models import create_model
    from maskdepth.prediction.predictor import Predictor

    torch.set_num_threads(settings.threads)
    calls, big = settings.latency_calls, settings.latency_batch
    x1 = torch.rand(1, 3, settings.size, settings.size)
    xb = torch.rand(big, 3, settings.size, settings.size)
    bf16 = cpu_has_fast_bf16()
    results, table = {}, []
    for name, (model_name, task) in MODELS.items():
        kwargs = {"task": task} if task != "joint" else {}
        if name == "default":
            kwargs = dict(default_config("1k").model_kwargs)
        torch.manual_seed(0)
        model = create_model(model_name, **kwargs).eval()
        ckpt = _checkpoint(model, name, task, settings, workdir)
        predictor = Predictor(ckpt, device="cpu", precision="float32")
        session = input_name = None
        onnx_error = ""
        if name in settings.onnx_models:
            try:
                session, input_name = _onnx_session(ckpt, settings, workdir)
            except Exception as exc:  # record and go on: the torch numbers still count
                onnx_error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            onnx_error = "not measured in --quick"

        def torch_run(x, repeat, forward):
            def chunk() -> int:
                with torch.inference_mode():
                    for _ in range(repeat):
                        forward(x)
                return x.shape[0] * repeat
            return chunk

        def onnx_run(x, repeat, session=session, input_name=input_name):
            feed = {input_name: x.numpy()}

            def chunk() -> int:
                for _ in range(repeat):
                    session.run(None, feed)
                return x.shape[0] * repeat
            return chunk

        entry = {"tasks": list(tasks_of(task)), "onnx": "measured" if session is not None else onnx_error,
                 "bf16": "measured" if bf16 else "not measured: no native bf16 on this CPU"}
        for label, x, repeat in (("batch_1", x1, calls), (f"batch_{big}", xb, 1)):
            cases = {"torch_eager": torch_run(x, repeat, model),
                     "torch_predict": torch_run(x, repeat, predictor._forward)}
            if bf16:
                cases["torch_bf16"] = torch_run(x, repeat, lambda v, p=predictor: p._forward(v, bf16=True))
            if session is not None:
                cases["onnx"] = onnx_run(x, repeat)
            rates = compare_rates(cases, repeats=settings.repeats, warmup=settings.warmup)
            entry[label] = {f"{engine}_ms_per_image": 1000.0 / rate.median for engine, rate in rates.items()}
            entry[label]["rates"] = {engine: rate.to_dict() for engine, rate in rates.items()}
        one = entry["batch_1"]
        if "onnx_ms_per_image" in one:
            entry["torch_predict_over_onnx_batch_1"] = one["torch_predict_ms_per_image"] / one["onnx_ms_per_image"]
            entry["goal_met"] = entry["torch_predict_over_onnx_batch_1"] <= GOAL
        results[name] = entry
        for label in ("batch_1", f"batch_{big}"):
            row = entry[label]

            def ms(key, row=row):
                value = row.get(f"{key}_ms_per_image")
                return fmt_ms(value / 1000) if value else "n/a"

            note = "per image; predict = BN folded, channels_last, float32"
            if label == "batch_1" and "torch_predict_over_onnx_batch_1" in entry:
                note += (f"; predict/onnx {entry['torch_predict_over_onnx_batch_1']:.2f}x "
                         f"(goal <= {GOAL:g}x: {'met' if entry['goal_met'] else 'missed'})")
            if session is None:
                note += f"; onnx: {onnx_error}"
            table.append([
                f"{name}, {label.replace('_', ' ')}",
                f"torch eager {ms('torch_eager')}, predict {ms('torch_predict')}, bf16 {ms('torch_bf16')}, "
                f"onnx {ms('onnx')}",
                note,
            ])
    return {"size": settings.size, "threads": settings.threads, "large_batch": big, "goal": GOAL, "models": results,
            "table": table}
