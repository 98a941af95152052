"""Build or verify everything a stage's data needs, and say what it took.

Used by `maskdepth data build` and notebooks/01_create_data.ipynb: generate and verify the
stage's manifest, then load the cached sources at the working size (rendering what is
missing).
"""

from __future__ import annotations

import time

from maskdepth.data.manifest import load_manifest, reference_match
from maskdepth.data.sources import SourceSpec, load_sources
from maskdepth.stages import SPLITS


def prepare(stage: str, size: int = 64, seed: int = 0, cache_dir=None, rebuild: bool = False) -> dict:
    """Counts, manifest sha256, source cache (what was built, storage bytes) and seconds taken.

    `reference_match`: True when the sources' bytes equal those recorded in
    data_manifests/spec.json (seed 0, 64 px), False if they differ, None if no reference applies.
    """
    start = time.perf_counter()
    manifest = load_manifest(stage, seed)
    manifest_seconds = time.perf_counter() - start
    sources = load_sources(SourceSpec(seed=seed), size, cache_dir, rebuild=rebuild)
    report = sources.report
    return {
        "stage": stage,
        "size": size,
        "seed": seed,
        "counts": {split: manifest.count(split) for split in SPLITS},
        "manifest_sha256": manifest.sha256(),
        "manifest_seconds": round(manifest_seconds, 3),
        "sources": {k: report[k] for k in ("spec_hash", "folder", "built", "n_backgrounds", "n_foregrounds")},
        "reference_match": reference_match(report, size, seed),
        "storage_bytes": report["storage_bytes"],
        "seconds": round(time.perf_counter() - start, 3),
    }


def describe_dataset_dir(path) -> dict:
    """What `prepare` says of a stage, for a dataset folder (materialized, imported, composed)."""
    from pathlib import Path

    from maskdepth.data.datadir import read_dataset_json

    start = time.perf_counter()
    meta = read_dataset_json(path)
    storage = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return {
        "data": str(path),
        "size": meta.get("size"),
        "counts": meta.get("counts", {}),
        "source": meta.get("source"),
        "depth_units": meta.get("depth_units", meta.get("units")),
        "storage_bytes": storage,
        "seconds": round(time.perf_counter() - start, 3),
    }

