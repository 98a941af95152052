"""Figure 8: predicting photos end to end, files in -> files out, as `maskdepth predict` does.

What a user waits for when predicting is not the network on a tensor (figure 4) but
`maskdepth.prediction.files.predict_paths`: read and decode each JPEG, resize it to the working size
(aspect ratio kept: `Predictor.working_size`), run the network, bring mask and depth back to
the photo's own resolution with the guided filter, encode and write the four files per image
(NAME_mask.png, NAME_depth.png, NAME_depth_color.png, NAME_preview.png) and predictions.json.

Checkpoint: the default recipe's model (`maskdepth run --stage 1k`: `joint` with
the registry's default `joint`, the stage's working size) with random weights (`weights="none"`: timing
does not need trained weights; the PNGs of an untrained net may compress differently from a
trained one's), saved with `save_checkpoint` as training saves it, its recipe with it: predict
reads it with the recipe's test-time augmentation (`maskdepth.models.tta`), as for a trained run.

Photos: synthetic JPEGs (quality 90: smooth colour fields, a disc, sensor-like noise) at about
0.3, 2 and 12 megapixels (640x480, 1632x1224, 4000x3000), a few per size, and a folder of
`predict_folder` images at 0.3 Mpx (batches of 32, as `maskdepth predict DIR` runs).

Each case runs in its own Python process (`python -m bench.fig_predict`), so that its memory
is its own: after imports and one untimed warm-up prediction (a small image), `predict_paths`
runs `predict_repeats` times over the case's folder (a new output folder each time; the
checkpoint is loaded by every call, as by the command). Reported per case:

images/s      images / wall time of the `predict_paths` calls (checkpoint load included)
ms per image  the wall time split by wrapping the library's own steps (self time, nested
              calls subtracted): decode = `load_image` (read + decode; guided upsampling reads
              the photo again) + `_load`'s own work (the preview thumbnail) + `Predictor.prepare`
              (resize to the working size); model = `Predictor.run`; upsample =
              `Predictor.at_size` (guided filter, sigmoid, threshold, for the outputs and the
              preview); encode+write = `_write_outputs`'s own time (PNG encoding, colour maps,
              preview panel, writing) + predictions.json; checkpoint = `Predictor.__init__`;
              other = the rest (listing inputs, checking output names, the folder lock)
memory        peak resident set size (VmHWM; ru_maxrss where /proc is missing) of the timed
              calls, the high-water mark being reset after the warm-up (/proc/self/clear_refs),
              and its rise above the process's resident size before them (torch, the model);
              and the most that any one upsampling call (`at_size`, the guided filter) added
              to the resident size it started at, which must stay under `GUIDED_MEMORY_LIMIT`
              (~2 GB) at 12 Mpx
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.report import fmt_rate
from bench.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "BENCH_PREDICT_RESULT "
GUIDED_MEMORY_LIMIT = 2 * 2**30  # bytes the guided filter may add at 12 Mpx (issue 27)
PARTS = ("decode", "model", "upsample", "encode_write", "checkpoint", "other")
OUTPUTS_PER_IMAGE = 4
JPEG_QUALITY = 90


# --- the photos and the checkpoint (in the figure's process) -----------------------------------


def write_photos(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """`count` synthetic JPEG photos of `size` (height, width) in `folder`: smooth colour fields
    (a random 12x16 image upsampled bicubically), a bright disc, Gaussian noise (sigma 4/255)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    height, width = size
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        field = np.asarray(small.resize((width, height), Image.BICUBIC), dtype=np.float32)
        yy, xx = np.ogrid[:height, :width]
        cy, cx, r = height * rng.uniform(0.3, 0.7), width * rng.uniform(0.3, 0.7), min(size) * rng.uniform(0.15, 0.3)
        field[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
        field += rng.normal(0.0, 4.0, field.shape).astype(np.float32)
        path = folder / f"photo_{i:04d}.jpg"
        Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).save(path, quality=JPEG_QUALITY)
        paths.append(path)
    return paths


def write_checkpoint(path: Path, stage: str = "1k", size: int | None = None) -> dict:
    """The stage's default model (`bench.steps.default_config`) with random weights, saved as the
    trainer saves it; what it is."""
    import torch

    from bench.steps import default_config
    from maskdepth.models.checkpoint import save_checkpoint
    from maskdepth.training.builders import build_model

    cfg = default_config(stage, weights="none", **({"size": size} if size else {}))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model, info={"task": cfg.task, "tasks": list(cfg.tasks), "input_mode": cfg.input_mode,
                                       "input_size": [cfg.size, cfg.size], "data": stage}, config=cfg.to_dict())
    return {"path": str(path), "model": cfg.model, "model_kwargs": dict(cfg.model_kwargs), "task": cfg.task,
            "tta": cfg.tta,
            "input_size": [cfg.size, cfg.size], "weights": "random (untrained)",
            "parameters": sum(p.numel() for p in model.parameters())}


def run_case(request: dict, threads: int) -> dict:
    """One case in a fresh Python process (`main` below); its result dict."""
    env = dict(os.environ)
    import maskdepth

    lib = str(Path(maskdepth.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), lib] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("MASKDEPTH_NO_PROGRESS", "1")
    proc = subprocess.run([sys.executable, "-m", "bench.fig_predict", json.dumps({**request, "threads": threads})],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"predict case {request['name']!r} failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def megapixels(size) -> float:
    return size[0] * size[1] / 1e6


def run(settings: Settings, workdir: Path) -> dict:
    checkpoint = write_checkpoint(workdir / "default_random.pt", size=settings.size)
    warm = write_photos(workdir / "photos_warmup", 1, (96, 128), seed=99)[0]
    cases = [{"name": f"{megapixels(size):.2g} Mpx", "size": list(size), "images": int(n),
              "repeats": settings.predict_repeats}
             for size, n in zip(settings.predict_sizes, settings.predict_images, strict=True)]
    if settings.predict_folder:
        cases.append({"name": f"folder of {settings.predict_folder}", "size": list(settings.predict_folder_size),
                      "images": settings.predict_folder, "repeats": 1})
    results = []
    for i, case in enumerate(cases):
        folder = workdir / f"photos_{i}"
        write_photos(folder, case["images"], tuple(case["size"]), seed=i)
        request = {**case, "checkpoint": checkpoint["path"], "inputs": str(folder), "warmup": str(warm),
                   "out": str(workdir / f"out_{i}")}
        results.append({**case, **run_case(request, settings.threads)})
    table = []
    for r in results:
        per = r["ms_per_image"]
        height, width = r["size"]
        table.append([
            f"predict {r['name']} ({width}x{height}), {r['images']} image{'s' if r['images'] != 1 else ''}",
            fmt_rate(r["images_per_s"], "images/s"),
            f"ms/image: decode {per['decode']:.1f}, model {per['model']:.1f}, upsample {per['upsample']:.1f}, "
            f"encode+write {per['encode_write']:.1f} (checkpoint {per['checkpoint']:.1f}, other {per['other']:.1f}); "
            f"peak RSS {r['memory']['peak_mb']:,.0f} MB (+{r['memory']['added_mb']:,.0f} MB over the loaded "
            f"process); network at {'x'.join(map(str, r['network_size']))}"])
    largest = max(results, key=lambda r: megapixels(r["size"]))
    guided = largest["memory"].get("upsample_added_mb")
    ok = None if guided is None else guided * 2**20 <= GUIDED_MEMORY_LIMIT
    table.append([f"guided filter at {largest['name']}: memory", "n/a" if guided is None else f"+{guided:,.0f} MB",
                  "most one upsampling call added to the resident size (limit ~2 GB: "
                  + ("no /proc here)" if ok is None else f"{'within' if ok else 'EXCEEDED'})")])
    return {
        "checkpoint": checkpoint,
        "threads": settings.threads,
        "how": "maskdepth.prediction.files.predict_paths, one Python process per case, device cpu, batch 32, preview on",
        "cases": results,
        "guided_memory_limit_mb": GUIDED_MEMORY_LIMIT / 2**20,
        "guided_memory_within_limit": ok,
        "table": table,
    }


# --- one case (in its own process) -------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _maxrss_kb() -> int:
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if sys.platform == "darwin" else value  # bytes on macOS, KiB on Linux


def peak_kb() -> int:
    return _status_kb("VmHWM") or _maxrss_kb()


def current_kb() -> int | None:
    return _status_kb("VmRSS")


def reset_peak() -> bool:
    """Reset the resident high-water mark (Linux: /proc/self/clear_refs); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class Split:
    """Self time per part of the library functions it wraps (nested wrapped calls subtracted), and
    the most resident memory one upsampling call added."""

    def __init__(self, can_reset: bool):
        self.seconds = dict.fromkeys(PARTS[:-1], 0.0)
        self.stack: list[float] = []
        self.can_reset = can_reset
        self.peak_kb = 0  # high-water mark seen before any reset inside the timed calls
        self.upsample_added_kb: int | None = 0 if can_reset else None

    def wrap(self, owner, name: str, part: str, *, memory: bool = False) -> None:
        original = getattr(owner, name)
        split = self

        def wrapper(*args, **kwargs):
            before = None
            if memory and split.can_reset:
                split.peak_kb = max(split.peak_kb, peak_kb())
                reset_peak()
                before = current_kb()
            start = time.perf_counter()
            split.stack.append(0.0)
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                split.seconds[part] += elapsed - split.stack.pop()
                if split.stack:
                    split.stack[-1] += elapsed
                if before is not None:
                    high = peak_kb()
                    split.peak_kb = max(split.peak_kb, high)
                    split.upsample_added_kb = max(split.upsample_added_kb, high - before)

        setattr(owner, name, wrapper)


def measure(request: dict) -> dict:
    import shutil

    import torch

    from maskdepth.prediction import files as inference

    torch.set_num_threads(int(request["threads"]))
    out = Path(request["out"])
    shutil.rmtree(out, ignore_errors=True)
    inference.predict_paths([request["warmup"]], request["checkpoint"], out / "warmup", device="cpu")
    can_reset = reset_peak()
    split = Split(can_reset)
    split.wrap(inference, "load_image", "decode")
    split.wrap(inference, "_load", "decode")
    split.wrap(inference.Predictor, "prepare", "decode")
    split.wrap(inference.Predictor, "run", "model")
    split.wrap(inference.Predictor, "at_size", "upsample", memory=True)
    split.wrap(inference, "_write_outputs", "encode_write")
    split.wrap(inference, "write_predictions_json", "encode_write")
    split.wrap(inference.Predictor, "__init__", "checkpoint")
    rss_before = current_kb() or peak_kb()
    wall, images, files, record, per_repeat = 0.0, 0, [], {}, 0
    for repeat in range(max(1, int(request["repeats"]))):
        folder = out / f"repeat_{repeat}"
        start = time.perf_counter()
        summary = inference.predict_paths([request["inputs"]], request["checkpoint"], folder, device="cpu")
        wall += time.perf_counter() - start
        images += len(summary.written)
        per_repeat = len(summary.written)
        files.append(sorted(p.name for p in folder.iterdir()))
        record = json.loads((folder / inference.PREDICTIONS_JSON).read_text())
        shutil.rmtree(folder)  # outside the clock; 12 Mpx outputs are large
    split.peak_kb = max(split.peak_kb, peak_kb())
    shutil.rmtree(out, ignore_errors=True)
    seconds = dict(split.seconds)
    seconds["other"] = max(0.0, wall - sum(seconds.values()))
    n = max(1, images)
    entry = record.get("predictions", [{}])[0]
    return {
        "images_timed": images,
        "wall_s": wall,
        "images_per_s": images / wall if wall else float("nan"),
        "seconds": seconds,
        "ms_per_image": {part: 1000.0 * s / n for part, s in seconds.items()},
        "files_per_repeat": len(files[-1]),
        "outputs_per_image": sum(1 for name in files[-1] if name != inference.PREDICTIONS_JSON) / max(1, per_repeat),
        "predictions_json": inference.PREDICTIONS_JSON in files[-1],
        "predictions_listed": len(record.get("predictions", [])),
        "network_size": entry.get("network_size"),
        "upsample": record.get("upsample", {}).get("method"),
        "memory": {
            "peak_mb": split.peak_kb / 1024,
            "rss_before_mb": rss_before / 1024,
            "added_mb": (split.peak_kb - rss_before) / 1024,
            "upsample_added_mb": None if split.upsample_added_kb is None else split.upsample_added_kb / 1024,
            "peak_reset_after_warmup": can_reset,
            "how": "VmHWM of /proc/self/status, reset by /proc/self/clear_refs" if can_reset
                   else "ru_maxrss since the process started (no reset possible)",
        },
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    request = json.loads((sys.argv[1:] if argv is None else argv)[0])
    print(RESULT_PREFIX + json.dumps(measure(request)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
