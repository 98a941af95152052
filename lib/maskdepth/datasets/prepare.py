"""Build or verify everything a stage's data needs, and say what it took.

Used by `maskdepth data build` and notebooks/01_create_data.ipynb: generate and verify the
stage's manifest, then load the cached sources at the working size (rendering what is
missing).
"""

from __future__ import annotations

import time

import numpy as np

from maskdepth.plan.stages import SPLITS
from maskdepth.world.manifest import load_manifest, reference_match
from maskdepth.world.sources import SourceSpec, load_sources


def prepare(stage: str, size: int = 64, seed: int = 0, cache_dir=None, rebuild: bool = False,
            objects: bool | None = None) -> dict:
    """Counts, manifest sha256, the views rendered or found in the cache, storage bytes, seconds.

    `objects`: also trace every placement's object once into a packed store (`objects`), so
    that composition reads instead of tracing; None = only for the full stage, whose 200k
    placements are too many to keep in memory between epochs.

    `reference_match`: True when reference renders equal the bytes recorded in
    data_manifests/spec.json (seed 0, 64 px), False if they differ, None if no reference applies.
    """
    start = time.perf_counter()
    manifest = load_manifest(stage, seed)
    manifest_seconds = time.perf_counter() - start
    sources = load_sources(SourceSpec(seed=seed), size, cache_dir)
    pairs = np.unique(np.stack([manifest.values("bg"), manifest.values("placement")], axis=1), axis=0)
    if rebuild:
        for b, p in pairs.tolist():
            (sources.folder / f"b{b:04d}_p{p:03d}.npz").unlink(missing_ok=True)
    sources.views(pairs[:, 0], pairs[:, 1])
    report = sources.report
    files = [sources.folder / f"b{b:04d}_p{p:03d}.npz" for b, p in pairs.tolist()]
    store = None
    if objects or (objects is None and stage == "full"):
        from maskdepth.world.objects import build_store

        store = build_store(sources, stage, manifest)
    return {
        "stage": stage,
        "size": size,
        "seed": seed,
        "counts": {split: manifest.count(split) for split in SPLITS},
        "manifest_sha256": manifest.sha256(),
        "manifest_seconds": round(manifest_seconds, 3),
        "sources": {"spec_hash": report["spec_hash"], "folder": report["folder"],
                    "built": ["views"] if report["views_built"] else [],
                    "n_backgrounds": len(sources.backgrounds), "n_foregrounds": len(sources.foregrounds),
                    "views": report["views"], "views_built": report["views_built"]},
        "reference_match": reference_match(size, seed),
        "objects": store,
        "storage_bytes": sum(f.stat().st_size for f in files if f.is_file()) + (store["bytes"] if store else 0),
        "seconds": round(time.perf_counter() - start, 3),
    }


def describe_dataset_dir(path) -> dict:
    """What `prepare` says of a stage, for a dataset folder (materialized, imported, composed)."""
    from pathlib import Path

    from maskdepth.datasets.datadir import read_dataset_json

    start = time.perf_counter()
    meta = read_dataset_json(path)
    storage = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return {
        "data": str(path),
        "size": meta.get("size"),
        "counts": meta.get("counts", {}),
        "source": meta.get("source"),
        "depth_units": (meta.get("depth") or {}).get("units"),  # dataset.json: depth {"units", ...}
        "storage_bytes": storage,
        "seconds": round(time.perf_counter() - start, 3),
    }

