"""Dataset directories: materialized stages, imported datasets, composed real photos.

This module is the on-disk contract only (what a dataset directory holds, how a producer writes
it); reading one is `packed` / `folder_dataset`, picked by `dataset.open_dataset_dir`. A directory
is valid only when its `dataset.json` exists, and every producer writes it last and atomically,
so an interrupted run leaves a directory that is refused and that a rerun completes. Without a
background photo, `bg` is the image itself (6-channel models then see no difference).
dataset.json's fields and samples.csv: docs/data.md, "Dataset folders"."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import LOCK_NAME, read_json, write_json, write_text

DATASET_FORMAT = "maskdepth-dataset/1"
DATASET_JSON = "dataset.json"
SAMPLES_CSV = "samples.csv"
LAYOUTS = ("packed", "folders")
PARTIAL = ".partial"  # a producer's work in progress: job.json, unfinished arrays, progress records
HOLDOUT_FRACTION = 0.05  # of the samples, for `seen` and for `unseen`
BG_ID = re.compile(r"(?:^|[^a-z0-9])bg[_-]?(\d+)", re.IGNORECASE)


def is_dataset_dir(path) -> bool:
    return (Path(path) / DATASET_JSON).is_file()


def read_dataset_json(path) -> dict:
    """The metadata of a complete dataset directory, or a MaskdepthError saying what is wrong."""
    folder = Path(path)
    if not folder.is_dir():
        raise MaskdepthError(f"dataset directory {folder}: no such folder")
    meta_path = folder / DATASET_JSON
    if not meta_path.is_file():
        raise MaskdepthError(
            f"{folder}: not a complete maskdepth dataset (no {DATASET_JSON}). If a `maskdepth data "
            "materialize/import/compose` into it was interrupted, rerun the same command to complete it."
        )
    try:
        meta = read_json(meta_path)
    except (OSError, ValueError) as exc:
        raise MaskdepthError(f"{meta_path}: unreadable ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != DATASET_FORMAT:
        raise MaskdepthError(f"{meta_path}: format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                             f"expected {DATASET_FORMAT!r}")
    if meta.get("layout") not in LAYOUTS:
        raise MaskdepthError(f"{meta_path}: layout {meta.get('layout')!r}, expected one of {', '.join(LAYOUTS)}")
    return meta


def write_dataset_json(path, meta: dict) -> None:
    """Write dataset.json (the last file a producer writes: it makes the directory valid)."""
    write_json(Path(path) / DATASET_JSON, {"format": DATASET_FORMAT, **meta})


def already_complete(out, identity: dict) -> bool:
    """True if `out` holds the finished dataset `identity` describes; a different dataset is an error."""
    out = Path(out)
    if not (out / DATASET_JSON).is_file():
        return False
    meta = read_dataset_json(out)
    if meta.get("identity") != identity:
        raise MaskdepthError(f"{out} already holds a different dataset ({meta.get('identity')}); "
                             "choose another --out folder or delete this one")
    shutil.rmtree(out / PARTIAL, ignore_errors=True)
    return True


def claim_output(out, job: dict) -> Path:
    """Start or continue writing `job` into `out` (its record: out/.partial/job.json).

    A new job needs a new or empty folder; an unfinished job is continued only by the same
    job (same command and options), never mixed with another.
    """
    out = Path(out)
    partial = out / PARTIAL
    if out.exists() and not out.is_dir():
        raise MaskdepthError(f"--out {out}: exists and is not a folder")
    job_path = partial / "job.json"
    if job_path.is_file():
        try:
            previous = read_json(job_path)
        except (OSError, ValueError):
            previous = None
        if previous != json.loads(json.dumps(job, default=str)):
            raise MaskdepthError(
                f"{out} holds an unfinished write of a different dataset ({partial}); choose another --out "
                f"folder, or delete {partial} to start over"
            )
        return partial
    if out.is_dir() and any(p.name not in (PARTIAL, LOCK_NAME) for p in out.iterdir()):
        raise MaskdepthError(f"--out {out}: folder is not empty; choose a new or empty folder")
    partial.mkdir(parents=True, exist_ok=True)
    write_json(job_path, job)
    return partial


def finish_output(out, meta: dict, rows: list[dict]) -> None:
    """samples.csv, then dataset.json (which makes the folder valid), then drop .partial."""
    out = Path(out)
    write_text(out / SAMPLES_CSV, samples_csv(rows))
    write_dataset_json(out, meta)
    shutil.rmtree(out / PARTIAL, ignore_errors=True)


def samples_csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def read_samples_csv(path) -> list[dict]:
    path = Path(path) / SAMPLES_CSV
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise MaskdepthError(f"{path}: unreadable ({exc})") from exc


# --- split assignment for imported and composed datasets ------------------------------------


def stable_hash(text: str) -> int:
    """A hash of a name that is the same on every machine and Python run (unlike hash())."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def bg_id_from_name(name: str) -> str | None:
    """The background id in a capstone-style name (`bg12_fg3_7` -> "12"), or None."""
    match = BG_ID.search(name)
    return (match.group(1).lstrip("0") or "0") if match else None


def assign_splits(names: list[str], groups: list[str | None] | None = None,
                  fraction: float = HOLDOUT_FRACTION) -> tuple[list[str], dict]:
    """Deterministic train/seen/unseen split of named samples, and a description of it.

    `unseen`: when every sample has a group (its background), whole groups are held out,
    taken in order of their hashed name until they hold `fraction` of the samples (at
    least one group, never all): validation on backgrounds never seen in training. Without
    groups, `unseen` is a hashed random holdout like `seen` (documented in dataset.json).
    `seen`: the `fraction` of the remaining samples with the smallest hashed names.
    Both take at least one sample when there are 3 samples or more. The split depends only
    on the names, so re-importing the same files gives the same split.
    """
    n = len(names)
    splits = ["train"] * n
    n_hold = max(1, round(fraction * n)) if n >= 3 else 0
    by_group = groups is not None and all(g is not None for g in groups) and len(set(groups)) >= 2
    remaining = list(range(n))
    if by_group:
        assert groups is not None
        members: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            members.setdefault(str(g), []).append(i)
        held: list[str] = []
        taken = 0
        for g in sorted(members, key=lambda g: (stable_hash("group:" + g), g)):
            if taken >= n_hold or len(held) == len(members) - 1:
                break
            held.append(g)
            taken += len(members[g])
        held_set = set(held)
        for i in range(n):
            if str(groups[i]) in held_set:
                splits[i] = "unseen"
        remaining = [i for i in range(n) if splits[i] == "train"]
        method = {"unseen": "held-out backgrounds", "unseen_backgrounds": sorted(held, key=_natural)}
    else:
        order = sorted(remaining, key=lambda i: (stable_hash("unseen:" + names[i]), names[i]))
        for i in order[:n_hold]:
            splits[i] = "unseen"
        remaining = [i for i in range(n) if splits[i] == "train"]
        method = {"unseen": "random holdout (no background ids known: unseen is like seen, not held-out scenes)"}
    n_seen = min(n_hold, max(0, len(remaining) - 1))
    order = sorted(remaining, key=lambda i: (stable_hash("seen:" + names[i]), names[i]))
    for i in order[:n_seen]:
        splits[i] = "seen"
    method["seen"] = f"random holdout of {fraction:.0%} by hashed name"
    return splits, method


def _natural(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]
