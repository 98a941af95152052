"""`maskdepth models [--json]`: the registered models with their default options.

For each: parameters, input channels, outputs and forward GFLOPs for one 64x64 image
(or --size), so a user can pick a model for their hardware before training; then the encoders
of `joint` and where their ImageNet weights come from (`--weights imagenet`).
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument(
        "--in-channels", type=int, default=3, choices=(3, 6), help="3: fg_bg, 6: bg + fg_bg (default 3)"
    )
    parser.add_argument("--size", type=int, default=64, help="square input size for the GFLOPs (default 64)")


def run(args: argparse.Namespace) -> int:
    import json

    from maskdepth.core.errors import MaskdepthError
    from maskdepth.models import DEFAULT_MODEL, list_models, model_info
    from maskdepth.models.budget import check_model
    from maskdepth.models.encoders import encoder_entry, list_encoders

    if args.size <= 0:
        raise MaskdepthError(f"--size must be positive, got {args.size}")
    for name in list_models():  # the GFLOPs come from a real forward pass: refuse one that would not fit
        check_model(name, args.in_channels, {}, args.size, source=f"--size {args.size}")
    rows = [model_info(name, in_channels=args.in_channels, size=args.size) for name in list_models()]
    for row in rows:
        row["default"] = row["name"] == DEFAULT_MODEL
    encoders = [{"name": name, "description": encoder_entry(name).description,
                 "imagenet": encoder_entry(name).imagenet is not None,
                 "weights_source": encoder_entry(name).weights_source} for name in list_encoders()]
    if args.json:
        print(json.dumps({"models": rows, "encoders": encoders}, indent=2))
        return 0
    header = ("model", "params", "in", "outputs", f"GFLOPs@{args.size}", "H,W multiple of", "options")
    table = [
        (
            r["name"] + (" (default)" if r["default"] else ""),
            f"{r['params']:,}",
            str(r["in_channels"]),
            "+".join(r["outputs"]),
            f"{r['gflops']:.3f}",
            str(r["size_multiple"]),
            " ".join(f"{k}={v}" for k, v in r["kwargs"].items()),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    for line in (header, *table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    for r in rows:
        print(f"  {r['name']}: {r['description']}")
    print("\nencoders of joint (-p model_kwargs '{encoder: NAME}'; --weights imagenet | none | FILE):")
    width = max(len(e["name"]) for e in encoders)
    for e in encoders:
        print(f"  {e['name'].ljust(width)}  {e['description']}; ImageNet weights: {e['weights_source']}")
    return 0
