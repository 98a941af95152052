"""`python -m bench.run [--quick] [--dry-run] [--only NAMES] [--out DIR]`: the benchmark figures.

Runs the figures in one process, writes bench/results/<YYYY-MM-DD>-<host>.json (atomically;
`-quick` and `-only-...` suffixes keep short runs from overwriting a full one) with every raw
figure plus the headline ratios under `ratios`, and prints a markdown table (also written
next to the JSON as .md). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import re
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from bench.settings import make_settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FORMAT = "maskdepth-bench/1"


@dataclass(frozen=True)
class Figure:
    number: int
    name: str  # what --only takes
    title: str
    module: str  # has run(settings, workdir) -> dict
    measures: str


FIGURES = (
    Figure(1, "train", "training vs the capstone's way", "bench.fig_train",
           "samples/s: joint + our data path vs two resnet_unets fed from PIL files; ratio (goal >= 10x)"),
    Figure(2, "loader", "data path vs model", "bench.fig_loader",
           "samples/s: our loader with the trainer's augmentation vs the default training step alone "
           "(goal >= 10x); GPU feed estimate"),
    Figure(3, "compute", "compute efficiency", "bench.fig_compute",
           "training FLOP/s as a fraction of the float32 peak; default model float32/bf16; profile summary"),
    Figure(4, "inference", "inference latency", "bench.fig_inference",
           "ms per 64x64 image at batch 1 and 64, torch (as predict runs it) and ONNX Runtime, per model"),
    Figure(5, "data", "data creation", "bench.fig_data",
           "400k manifest time, composition samples/s on one core, materialize samples/s"),
    Figure(6, "gpu", "GPU epoch estimate", "bench.fig_gpu",
           "full-stage training step with AMP, 400k-sample epoch time (skipped without a GPU)"),
    Figure(7, "quality", "quality at equal wall-clock", "bench.fig_quality",
           "seen IoU, delta1, sa_delta1 of the capstone's way and the default recipe after 1, 2, 5, 10 min of training "
           "(table + curve); time to the capstone's final quality where it beats an untrained net (goal >= 50x)"),
    Figure(8, "predict", "predict end to end", "bench.fig_predict",
           "maskdepth predict on JPEG files of 0.3, 2 and 12 Mpx and a folder of 200: images/s, ms per image "
           "(decode / model / upsample / encode+write), peak resident memory"),
)
BY_NAME = {f.name: f for f in FIGURES}
VECTOR_FLAGS = {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"}
RATIO_KEYS = {"joint_vs_seed_train": "train", "loader_over_model": "loader",
              "time_to_quality_vs_seed": "quality"}


def select_figures(only: str | None) -> list[Figure]:
    """Figures named in `only` ("train,loader" or numbers "1,2"), in figure order; all if None."""
    if not only:
        return list(FIGURES)
    wanted = set()
    for token in (t.strip() for t in only.split(",")):
        if not token:
            continue
        figure = BY_NAME.get(token) or next((f for f in FIGURES if str(f.number) == token), None)
        if figure is None:
            raise ValueError(f"--only {only!r}: unknown figure {token!r}; choose from "
                             f"{', '.join(f.name for f in FIGURES)} (or 1-{len(FIGURES)})")
        wanted.add(figure.name)
    return [f for f in FIGURES if f.name in wanted]


def host_name() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"


def results_path(out_dir: Path, quick: bool, figures: list[Figure], today: datetime.date | None = None) -> Path:
    today = today or datetime.date.today()
    name = f"{today:%Y-%m-%d}-{host_name()}"
    if quick:
        name += "-quick"
    if len(figures) < len(FIGURES):
        name += "-only-" + "+".join(f.name for f in figures)
    return out_dir / f"{name}.json"


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (under 3 minutes): small batches, fewer repeats")
    parser.add_argument("--dry-run", action="store_true", help="list the figures and the settings; measure nothing")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated figures to run: "
                        + ", ".join(f.name for f in FIGURES))
    parser.add_argument("--out", metavar="DIR", type=Path, default=RESULTS_DIR,
                        help=f"folder for the results (default {RESULTS_DIR})")
    parser.add_argument("--quality-minutes", default=None, metavar="M,M,...",
                        help="figure 7: training budgets in minutes, both sides (default 1,2,5,10; "
                             "about 22 minutes in all on 2 cores; a few seconds with --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the cores we may use)")
    args = parser.parse_args(argv)
    if args.quality_minutes is not None:
        try:
            args.quality_minutes = tuple(float(m) for m in args.quality_minutes.split(",") if m.strip())
        except ValueError:
            parser.error(f"--quality-minutes {args.quality_minutes!r}: comma-separated numbers of minutes")
        if not args.quality_minutes or min(args.quality_minutes) <= 0:
            parser.error("--quality-minutes needs budgets > 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    try:
        args.figures = select_figures(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.figures:
        parser.error("--only selects no figure")
    return args


def environment() -> dict:
    import platform

    from maskdepth.core.device import cpu_info, describe

    info = describe()
    info["host"] = socket.gethostname()
    info["machine"] = platform.machine()
    name, flags = cpu_info()
    if name:
        info["cpu"] = name
    if flags:  # what decides whether bf16 autocast or channels_last can help (figure 3)
        info["cpu_flags"] = sorted(flags & VECTOR_FLAGS)
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def busy_warning(threads: int) -> str | None:
    """A warning when other processes already load the CPU: timings then vary run to run, and
    torch's worker threads wait on each other (batch-1 latency suffers most)."""
    load = load_average()
    if load is None or load[0] <= 0.5 * threads:
        return None
    return (f"the machine is busy before the benchmark starts (1-min load average {load[0]} on "
            f"{threads} threads): numbers will be slower and noisier than on a quiet machine"
            + ("; on a shared machine --threads 1 keeps torch's threads from waiting on each other"
               if threads > 1 else ""))


def run_figure(figure: Figure, settings, workdir: Path) -> dict:
    """One figure's results; an exception becomes {"error": ...} so the other figures still run."""
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        data = importlib.import_module(figure.module).run(settings, workdir)
    except Exception as exc:  # a benchmark reports a broken figure and goes on
        traceback.print_exc()
        data = {"error": f"{type(exc).__name__}: {exc}"}
    return {"number": figure.number, "title": figure.title, **data,
            "seconds": round(time.perf_counter() - start, 2)}


NOISY_SPREAD = 0.5  # (max - min) / median of a case's repeats above which its median is suspect


def noisy_cases(node, path: str = "") -> list[str]:
    """Paths of the measured cases whose repeats varied by more than NOISY_SPREAD."""
    found = []
    if isinstance(node, dict):
        spread = node.get("spread")
        if isinstance(spread, float) and "rates" in node and spread > NOISY_SPREAD:
            found.append(f"{path} ({100 * spread:.0f} %)")
        for key, value in node.items():
            found += noisy_cases(value, f"{path}.{key}" if path else str(key))
    return found


def headline_ratios(figures: dict) -> dict:
    return {key: figures.get(name, {}).get("ratio") for key, name in RATIO_KEYS.items()}


def write_attachments(figures: dict, out_path: Path) -> None:
    """Figures may return `attachments` {suffix: text or bytes} (figure 3's profile summary, figure
    7's curve PNG): written beside the results as <results name>-<suffix>, and replaced in the JSON
    by those paths."""
    from maskdepth.core.fileio import write_bytes, write_text

    for figure in figures.values():
        attachments = figure.pop("attachments", None) or {}
        written = {}
        for suffix, content in attachments.items():
            path = out_path.with_name(f"{out_path.stem}-{suffix}")
            if isinstance(content, bytes):  # e.g. figure 7's curve (PNG)
                write_bytes(path, content)
            else:
                write_text(path, content)
            written[suffix] = path.name
        if written:
            figure["files"] = written


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = make_settings(args.quick, quality_minutes=args.quality_minutes, threads=args.threads)
    out_path = results_path(args.out, args.quick, args.figures)
    if args.dry_run:
        print(f"figures ({'quick' if args.quick else 'full'} run, {settings.threads} threads):")
        for figure in args.figures:
            print(f"  {figure.number}. {figure.name:<10} {figure.title}: {figure.measures}")
        print(f"would write {out_path} and {out_path.with_suffix('.md')}")
        return 0

    import torch

    from bench.report import markdown_table
    from maskdepth.core.fileio import write_json, write_text

    torch.set_num_threads(settings.threads)  # threads = cores, for every figure (and the environment record)
    os.environ.setdefault("MASKDEPTH_NO_PROGRESS", "1")
    started = datetime.datetime.now().astimezone()
    results = {
        "format": FORMAT,
        "date": started.date().isoformat(),
        "started": started.isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "quick": settings.quick,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "environment": environment(),
        "settings": settings.to_dict(),
        "load_average_start": load_average(),
        "warnings": [],
        "figures": {},
    }
    warning = busy_warning(settings.threads)
    if warning:
        results["warnings"].append(warning)
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    total = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="maskdepth-bench-") as tmp:
        for figure in args.figures:
            print(f"figure {figure.number} ({figure.name}): {figure.title} ...", file=sys.stderr, flush=True)
            results["figures"][figure.name] = run_figure(figure, settings, Path(tmp) / figure.name)
            print(f"  done in {results['figures'][figure.name]['seconds']:.1f} s", file=sys.stderr, flush=True)
    results["ratios"] = headline_ratios(results["figures"])
    if "gpu_feed_estimate" in results["figures"].get("loader", {}):
        results["gpu_feed_estimate"] = results["figures"]["loader"]["gpu_feed_estimate"]
    write_attachments(results["figures"], out_path)
    results["goals_met"] = {name: fig["goal_met"] for name, fig in results["figures"].items() if "goal_met" in fig}
    results["load_average_end"] = load_average()
    noisy = noisy_cases(results["figures"])
    if noisy:
        results["warnings"].append(f"repeats varied by more than {100 * NOISY_SPREAD:.0f} % in: "
                                   + ", ".join(noisy) + "; their medians are unreliable")
    results["total_seconds"] = round(time.perf_counter() - total, 1)
    table = markdown_table(results)
    write_json(out_path, results)
    write_text(out_path.with_suffix(".md"), f"# maskdepth benchmark, {results['host']}, {results['started']}"
               f"{' (quick)' if settings.quick else ''}\n\n{table}")
    print(table)
    print(f"results: {out_path} ({results['total_seconds']:.0f} s)")
    failed = [name for name, fig in results["figures"].items() if "error" in fig]
    if failed:
        print(f"figures that failed: {', '.join(failed)} (see the tracebacks above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
