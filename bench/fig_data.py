"""Figure 5: data creation, manifest, on-the-fly composition per core, and materialize.

manifest     generating the full stage's manifest (412k rows: 400k train + the other splits);
             hashing it, i.e. `Manifest.sha256()` on a fresh `Manifest` of the same columns every
             repeat (the method memoises its digest on the object, so timing repeated calls on
             one object would time a cached string): CSV text + sha256 of all rows, in rows/s;
             and verifying it against the committed sha256 (data_manifests/spec.json), also on a
             fresh object each repeat (spec read + hash + compare)
composition  `Composer.compose` on one core (numpy, no torch threads), over the full stage's
             train rows in a shuffled order as an epoch sees them, after a warm-up: nearly every
             row's object is ray-traced anew (generator v3 traces 3-D objects per placement);
             then the same rows read from the packed object store (`data/objects.py`), and the
             1k stage, whose rendered objects all fit the cache after the first epoch
materialize  samples/s of writing packed arrays, where this maskdepth has the API
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.packed import materialize_packed, packed_unavailable
from bench.report import fmt_rate, fmt_seconds
from bench.settings import Settings
from bench.timing import measure_rate, median_seconds

FULL_TRAIN = 400_000
WARMUP_SAMPLES = 1000


def composition_rate(dataset, samples: int, repeats: int, seed: int = 0):
    """Compose rows in a shuffled order (warm-up first); a `Rate` in samples/s."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    composer = dataset.composer
    position = 0

    def chunk(n: int) -> int:
        nonlocal position
        for _ in range(n):
            composer.compose(int(order[position % len(order)]))
            position += 1
        return n

    chunk(min(WARMUP_SAMPLES, len(order)))
    return measure_rate(lambda: chunk(samples), repeats=repeats, warmup=0)


def fresh_copy(manifest):
    """A new `Manifest` of the same columns: its sha256() is computed, not read from the memo."""
    from maskdepth.world.manifest import Manifest

    return Manifest(manifest.stage, manifest.seed, manifest.columns)


def hash_rate(manifest, repeats: int) -> dict:
    """`Manifest.sha256()` computed afresh each repeat (a new object, so no memoised digest): the
    median seconds, rows/s, the CSV text's share, and whether it equals the memoised digest."""
    digests: list[str] = []
    seconds, times = median_seconds(lambda: digests.append(fresh_copy(manifest).sha256()), repeats=repeats)
    csv_seconds, _ = median_seconds(lambda: fresh_copy(manifest).to_csv(), repeats=repeats)
    return {"rows": len(manifest), "seconds": seconds, "times_s": times, "rows_per_s": len(manifest) / seconds,
            "csv_seconds": csv_seconds, "digest_matches": set(digests) == {manifest.sha256()},
            "cached": False}


def run(settings: Settings, workdir: Path) -> dict:
    from maskdepth.core.errors import MaskdepthError
    from maskdepth.datasets.dataset import build_dataset
    from maskdepth.world.manifest import build_manifest, verify_manifest

    build_s, build_times = median_seconds(lambda: build_manifest("full", seed=0), repeats=settings.manifest_repeats)
    manifest = build_manifest("full", seed=0)
    hashing = hash_rate(manifest, settings.manifest_repeats)
    verified: list[bool] = []
    try:
        verify_s, verify_times = median_seconds(lambda: verified.append(verify_manifest(fresh_copy(manifest))),
                                                repeats=settings.manifest_repeats)
        verify_note = "checked against spec.json" if verified[0] else "spec.json does not cover it"
    except MaskdepthError as exc:  # the checkout's spec is stale: report it, the timings still count
        verify_s, verify_times, verify_note = float("nan"), [], f"verification failed: {exc}"[:300]
    start = time.perf_counter()
    full = build_dataset("full", "train", size=settings.size)
    open_s = time.perf_counter() - start
    store = full.composer.store
    full.composer.store = None  # first: every object traced anew, as without a store
    rate_full = composition_rate(full, settings.compose_samples, settings.repeats)
    store_s = None
    if store is None:  # `maskdepth data build --data full --objects` (or 01_create_data for full) makes it
        from maskdepth.world.objects import ObjectStore, build_store

        t0 = time.perf_counter()
        build_store(full.source_set, "full", full.manifest)
        store_s = time.perf_counter() - t0
        store = ObjectStore.open(full.source_set, "full", full.manifest.sha256())
    full.composer.store = store
    rate_store = composition_rate(full, settings.compose_samples, settings.repeats)
    rate_1k = composition_rate(build_dataset("1k", "train", size=settings.size),
                               settings.compose_samples, settings.repeats)
    why_not = packed_unavailable()
    materialize = {"status": why_not} if why_not else materialize_rate(settings, workdir)
    epoch_one_core = FULL_TRAIN / rate_full.median
    table = [
        [f"full manifest ({len(manifest):,} rows): generate", fmt_seconds(build_s), f"median of {len(build_times)}"],
        ["full manifest: sha256 of all rows, no cache", fmt_rate(hashing["rows_per_s"], "rows/s"),
         f"{fmt_seconds(hashing['seconds'])} per hash (CSV text {fmt_seconds(hashing['csv_seconds'])} + sha256), "
         f"fresh Manifest each of {len(hashing['times_s'])} repeats; same digest as the memoised one: "
         f"{'yes' if hashing['digest_matches'] else 'NO'}"],
        ["full manifest: verify against spec.json, no cache",
         fmt_rate(len(manifest) / verify_s, "rows/s") if verify_s == verify_s else "n/a",
         f"{fmt_seconds(verify_s)} per check (spec read + hash + compare); {verify_note}"],
        ["open full train dataset", fmt_seconds(open_s), "manifest + background views (rendered once, then cached)"],
        ["composition, full stage, 1 core", fmt_rate(rate_full.median),
         f"shuffled rows, objects ray-traced per sample; 400k epoch = {fmt_seconds(epoch_one_core)} on 1 core, "
         f"{fmt_seconds(epoch_one_core / settings.threads)} on {settings.threads}"],
        ["composition, full stage, 1 core, object store", fmt_rate(rate_store.median),
         "shuffled rows, objects read from the packed store (traced once by `data build --objects`"
         + (f", which took {fmt_seconds(store_s)} here)" if store_s is not None else ", built before)")],
        ["composition, 1k stage, 1 core", fmt_rate(rate_1k.median), "shuffled rows, rendered objects cached (epoch >= 2)"],
        ["materialize", fmt_rate(materialize["samples_per_s"]) if "samples_per_s" in materialize else "n/a",
         materialize.get("status", "")],
    ]
    return {
        "manifest": {"rows": len(manifest), "generate_s": build_s, "generate_times_s": build_times,
                     "sha256": hashing, "verify_s": verify_s, "verify_times_s": verify_times,
                     "verify_rows_per_s": len(manifest) / verify_s if verify_s == verify_s else None,
                     "verify": verify_note},
        "open_full_train_dataset_s": open_s,
        "composition_samples_per_s_one_core": {"full": rate_full.to_dict(), "full_object_store": rate_store.to_dict(),
                                               "1k": rate_1k.to_dict()},
        "object_store_build_s": store_s,
        "full_epoch_composition_s": {"one_core": epoch_one_core, "all_cores": epoch_one_core / settings.threads},
        "materialize": materialize,
        "table": table,
    }


def materialize_rate(settings: Settings, workdir: Path) -> dict:
    """Samples/s of materializing the 1k stage (all splits) as packed arrays into `workdir`."""
    report = materialize_packed("1k", workdir / "materialize_1k", settings.size)
    samples = sum(report["counts"].values())
    return {"status": "measured: 1k stage, all splits, packed", "stage": "1k", "samples": samples,
            "seconds": report["seconds"], "samples_per_s": samples / report["seconds"]}
