"""Figure 4: inference latency per 64x64 image, batch 1 and a large batch, torch and ONNX Runtime.

Each model is untrained (latency does not depend on the weights), saved as a checkpoint and
exported with `maskdepth.export.export_onnx` (which checks onnxruntime against torch before
writing). torch runs in eval mode under `torch.inference_mode`; onnxruntime on the CPU
provider with as many intra-op threads as torch. Torch and ONNX run interleaved per batch
size. The seed needs *two* resnet_unet forwards per image (mask and depth).
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.report import fmt_ms
from bench.settings import Settings
from bench.steps import JOINT, LEAN, RESNET, tasks_of
from bench.timing import compare_rates

MODELS = {"lean_unet": LEAN, "resnet_unet": RESNET, "joint": JOINT}


def _onnx_session(model, task: str, settings: Settings, workdir: Path):
    """Export `model` through a checkpoint; an onnxruntime session on it."""
    import onnxruntime

    from maskdepth.checkpoint import save_checkpoint
    from maskdepth.export import export_onnx

    name = model.maskdepth_spec["name"]
    ckpt = workdir / f"{name}.pt"
    info = {"task": task, "tasks": list(tasks_of(task)), "input_mode": "fg_bg",
            "input_size": [settings.size, settings.size]}
    save_checkpoint(ckpt, model, info=info)
    exported = export_onnx(ckpt, workdir / f"{name}.onnx")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = settings.threads
    session = onnxruntime.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
    return session, exported.input_name


def run(settings: Settings, workdir: Path) -> dict:
    from maskdepth.models import create_model

    torch.set_num_threads(settings.threads)
    calls, big = settings.latency_calls, settings.latency_batch
    x1 = torch.rand(1, 3, settings.size, settings.size)
    xb = torch.rand(big, 3, settings.size, settings.size)
    results, table = {}, []
    for name, (model_name, task) in MODELS.items():
        kwargs = {"task": task} if task != "joint" else {}
        model = create_model(model_name, **kwargs).eval()
        session = input_name = None
        onnx_error = ""
        if name in settings.onnx_models:
            try:
                session, input_name = _onnx_session(model, task, settings, workdir)
            except Exception as exc:  # record and go on: the torch numbers still count
                onnx_error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            onnx_error = "not measured in --quick"

        def torch_run(x, repeat, model=model):
            def chunk() -> int:
                with torch.inference_mode():
                    for _ in range(repeat):
                        model(x)
                return x.shape[0] * repeat
            return chunk

        def onnx_run(x, repeat, session=session, input_name=input_name):
            feed = {input_name: x.numpy()}

            def chunk() -> int:
                for _ in range(repeat):
                    session.run(None, feed)
                return x.shape[0] * repeat
            return chunk

        entry = {"tasks": list(tasks_of(task)), "onnx": "measured" if session is not None else onnx_error}
        for label, x, repeat in (("batch_1", x1, calls), (f"batch_{big}", xb, 1)):
            cases = {"torch": torch_run(x, repeat)}
            if session is not None:
                cases["onnx"] = onnx_run(x, repeat)
            rates = compare_rates(cases, repeats=settings.repeats, warmup=settings.warmup)
            entry[label] = {f"{engine}_ms_per_image": 1000.0 / rate.median for engine, rate in rates.items()}
            entry[label]["rates"] = {engine: rate.to_dict() for engine, rate in rates.items()}
        results[name] = entry
        for label in ("batch_1", f"batch_{big}"):
            row = entry[label]
            onnx_ms = row.get("onnx_ms_per_image")
            table.append([
                f"{name}, {label.replace('_', ' ')}",
                f"torch {fmt_ms(row['torch_ms_per_image'] / 1000)}, "
                f"onnx {fmt_ms(onnx_ms / 1000) if onnx_ms else 'n/a'}",
                "per image" + ("" if session is not None else f"; onnx: {onnx_error}"),
            ])
    return {"size": settings.size, "threads": settings.threads, "large_batch": big, "models": results,
            "table": table}
