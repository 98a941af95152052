"""`python -m bench.gpu_check [--dry-run]`: the one prepared script for a lent GPU (`make gpu-check`).

In one call, writing bench/results/<date>-<gpu>-gpu-check.json (atomically, after each step, so a
machine taken back mid-way leaves what was done):

1. the tests only a GPU runs (`pytest -m hardware`);
2. bench figure 6 (the full stage's step with AMP and a 400k-sample epoch estimate);
3. a short `full` stage training run with AMP (`maskdepth train --data full --max-steps N`, the
   precision the machine rule picks: bf16 from compute capability 8, else float16 with a
   GradScaler), timed, with its metrics.

`--dry-run` runs the same three steps on the CPU, tiny (hardware tests collected only, figure 6's
dry listing, 2 steps on the playground data), so the script is exercised by the test suite and
cannot rot without a GPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FULL_STEPS = 2000


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def _step(record: dict, name: str, command: list[str], out: Path, timeout: int) -> bool:
    """Run one step, keep its exit status, time and output tail in `record`, write the record."""
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "MASKDEPTH_NO_SKIPS"}  # -m hardware deselects on purpose
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        status, tail = proc.returncode, (proc.stdout + proc.stderr)[-3000:]
    except subprocess.TimeoutExpired as exc:
        status, tail = "timeout", str(exc)[-3000:]
    record["steps"][name] = {"command": command, "status": status, "seconds": round(time.perf_counter() - start, 1),
                             "output_tail": tail}
    _write(out, record)
    return status == 0


def _write(out: Path, record: dict) -> None:
    from maskdepth.core.fileio import write_json

    write_json(out, record)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, tiny (for the tests)")
    parser.add_argument("--steps", type=int, default=FULL_STEPS, help=f"full-stage training steps (default {FULL_STEPS})")
    parser.add_argument("--out", default=None, help="the results JSON (default bench/results/<date>-<gpu>-gpu-check.json)")
    args = parser.parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("bench.gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); --dry-run runs it on the CPU",
              file=sys.stderr)
        return 2
    device = _device_name()
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    out = Path(args.out or RESULTS_DIR / f"{datetime.date.today().isoformat()}-{slug}-gpu-check.json")
    py = sys.executable
    record = {"format": "maskdepth-gpu-check/1", "device": device, "dry_run": args.dry_run,
              "torch": torch.__version__, "start": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "steps": {}}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        pytest_cmd = [py, "-m", "pytest", "tests", "-m", "hardware", "-q", "-p", "no:cacheprovider"]
        ok = _step(record, "hardware_tests", pytest_cmd + (["--collect-only"] if args.dry_run else []), out, 1800)
        bench_cmd = [py, "-m", "bench.run", "--only", "gpu", "--out", str(Path(work) / "bench")]
        ok &= _step(record, "figure_6", bench_cmd + (["--dry-run"] if args.dry_run else []), out, 1800)
        run_dir = Path(work) / "full"
        train_cmd = [py, "-m", "maskdepth", "train", "--data", "playground" if args.dry_run else "full",
                     "--out", str(run_dir), "--max-steps", str(2 if args.dry_run else args.steps),
                     "--amp", "on", "--device", "cpu" if args.dry_run else "cuda", "--no-progress-bar",
                     "--no-tensorboard", "--grid-every", "0"]
        ok &= _step(record, "full_stage_run", train_cmd, out, 3600)
        metrics = run_dir / "metrics.json"
        if metrics.is_file():
            saved = json.loads(metrics.read_text())
            record["full_stage_run"] = {k: saved.get(k) for k in ("precision", "train_time_s", "epochs", "n_samples")}
            record["full_stage_run"]["splits"] = {s: saved.get(s) for s in ("seen", "unseen", "ood")}
    record["end"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    record["ok"] = bool(ok)
    _write(out, record)
    print(f"{'ok' if ok else 'FAILED'}: wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("MASKDEPTH_NO_PROGRESS", "1")
    sys.exit(main())
