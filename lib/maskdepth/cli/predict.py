"""`maskdepth predict`: mask and depth for any image files or folders, at their own resolution."""

from __future__ import annotations

import argparse

DEFAULT_OUT = "predictions"
UPSAMPLE_CHOICES = ("guided", "bilinear")  # = maskdepth.prediction.upsample.UPSAMPLE_METHODS (kept light: no torch import)
TTA_CHOICES = ("none", "flip", "flip_scale")  # = maskdepth.models.tta.TTA_MODES (kept light: no torch import)
TTA_HELP = ("test-time augmentation: none | flip (the image and its mirror, averaged) | flip_scale (also at 4/3 "
            "size) (default: what the checkpoint's recipe says)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files or folders (searched recursively, in sorted order)")
    parser.add_argument("--checkpoint", "-c", default=None,
                        help="checkpoint file, a run folder (its checkpoints/best.pt) or a folder of runs such as "
                             "outputs/1k (its newest passing run); default: the newest passing run of the largest "
                             "stage under outputs/")
    parser.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder (sub-folders of INPUT folders are kept; default: ./{DEFAULT_OUT})")
    backgrounds = parser.add_mutually_exclusive_group()
    backgrounds.add_argument("--bg", default=None, metavar="FILE",
                             help="6-channel (bg_fg_bg) checkpoints: one background image for every input")
    backgrounds.add_argument("--bg-dir", default=None, metavar="DIR",
                             help="6-channel checkpoints: the background of IN/sub/NAME.png is DIR/sub/NAME.* or "
                                  "DIR/sub/NAME_bg.* (sub/ as found under an INPUT folder; none for a file "
                                  "named directly)")
    parser.add_argument("--upsample", choices=UPSAMPLE_CHOICES, default="guided",
                        help="how the network's low-resolution outputs reach the input's resolution: guided = "
                             "edge-aware, the mask and depth follow the image's edges (default; measured better "
                             "at object edges than bilinear, see bench/upsample.py); bilinear = smooth "
                             "interpolation")
    parser.add_argument("--preview", action=argparse.BooleanOptionalAction, default=True,
                        help="write NAME_preview.png: input | mask overlay | depth | colour bar in metres "
                             "(default: on; --no-preview skips it)")
    parser.add_argument("--depth-range", choices=("fixed", "auto"), default="fixed",
                        help="colour range of NAME_depth_color.png and the preview (near = bright, log scale): "
                             "fixed = 0.25-80 m for every image, so images compare (default); auto = each "
                             "image's own min-max, listed in predictions.json")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    parser.add_argument("--size", type=int, default=None, metavar="PX",
                        help="working size: the short side the network sees, the aspect ratio kept, both sides "
                             "rounded to the model's multiple (default: the checkpoint's training size)")
    parser.add_argument("--tta", default=None, choices=TTA_CHOICES, help=TTA_HELP)
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="mask probability above which a pixel is foreground (default 0.5)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist in --out (inputs are never replaced)")
    parser.epilog = (
        "Writes NAME_mask.png (0/255), NAME_depth.png (16-bit: metres x 256), NAME_depth_color.png and "
        "NAME_preview.png per input, and predictions.json (each input, its outputs and background, the depth "
        "PNG scale, the upsampling, the checkpoint) in --out. "
        "Backgrounds (6-channel checkpoints, input_mode bg_fg_bg): --bg FILE for all inputs, --bg-dir DIR, or "
        "else NAME_bg.* beside NAME.*; a file NAME_bg.* with an image NAME.* beside it is then a background, "
        "never an input (in folders and on the command line; a lone fg_bg.png is an input). A 3-channel "
        "checkpoint takes no background (--bg and --bg-dir are refused) and predicts NAME_bg.* files as "
        "ordinary images. "
        "Nothing is written (exit status 2) when an input has no background or more than one candidate, when "
        "an output would replace one of the inputs, "
        "e.g. --out is the input folder holding cat.png and cat_mask.png, or when an output file already "
        "exists in --out and --overwrite is not given. Exit status 1 when any input could not be used or "
        "its outputs could not be written (e.g. a name too long); each is named on stderr and the others "
        "are processed."
    )


def run(args: argparse.Namespace) -> int:
    from maskdepth.core.runs import resolve_checkpoint
    from maskdepth.prediction.files import predict_paths

    checkpoint = resolve_checkpoint(args.checkpoint)
    print(f"checkpoint: {checkpoint}")
    summary = predict_paths(
        args.inputs, checkpoint, args.out, bg=args.bg, bg_dir=args.bg_dir, upsample=args.upsample,
        preview=args.preview, depth_range=args.depth_range, batch_size=args.batch_size, threshold=args.threshold,
        device=args.device, overwrite=args.overwrite, size=args.size, tta=args.tta,
    )
    print(f"{summary.line} (outputs in {args.out}, listed in {summary.manifest})")
    return 0 if summary.written and not summary.failed else 1
