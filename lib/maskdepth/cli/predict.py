"""`maskdepth predict`: mask and depth for any image files or folders, at their own resolution."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files or folders (searched recursively, in sorted order)")
    parser.add_argument("--checkpoint", "-c", required=True,
                        help="checkpoint file, or a run folder (uses its checkpoints/best.pt)")
    parser.add_argument("--out", "-o", required=True, metavar="DIR",
                        help="output folder (sub-folders of INPUT folders are kept)")
    parser.add_argument("--bg", default=None, metavar="FILE",
                        help="background image, required by 6-channel (bg_fg_bg) checkpoints")
    parser.add_argument("--preview", action=argparse.BooleanOptionalAction, default=True,
                        help="write NAME_preview.png: input | mask overlay | depth | colour bar in metres "
                             "(default: on; --no-preview skips it)")
    parser.add_argument("--depth-range", choices=("fixed", "auto"), default="fixed",
                        help="colour range of NAME_depth_color.png and the preview (near = bright, log scale): "
                             "fixed = 0.25-80 m for every image, so images compare (default); auto = each "
                             "image's own min-max, listed in predictions.json")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="mask probability above which a pixel is foreground (default 0.5)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist in --out (inputs are never replaced)")
    parser.epilog = (
        "Writes NAME_mask.png (0/255), NAME_depth.png (16-bit: metres x 256), NAME_depth_color.png and "
        "NAME_preview.png per input, and predictions.json (each input, its outputs, the depth PNG scale, "
        "the checkpoint) in --out. Nothing is written (exit status 2) when an output would replace one of the inputs, "
        "e.g. --out is the input folder holding cat.png and cat_mask.png, or when an output file already "
        "exists in --out and --overwrite is not given. Exit status 1 when any input could not be used or "
        "its outputs could not be written (e.g. a name too long); each is named on stderr and the others "
        "are processed."
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from maskdepth.errors import MaskdepthError
    from maskdepth.imageio import expand_inputs
    from maskdepth.inference import Predictor, predict_files

    if args.batch_size < 1:
        raise MaskdepthError(f"--batch-size must be at least 1, got {args.batch_size}")
    predictor = Predictor(args.checkpoint, device=args.device, threshold=args.threshold)
    if predictor.needs_background and args.bg is None:
        raise MaskdepthError(
            f"checkpoint {predictor.checkpoint} takes the background too (input_mode bg_fg_bg, 6 channels): "
            "give it with --bg FILE"
        )
    if args.bg is not None:
        predictor.set_background(args.bg)  # a bad --bg fails every input: an error, not a skip
    files, failed = expand_inputs(args.inputs)
    for error in failed:
        print(f"skipped {error}", file=sys.stderr)
    summary = predict_files(
        files, predictor, args.out, preview=args.preview, depth_range=args.depth_range, batch_size=args.batch_size,
        failed=failed, overwrite=args.overwrite,
    )
    print(f"{summary.line} (outputs in {args.out}, listed in {summary.manifest})")
    return 0 if summary.written and not summary.failed else 1
