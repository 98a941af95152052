"""The README's "what to expect" table, written from reference runs, never by hand.

`docs/reference_runs.json` holds a summary of each reference stage run (wall time, the machine,
the metrics of every validation split and the real-photo check), made from the run folders by
`python -m maskdepth.workflow.expectations --from RUN [RUN ...]`; `render_table` turns it into the table
between the README's markers, and `--check` (and a test) fails when the README disagrees with it.
GPU rows say "not measured" until a GPU reference run exists.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import read_json, write_json, write_text
from maskdepth.core.runs import METRICS_FILE, run_metrics
from maskdepth.plan.stages import VAL_SPLITS

REFERENCE_FILE = Path("docs") / "reference_runs.json"
BEGIN, END = "<!-- expectations:begin -->", "<!-- expectations:end -->"
SPLIT_KEYS = ("iou", "sa_delta1", "delta1", "ordering")
REAL_KEYS = ("pair_ordering", "sa_delta1", "delta1")
GPU_ROWS = ("full on a GPU (T4: float16; A100, L4, H100: bf16)", "playground, 1k on a GPU")


def _round(value):
    return None if not isinstance(value, (int, float)) or not math.isfinite(value) else round(float(value), 3)


def _machine(device) -> str | None:
    """A short description of where a run ran (from run.json's device report)."""
    if not isinstance(device, dict):
        return None
    if device.get("cuda_available"):
        return f"CUDA {device.get('gpu') or device.get('cuda')}"
    return f"CPU, {device.get('cpu_threads')} threads"


def summarize_run(run: Path) -> dict:
    """What the table needs from a finished stage run folder."""
    run = Path(run)
    try:
        info = read_json(run / "run.json")
        metrics = read_json(run / METRICS_FILE)
    except (OSError, ValueError) as exc:
        raise MaskdepthError(f"{run}: not a finished stage run (run.json and metrics.json: {exc})") from None
    metrics = run_metrics(run, metrics)
    real_file = run / "real" / "real.json"
    real = read_json(real_file)["photos"][0] if real_file.is_file() else None
    params = info.get("params", {})
    return {
        "stage": info.get("stage"),
        "run": run.name,
        "seconds": _round(info.get("seconds")),
        "machine": _machine(info.get("device")),
        "size": params.get("size"),
        "epochs": params.get("epochs"),
        "gate_passed": bool((info.get("gate") or {}).get("passed")),
        "read_as": metrics.get("read_as"),
        "splits": {s: {k: _round((metrics.get(s) or {}).get(k)) for k in SPLIT_KEYS} for s in VAL_SPLITS},
        "real": None if not real or "model" not in real else {
            "photo": real["name"], **{k: _round(real["model"].get(k)) for k in REAL_KEYS},
            "ramp": {k: _round(real["baselines"]["ramp"].get(k)) for k in REAL_KEYS}},
    }


def _cell(values) -> str:
    return " / ".join("–" if v is None else f"{v:.2f}" for v in values)


def _duration(seconds) -> str:
    if seconds is None:
        return "–"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def render_table(reference: dict) -> str:
    """The markdown table (seen / unseen / ood per cell, then the real photo) from the reference summary."""
    head = ("| stage | wall time | IoU seen / unseen / ood | sa δ1 | δ1 (metric) | ordering | "
            "real photo: pair ordering / sa δ1 / δ1 (ramp) |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for run in reference.get("runs", []):
        splits = run["splits"]
        real = run.get("real")
        real_cell = "–" if not real else (f"{_cell([real[k] for k in REAL_KEYS])} "
                                          f"({_cell([real['ramp'][k] for k in REAL_KEYS])})")
        readings = set((run.get("read_as") or {}).values())
        reading = f", read with {readings.pop()}" if len(readings) == 1 and readings != {"plain"} else ""
        lines.append(
            f"| {run['stage']} ({run['size']} px, {run['epochs']} epochs{reading}) | {_duration(run['seconds'])} | "
            + " | ".join(_cell([splits[s][k] for s in VAL_SPLITS]) for k in SPLIT_KEYS)
            + f" | {real_cell} |")
    for name in GPU_ROWS:
        lines.append(f"| {name} | not measured | not measured | not measured | not measured | not measured | "
                     "not measured |")
    return "\n".join(lines)


def readme_block(readme: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise MaskdepthError(f"README.md has no {BEGIN} ... {END} block")
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskdepth.workflow.expectations", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="runs", nargs="+", metavar="RUN", help="reference stage run folders")
    parser.add_argument("--repo", default=".", help="the checkout (default: here)")
    parser.add_argument("--check", action="store_true", help="fail when README.md disagrees with the reference")
    args = parser.parse_args(argv)
    repo = Path(args.repo)
    reference_path, readme_path = repo / REFERENCE_FILE, repo / "README.md"
    try:
        if args.runs:
            write_json(reference_path, {"runs": [summarize_run(Path(r)) for r in args.runs]})
        table = render_table(read_json(reference_path))
        readme = readme_path.read_text(encoding="utf-8")
        if args.check:
            if readme_block(readme) != table:
                print(f"README.md's expectation table differs from {reference_path}: run "
                      "python -m maskdepth.workflow.expectations", file=sys.stderr)
                return 1
            return 0
        readme_block(readme)  # the markers must be there
        before, rest = readme.split(BEGIN, 1)
        write_text(readme_path, f"{before}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}")
    except MaskdepthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
