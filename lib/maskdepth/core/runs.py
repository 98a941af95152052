"""Run folders: where a training/validation run keeps everything it produces.

    outputs/<stage>/<run-name>/
        config.json  history.json  metrics.json  run.json  summary.md
        checkpoints/{last,best}.pt   tb/   figures/*.png   notebooks/*.ipynb   validation/<split>/

The default run name is a UTC timestamp plus a short hash of the parameters, so runs
sort by time and identical settings are easy to spot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from maskdepth.core.errors import MaskdepthError

OUTPUTS_ENV = "MASKDEPTH_OUTPUTS"
METRICS_FILE = "metrics.json"  # a run's metrics (training's), and each validated split's
VALIDATION_DIR = "validation"  # RUN/validation/<split>/: what `validate` wrote for the run's checkpoint
# What training writes in a run folder: a fresh run refuses a folder holding any of them (--resume continues it).
TRAINING_FILES = ("checkpoints/last.pt", "checkpoints/best.pt", "history.json", METRICS_FILE)
# The run folder's own files (besides figures, notebooks and validation/), in the order its page links them.
RUN_FOLDER_FILES = ("run.json", "config.json", METRICS_FILE, "history.json", "summary.md", "train.log", "setup.json",
                    "data.json", "checkpoints/best.pt", "checkpoints/last.pt", "tb")


def outputs_root() -> Path:
    """`$MASKDEPTH_OUTPUTS`, else ./outputs (the repo's git-ignored outputs folder)."""
    return Path(os.environ.get(OUTPUTS_ENV, "outputs"))


def params_hash(params: dict, length: int = 8) -> str:
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def new_run_name(params: dict) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{params_hash(params)}"


def check_run_name(name: str | None) -> str | None:
    """A run name is one folder name: no path separator, not . or .. (else the run would land
    outside OUT/STAGE and miss the "already exists" check)."""
    if name is None:
        return None
    if not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name) \
            or "\0" in name:
        raise MaskdepthError(f"--name {name!r}: a run name is one folder name (no '/', not '.' or '..')")
    return name


def stage_label(data: str) -> str:
    """The outputs/ sub-folder for a dataset: the stage name, or the folder's name."""
    return Path(str(data)).name if os.sep in str(data) or Path(str(data)).is_dir() else str(data)


def is_run_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / "config.json").is_file() and ((p / METRICS_FILE).is_file() or (p / "history.json").is_file())


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint belongs to (RUN/checkpoints/x.pt), if it is one."""
    run = checkpoint.resolve().parent.parent
    return run if checkpoint.resolve().parent.name == "checkpoints" and is_run_dir(run) else None


def find_runs(paths, *, accept=None, markers: tuple[str, ...] = ("config.json",),
              what: str = "no config.json with metrics.json/history.json") -> list[Path]:
    """Run folders among `paths` (one path or several): each path is a run folder or a folder
    holding runs (any depth). `accept` decides what a run folder is (default `is_run_dir`), found
    inside a folder by one of its `markers` files; `what` says in the error what was looked for."""
    accept = accept or is_run_dir
    runs: list[Path] = []
    for raw in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        p = Path(raw)
        if not p.is_dir():
            raise MaskdepthError(f"{p}: no such folder")
        if accept(p):
            runs.append(p)
            continue
        found = sorted({c.parent for marker in markers for c in p.rglob(marker) if accept(c.parent)})
        if not found:
            raise MaskdepthError(f"{p}: not a run folder ({what}) and holds no runs")
        runs.extend(found)
    return list(dict.fromkeys(runs))


def format_duration(seconds) -> str:
    """45s, 3m05s, 2h04m; "–" when unknown (run pages, reports and the trainer's console)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return "–"
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_params(n) -> str:
    """A parameter count: 1.65M, 101k; "–" when unknown."""
    if n is None:
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


LATEST = "latest"  # outputs/<stage>/latest: the newest finished run (a symlink, or a file naming it)
CHECKPOINT_NAMES = ("best.pt", "last.pt")  # what a run folder is predicted with, in order of preference
STAGE_ORDER = ("full", "1k", "playground")  # the largest stage first: its model is the one to use


def run_passed(run: Path) -> bool:
    """Whether a run folder's run.json says it finished and passed its gate (a `maskdepth train`
    run without a gate counts when it finished)."""
    try:
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (run / METRICS_FILE).is_file()
    if not isinstance(info, dict) or info.get("status") != "ok":
        return False
    gate = info.get("gate")
    return not isinstance(gate, dict) or bool(gate.get("passed"))


def _checkpoint_of(run: Path) -> Path | None:
    return next((run / "checkpoints" / n for n in CHECKPOINT_NAMES if (run / "checkpoints" / n).is_file()), None)


def _is_pointer(folder: Path) -> bool:
    """The `latest` pointer (or any link to a run) is not a run of its own."""
    return folder.name == LATEST or folder.is_symlink()


def newest_passing_checkpoint(folder: Path) -> Path | None:
    """best.pt of the newest passing run found under `folder` (newest by modification time, then name)."""
    candidates = sorted((c.parent for c in folder.rglob("config.json")
                         if is_run_dir(c.parent) and not _is_pointer(c.parent)),
                        key=lambda run: (run.stat().st_mtime, run.name))
    for run in reversed(candidates):
        found = _checkpoint_of(run)
        if found is not None and run_passed(run):
            return found
    return None


def run_files(stage_dir: Path) -> list[Path]:
    """The run.json of each run folder in a stage folder (not the `latest` pointer)."""
    return [p for p in Path(stage_dir).glob("*/run.json") if not _is_pointer(p.parent)]


def point_latest(run_dir: Path) -> Path:
    """Make RUN/../latest point at `run_dir`: a relative symlink replaced atomically, or where links are
    not allowed (some file systems, Drive) a small file holding the run's name. Never replaces a
    folder or file that is not such a pointer."""
    run_dir = Path(run_dir)
    latest = run_dir.parent / LATEST
    if latest.exists() and not latest.is_symlink() and (latest.is_dir() or latest.stat().st_size > 256):
        return latest  # someone's own folder or file called "latest": left alone
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    try:
        os.symlink(run_dir.name, tmp)
    except OSError:
        tmp.write_text(run_dir.name + "\n", encoding="utf-8")
    os.replace(tmp, latest)
    return latest


def _follow_latest(p: Path) -> Path:
    """outputs/<stage>/latest (a link, or a file where links are not allowed) -> the run folder it names."""
    if p.name == LATEST and p.is_symlink():
        return p.parent / os.readlink(p)
    if p.name == LATEST and p.is_file() and not p.is_symlink() and p.stat().st_size <= 256:
        name = p.read_text(encoding="utf-8").strip()
        if name and "/" not in name and name not in (".", ".."):
            return p.parent / name
    return p


def resolve_checkpoint(path: str | os.PathLike | None) -> Path:
    """A checkpoint file; a run folder -> its checkpoints/best.pt (else last.pt), `outputs/<stage>/latest`
    included; a folder of runs (a stage folder such as outputs/1k) -> the newest passing run's;
    None -> the newest passing run of the largest stage under `outputs_root()`."""
    if path is None:
        root = outputs_root()
        for stage in STAGE_ORDER:
            found = newest_passing_checkpoint(root / stage) if (root / stage).is_dir() else None
            if found is not None:
                return found
        raise MaskdepthError(f"no checkpoint given and no passing run under {root}/ ({', '.join(STAGE_ORDER)}): "
                             "train one (make run) or pass --checkpoint FILE")
    p = _follow_latest(Path(path))
    if p.is_dir():
        found = _checkpoint_of(p)
        if found is None and not is_run_dir(p):
            found = newest_passing_checkpoint(p)
        if found is None:
            raise MaskdepthError(f"{p}: a folder without checkpoints/best.pt or checkpoints/last.pt, "
                                 "and no passing run inside")
        return found
    if not p.is_file():
        raise MaskdepthError(f"checkpoint {p}: no such file")
    return p


@contextlib.contextmanager
def damaged_as_error(run_dir) -> Iterator[None]:
    """A run folder whose JSON files hold values of the wrong kind (a string where a number or
    a mapping belongs): one line naming the folder, not a traceback."""
    try:
        yield
    except MaskdepthError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        detail = (str(exc).splitlines() or [""])[0][:200]
        raise MaskdepthError(f"{run_dir}: run.json, config.json, metrics.json or history.json holds a value of the "
                             f"wrong kind ({type(exc).__name__}: {detail}); the run folder is damaged") from None


def run_metrics(run_dir: str | os.PathLike, metrics: dict | None) -> dict | None:
    """A run's metrics as its recipe reads the model: training's metrics.json (the best epoch, scored
    on the plain network) with each split that `validate` scored on that same checkpoint, epoch and
    whole split (VALIDATION_DIR/<split>/METRICS_FILE: the recipe's test-time augmentation) laid over
    it, so the gate and every report say what `maskdepth predict` gives. "read_as" maps each split
    to the reading its numbers come from ("plain": training's own)."""
    if not metrics:
        return metrics
    out = dict(metrics)
    read_as = {}
    for split in [s for s in metrics.get("n_samples") or {} if isinstance(metrics.get(s), dict)]:
        path = Path(run_dir) / VALIDATION_DIR / split / METRICS_FILE
        read_as[split] = "plain"
        try:
            validated = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (OSError, ValueError):
            validated = None
        if (isinstance(validated, dict) and validated.get("n_samples")
                and validated.get("epoch") == metrics.get("best_epoch")
                and Path(str(validated.get("checkpoint", ""))).name == CHECKPOINT_NAMES[0]
                and validated.get("n_samples") == (metrics.get("n_samples") or {}).get(split)
                and isinstance(validated.get("overall"), dict)):
            out[split] = {**metrics[split], **{k: v for k, v in validated["overall"].items() if v is not None}}
            read_as[split] = validated.get("tta", "none")
    out["read_as"] = read_as
    return out
