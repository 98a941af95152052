"""`maskdepth data`: build and verify the synthetic data of a stage.

  maskdepth data manifest --stage 1k          count and sha256 of the stage's manifest (verified)
  maskdepth data manifest --update-spec       regenerate data_manifests/ (maintainers, after a generator change)
  maskdepth data build --stage 1k --size 64   build or verify the cached sources; counts, storage, time
"""

from __future__ import annotations

import argparse

STAGE_NAMES = ("playground", "1k", "full")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    p = sub.add_parser("manifest", help="print a stage's sample count and manifest sha256 (and verify it)")
    p.add_argument("--stage", choices=STAGE_NAMES, help="stage whose manifest to generate")
    p.add_argument("--seed", type=int, default=0, help="data seed (default 0, the recorded one)")
    p.add_argument("--csv", metavar="PATH", help="also write the manifest CSV to PATH")
    p.add_argument("--update-spec", action="store_true",
                   help="regenerate data_manifests/spec.json and the small stages' CSVs")
    p = sub.add_parser("build", help="build or verify the cached sources of a stage at a working size")
    p.add_argument("--stage", choices=STAGE_NAMES, required=True)
    p.add_argument("--size", type=int, default=64, help="working size in pixels (square), default 64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="cache folder (default $MASKDEPTH_CACHE or ~/.cache/maskdepth)")
    p.add_argument("--rebuild", action="store_true", help="render the sources again even if cached")
    parser.set_defaults(_parser=parser)


def run(args) -> int:
    if args.data_command == "manifest":
        return _manifest(args)
    if args.data_command == "build":
        return _build(args)
    args._parser.print_help()
    return 2


def _manifest(args) -> int:
    from maskdepth.data import manifest as mf
    from maskdepth.errors import MaskdepthError
    from maskdepth.io import write_text

    if args.update_spec:
        spec = mf.write_data_spec(seed=args.seed)
        for name, entry in spec["stages"].items():
            print(f"{name}: {entry['rows']} rows, sha256 {entry['sha256']}")
        print(f"wrote {mf.manifests_dir()}")
        return 0
    if not args.stage:
        raise MaskdepthError("data manifest: --stage is required (or --update-spec)")
    import time

    start = time.perf_counter()
    manifest = mf.build_manifest(args.stage, args.seed)
    sha = manifest.sha256()
    seconds = time.perf_counter() - start
    verified = mf.verify_manifest(manifest)
    counts = ", ".join(f"{s} {manifest.count(s)}" for s in ("train", "seen", "unseen"))
    print(f"stage {args.stage} (seed {args.seed}): {len(manifest)} samples ({counts})")
    print(f"sha256 {sha}  [{'verified against data_manifests/spec.json' if verified else 'not recorded, unverified'}]")
    print(f"generated in {seconds:.2f} s")
    if args.csv:
        write_text(args.csv, manifest.to_csv())
        print(f"wrote {args.csv}")
    return 0


def _build(args) -> int:
    from maskdepth.data.build import prepare

    r = prepare(args.stage, args.size, args.seed, args.cache_dir, rebuild=args.rebuild)
    counts = ", ".join(f"{split} {n}" for split, n in r["counts"].items())
    src = r["sources"]
    print(f"stage {args.stage}: {sum(r['counts'].values())} samples ({counts}), "
          f"manifest sha256 {r['manifest_sha256'][:16]}... (verified)")
    print(f"sources {src['spec_hash']}: {src['n_backgrounds']} backgrounds at {args.size}px, "
          f"{src['n_foregrounds']} foregrounds")
    action = "built " + " and ".join(src["built"]) if src["built"] else "verified cache (sha256)"
    print(f"{action} in {r['seconds']:.1f} s; storage {r['storage_bytes'] / 2**20:.1f} MiB in {src['folder']}")
    if r["reference_match"] is not None:
        print("sources are byte-identical to the recorded reference" if r["reference_match"] else
              "WARNING: sources differ from the bytes recorded in data_manifests/spec.json "
              "(different numpy/platform behaviour?); results may not be comparable")
    return 0
