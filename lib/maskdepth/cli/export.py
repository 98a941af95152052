"""`maskdepth export`: a checkpoint as an ONNX file, verified against torch with onnxruntime."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", "-c", required=True,
                        help="checkpoint file, or a run folder (uses its checkpoints/best.pt)")
    # Not required=True: argparse would then refuse the hidden alias alone; run() checks instead.
    parser.add_argument("--out", "-o", dest="onnx", metavar="FILE", help="ONNX file to write (required)")
    parser.add_argument("--onnx", dest="onnx", metavar="FILE", help=argparse.SUPPRESS)  # the old name of --out
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="largest |onnxruntime - torch| accepted on random inputs (default 1e-4)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace FILE if it exists (never the checkpoint itself)")


def run(args: argparse.Namespace) -> int:
    from maskdepth.core.errors import MaskdepthError
    from maskdepth.prediction.export import export_onnx

    if not args.onnx:
        raise MaskdepthError("--out FILE is required: the ONNX file to write")
    result = export_onnx(args.checkpoint, args.onnx, opset=args.opset, atol=args.atol, overwrite=args.overwrite)
    print(
        f"wrote {result.path} (inputs {result.input_name} {result.input_shape}, outputs "
        f"{', '.join(result.output_names)}, opset {result.opset}); onnxruntime vs torch: "
        f"max abs diff {result.max_abs_diff:.2e} over batches {', '.join(map(str, result.batch_sizes))}"
    )
    return 0
