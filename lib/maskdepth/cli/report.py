"""`maskdepth report`: compare runs (markdown table, report.json, PNG charts, index.html), or with
--page write each run's own page RUN/index.html."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="RUN_DIR",
                        help="run folders, or folders holding runs (e.g. outputs/1k)")
    parser.add_argument("--out", default=None,
                        help="where report.md/.json/.png and the comparison page index.html go "
                             "(default: the runs' common folder)")
    parser.add_argument("--sort", default=None, metavar="SPLIT.METRIC",
                        help="order rows best first by e.g. unseen.iou, unseen.abs_rel")
    parser.add_argument("--page", action="store_true",
                        help="instead of comparing, (re)write each run's own page RUN/index.html: summary, "
                             "gate, metrics, figures, notebooks rendered as HTML, parameters")


def run(args: argparse.Namespace) -> int:
    from maskdepth.core.errors import MaskdepthError

    if args.page:
        from maskdepth.pages.runpage import page_targets, write_run_page

        if args.out or args.sort:
            raise MaskdepthError("--page writes each run's index.html into its own folder: --out and --sort "
                                 "belong to the comparison")
        for run_dir in page_targets(args.paths):
            print(f"wrote {write_run_page(run_dir)}")
        return 0

    from maskdepth.pages.report import report

    result = report(args.paths, args.out, sort=args.sort)
    print(result.markdown, end="")
    for path in result.files.values():
        print(f"wrote {path}")
    return 0
