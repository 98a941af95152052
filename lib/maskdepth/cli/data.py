"""`maskdepth data`: build and verify the synthetic data of a stage.

Actions: `manifest` (count and sha256, verified; `--update-spec` for maintainers), `build` (the
cached sources), `materialize` (a stage to disk), `import` (a fg_bg/mask/depth folder or zip) and
`compose` (real photos, depth from a teacher). A dataset folder they write trains like a stage
(`--data DIR`). Here --data names a stage (--stage, its old name, still works).
Usage lines and formats: docs/data.md."""

from __future__ import annotations

import argparse

from maskdepth.plan.stages import SPLITS

STAGE_NAMES = ("playground", "1k", "full")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    p = sub.add_parser("manifest", help="print a stage's sample count and manifest sha256 (and verify it)")
    _add_stage(p, "stage whose manifest to generate")
    p.add_argument("--seed", type=int, default=0, help="data seed (default 0, the recorded one)")
    p.add_argument("--out", "-o", dest="csv", metavar="PATH", help="also write the manifest CSV to PATH")
    p.add_argument("--csv", dest="csv", help=argparse.SUPPRESS)  # the old name of --out
    p.add_argument("--update-spec", action="store_true",
                   help="regenerate data_manifests/spec.json and the small stages' CSVs")
    p = sub.add_parser("build", help="build or verify the cached sources of a stage at a working size")
    _add_stage(p, "stage whose sources to build (required)")
    p.add_argument("--size", type=int, default=64, help="working size in pixels (square), default 64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="cache folder (default $MASKDEPTH_CACHE or ~/.cache/maskdepth)")
    p.add_argument("--rebuild", action="store_true", help="render the sources again even if cached")
    p.add_argument("--objects", action=argparse.BooleanOptionalAction, default=None,
                   help="also trace every placement's object once into a packed store that composition reads "
                        "(default: only for the full stage)")
    p = sub.add_parser("materialize", help="write a stage to disk: packed arrays or the capstone's folder layout")
    _add_stage(p, "stage to write (required)")
    p.add_argument("--format", choices=("packed", "folders"), default="packed",
                   help="packed: memory-mapped arrays for training (default); folders: bg/ fg/ fg_bg/ mask/ depth/")
    p.add_argument("--out", required=True, metavar="DIR", help="new (or interrupted) dataset folder")
    p.add_argument("--size", type=int, default=64, help="working size in pixels (square), default 64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="source cache folder (default $MASKDEPTH_CACHE or ~/.cache/maskdepth)")
    p = sub.add_parser("import", help="import an existing fg_bg/mask/depth dataset (folder or zip) for training")
    p.add_argument("src", metavar="SRC", help="folder or zip holding fg_bg/, mask/, depth/ (optional bg/)")
    p.add_argument("--out", required=True, metavar="DIR", help="new (or interrupted) dataset folder")
    p.add_argument("--size", type=int, default=64, help="working size in pixels (square), default 64")
    p.add_argument("--skip-bad", action="store_true", help="leave out samples with a problem file (and count them)")
    p.add_argument("--depth-scale", type=float, metavar="M",
                   help="metres per stored depth unit (default 1/256 for 16-bit PNGs; 8-bit maps are relative "
                        "depth unless this is given)")
    p.add_argument("--depth-bright", choices=("far", "near"), default="far",
                   help="8-bit relative depth maps: are bright pixels far (default) or near?")
    p = sub.add_parser("compose", help="compose real photos (bg) with RGBA cut-outs (fg); depth from a teacher")
    p.add_argument("--bg", required=True, metavar="DIR", help="background photos (JPEG/PNG, RGB)")
    p.add_argument("--fg", required=True, metavar="DIR", help="foreground cut-outs (RGBA PNG)")
    p.add_argument("--teacher", metavar="FILE", help="depth model: TorchScript (.pt) or ONNX (.onnx)")
    p.add_argument("--teacher-output", choices=("depth", "inverse"), default="depth",
                   help="what the teacher returns: depth (default) or inverse depth (MiDaS)")
    p.add_argument("--teacher-scale", type=float, default=1.0,
                   help="metres = scale * output (depth) or scale / output (inverse); default 1")
    p.add_argument("--teacher-size", type=int, help="teacher input size (default: --size); MiDaS: 384")
    p.add_argument("--out", required=True, metavar="DIR", help="new (or interrupted) dataset folder")
    p.add_argument("--size", type=int, default=64, help="working size in pixels (square), default 64")
    p.add_argument("--per-pair", type=int, default=2, help="placements per (bg, fg) pair, default 2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16, help="teacher batch size, default 16")
    p.add_argument("--device", default="auto", help="teacher device: auto | cpu | cuda | cuda:N")
    parser.set_defaults(_parser=parser)


def _add_stage(p: argparse.ArgumentParser, help_text: str) -> None:
    """--data STAGE (the vocabulary of every command), with --stage as a hidden alias. Not
    required=True (argparse would then refuse the alias alone): `_stage` checks."""
    p.add_argument("--data", dest="stage", choices=STAGE_NAMES, metavar="STAGE",
                   help=f"{help_text}: {' | '.join(STAGE_NAMES)}")
    p.add_argument("--stage", dest="stage", choices=STAGE_NAMES, help=argparse.SUPPRESS)


def _stage(args) -> str:
    from maskdepth.core.errors import MaskdepthError

    if not args.stage:
        raise MaskdepthError(f"data {args.data_command}: --data STAGE is required ({' | '.join(STAGE_NAMES)})")
    return args.stage


def run(args) -> int:
    if args.data_command in ("build", "materialize"):
        _stage(args)
    if args.data_command == "manifest":
        return _manifest(args)
    if args.data_command == "build":
        return _build(args)
    if args.data_command in ("materialize", "import", "compose"):
        return {"materialize": _materialize, "import": _import, "compose": _compose}[args.data_command](args)
    args._parser.print_help()
    return 2


def _manifest(args) -> int:
    from maskdepth.core.errors import MaskdepthError
    from maskdepth.core.fileio import check_output, write_text
    from maskdepth.world import manifest as mf

    if args.update_spec:
        spec = mf.write_data_spec(seed=args.seed)
        for name, entry in spec["stages"].items():
            print(f"{name}: {entry['rows']} rows, sha256 {entry['sha256']}")
        print(f"wrote {mf.manifests_dir()}")
        return 0
    if not args.stage:
        raise MaskdepthError("data manifest: --data STAGE is required (or --update-spec)")
    import time

    start = time.perf_counter()
    manifest = mf.build_manifest(args.stage, args.seed)
    sha = manifest.sha256()
    seconds = time.perf_counter() - start
    verified = mf.verify_manifest(manifest)
    counts = ", ".join(f"{s} {manifest.count(s)}" for s in SPLITS)
    print(f"stage {args.stage} (seed {args.seed}): {len(manifest)} samples ({counts})")
    print(f"sha256 {sha}  [{'verified against data_manifests/spec.json' if verified else 'not recorded, unverified'}]")
    print(f"generated in {seconds:.2f} s")
    if args.csv:
        check_output(args.csv)
        write_text(args.csv, manifest.to_csv())
        print(f"wrote {args.csv}")
    return 0


def _build(args) -> int:
    from maskdepth.datasets.prepare import prepare

    r = prepare(args.stage, args.size, args.seed, args.cache_dir, rebuild=args.rebuild, objects=args.objects)
    counts = ", ".join(f"{split} {n}" for split, n in r["counts"].items())
    src = r["sources"]
    print(f"stage {args.stage}: {sum(r['counts'].values())} samples ({counts}), "
          f"manifest sha256 {r['manifest_sha256'][:16]}... (verified)")
    print(f"sources {src['spec_hash']}: {src['n_backgrounds']} backgrounds, {src['n_foregrounds']} foregrounds, "
          f"{src['views']} views at {args.size}px")
    action = f"rendered {src['views_built']} views" if src["views_built"] else "found every view in the cache"
    print(f"{action} in {r['seconds']:.1f} s; storage {r['storage_bytes'] / 2**20:.1f} MiB in {src['folder']}")
    if r["objects"]:
        o = r["objects"]
        print(f"objects: {o['objects']} placements {'traced' if o['built'] else 'found'} in {o['seconds']:.1f} s, "
              f"{o['bytes'] / 2**20:.1f} MiB in {o['folder']}")
    if r["reference_match"] is not None:
        print("sources are byte-identical to the recorded reference" if r["reference_match"] else
              "WARNING: sources differ from the bytes recorded in data_manifests/spec.json "
              "(different numpy/platform behaviour?); results may not be comparable")
    return 0


def _speed(r: dict) -> str:
    rate = r.get("samples_per_s")
    return f"{r['seconds']:.1f} s ({rate:.0f} samples/s)" if rate else f"{r['seconds']:.1f} s"


def _counts(r: dict) -> str:
    return ", ".join(f"{split} {n}" for split, n in r["counts"].items())


def _materialize(args) -> int:
    from maskdepth.datasets.materialize import materialize

    r = materialize(args.stage, args.out, fmt=args.format, size=args.size, seed=args.seed, cache_dir=args.cache_dir)
    if r["complete_already"]:
        print(f"{args.out}: already complete ({_counts(r)})")
        return 0
    resumed = sum(r.get("resumed", {}).values()) + r.get("kept", 0)
    note = f", continued after {resumed} samples already written" if resumed else ""
    print(f"materialized {args.stage} as {args.format} into {args.out}: {_counts(r)}{note}; "
          f"{r['written']} samples written in {_speed(r)}")
    return 0


def _import(args) -> int:
    import sys

    from maskdepth.datasets.importer import import_dataset

    r = import_dataset(args.src, args.out, size=args.size, skip_bad=args.skip_bad, depth_scale=args.depth_scale,
                       depth_bright=args.depth_bright)
    if r["complete_already"]:
        print(f"{args.out}: already complete")
        return 0
    print(f"imported {r['samples']} samples from {args.src} into {args.out} ({_counts(r)}) in {_speed(r)}; "
          f"depth units: {r['depth_units']}")
    masks = r.get("masks") or {}
    if r.get("zero_depth"):
        print(f"warning: depth: {r['zero_depth']} of {r['samples']} depth maps are zero everywhere (no depth "
              "recorded): they hold the nearest depth everywhere; check the depth/ files", file=sys.stderr)
    if masks.get("soft_masks"):
        print(f"warning: masks: {masks['note']}", file=sys.stderr)
    elif masks:
        print(f"masks: {masks['note']}")
    if r["problems"]:
        print(f"skipped {r['skipped']} sample(s) with problems ({len(r['problems'])} problem file(s), "
              f"listed in {args.out}/problems.txt), e.g.:")
        for line in r["problems"][:5]:
            print(f"  {line}")
    return 0


def _compose(args) -> int:
    from maskdepth.core.fileio import check_output
    from maskdepth.datasets.real import compose_real
    from maskdepth.datasets.teacher import Teacher

    check_output(args.out, reads=[args.bg, args.fg, args.teacher], folder=True)  # before the teacher loads
    teacher = Teacher(args.teacher, output=args.teacher_output, scale=args.teacher_scale,
                      input_size=args.teacher_size, device=args.device)
    r = compose_real(args.bg, args.fg, teacher, args.out, size=args.size, per_pair=args.per_pair, seed=args.seed,
                     batch_size=args.batch_size)
    if r["complete_already"]:
        print(f"{args.out}: already complete")
        return 0
    print(f"composed {sum(r['counts'].values())} samples into {args.out} ({_counts(r)}) in {_speed(r)}; "
          f"depth from {teacher.kind} teacher {args.teacher}")
    return 0
