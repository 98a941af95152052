"""`maskdepth validate`: metrics.json, predictions and GT/prediction grids for a checkpoint;
with --real, its depth on photographs with measured depth (`maskdepth.validation.realcheck`)."""

from __future__ import annotations

import argparse

from maskdepth.cli.predict import TTA_CHOICES, TTA_HELP
from maskdepth.plan.stages import SPLITS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", "-c", required=True,
                        help="checkpoint file, or a run folder (uses its checkpoints/best.pt)")
    parser.add_argument("--data", dest="data", default=None, metavar="STAGE|DIR",
                        help="stage name or dataset folder (default: what the checkpoint was trained on)")
    parser.add_argument("--stage", dest="data", default=None, help=argparse.SUPPRESS)  # the old name of --data
    parser.add_argument("--split", default="unseen", choices=SPLITS,
                        help="which split to score (default: unseen; ood: held-out scene, object and texture "
                             "families and cameras; a split without samples is reported, not an error)")
    parser.add_argument("--real", action="store_true",
                        help="score depth on real photographs with measured depth instead of a split (scikit-image's "
                             "Middlebury motorcycle: pair ordering, scale-aligned and metric delta1/AbsRel, beside a "
                             "constant and a 'farther towards the top' baseline); writes RUN/real/")
    parser.add_argument("--out", default=None, help="output folder (default: RUN/validation/SPLIT, or RUN/real)")
    parser.add_argument("--n-samples", type=int, default=0,
                        help="score only the first N samples of the split (default 0: all)")
    parser.add_argument("--n-show", type=int, default=8, help="samples shown in the grids (default 8)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=None, help="image size (default: the checkpoint's)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--tta", default=None, choices=TTA_CHOICES, help=TTA_HELP)
    parser.add_argument("--no-predictions", action="store_true", help="don't write predictions.npz")
    parser.add_argument("--no-figures", action="store_true", help="only metrics.json (and predictions)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maskdepth.core.runs import METRICS_FILE
    from maskdepth.validation.readout import summary_line
    from maskdepth.validation.validate import validate

    if args.real:
        return _real(args)

    metrics = validate(
        args.checkpoint,
        data=args.data,
        split=args.split,
        out_dir=args.out,
        n_samples=args.n_samples,
        n_show=args.n_show,
        batch_size=args.batch_size,
        device=args.device,
        size=args.size,
        tta=args.tta,
        save_predictions=not args.no_predictions,
        figures=not args.no_figures,
    )
    print(summary_line(metrics))
    out = Path(metrics["out_dir"])
    for name in [METRICS_FILE, metrics["predictions"], *metrics["figures"]]:
        if name:
            print(f"wrote {out / name}")
    return 0


def _real(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maskdepth.core.errors import MaskdepthError
    from maskdepth.validation.realcheck import REAL_JSON, default_out_dir, real_check, summary_line

    if args.data is not None or args.n_samples:
        raise MaskdepthError("--real scores the bundled real photos: drop --data and --n-samples")
    out = args.out if args.out is not None else default_out_dir(args.checkpoint)
    record = real_check(args.checkpoint, out, device=args.device, size=args.size, tta=args.tta, figures=not args.no_figures)
    print(summary_line(record))
    print(f"wrote {Path(out) / REAL_JSON}")
    for photo in record["photos"]:
        if photo.get("figure"):
            print(f"wrote {Path(out) / photo['figure']}")
    return 0
