"""The `maskdepth` command line: one sub-command per notebook / stage of the workflow.

Each sub-command lives in its own module `maskdepth.cli.<name>` exposing
`configure(parser)` (adds arguments, keeps imports light) and `run(args) -> int`.
Heavy imports (torch, matplotlib) happen inside `run`, so `maskdepth --help` is fast.

User errors (`maskdepth.core.errors`) and a full disk are printed as one line with exit status 2;
set MASKDEPTH_DEBUG=1 to get the traceback instead.

Modules: data, doctor, export, models, predict, report, run, train, validate.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import sys

from maskdepth.core.errors import MaskdepthError

# name -> one-line help. Order is the order of the workflow.
COMMANDS: dict[str, str] = {
    "data": "build, verify, materialize, import or compose datasets",
    "models": "list the registered models (parameters, GFLOPs)",
    "train": "train a model on a stage or dataset (also under torchrun for DDP)",
    "validate": "metrics.json and GT/prediction grids for a checkpoint",
    "report": "compare runs in a table and chart",
    "run": "run a stage's notebooks with papermill (playground -> 1k -> full)",
    "predict": "predict mask and depth for any image files or folders",
    "export": "export a checkpoint to ONNX and verify it with onnxruntime",
    "doctor": "what this machine will do: device, precision, workers, batch, time per epoch",
}


def build_parser() -> argparse.ArgumentParser:
    from maskdepth import __version__

    parser = argparse.ArgumentParser(
        prog="maskdepth",
        description="Train and use networks that predict the foreground mask and depth map of an image.",
    )
    parser.add_argument("--version", action="version", version=f"maskdepth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"maskdepth.cli.{name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    debug = os.environ.get("MASKDEPTH_DEBUG", "") not in ("", "0")
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`maskdepth ... | head`): stop quietly, as Unix tools do
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more reaches the closed pipe
        return 141
    except MaskdepthError as exc:
        if debug:
            raise
        print(f"maskdepth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk outside the atomic writers (memory maps, logs)
        if debug or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"maskdepth {args.command}: error: {where}{exc.strerror.lower()}; free some space (or write "
              "elsewhere) and run again", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
