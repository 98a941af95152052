"""`maskdepth report`: compare runs in a markdown table, report.json and a PNG chart."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="RUN_DIR",
                        help="run folders, or folders holding runs (e.g. outputs/1k)")
    parser.add_argument("--out", default=None,
                        help="where report.md/.json/.png go (default: the runs' common folder)")
    parser.add_argument("--sort", default=None, metavar="SPLIT.METRIC",
                        help="order rows best first by e.g. unseen.iou, unseen.abs_rel")


def run(args: argparse.Namespace) -> int:
    from maskdepth.report import report

    result = report(args.paths, args.out, sort=args.sort)
    print(result.markdown, end="")
    for path in result.files.values():
        print(f"wrote {path}")
    return 0
