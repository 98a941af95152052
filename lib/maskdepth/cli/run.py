"""`maskdepth run --stage playground|1k|full`: the staged papermill pipeline (the main job).

`--data STAGE|DIR` is the data to train on, as in every command (= `-p data VALUE`); a stage
name also runs that stage when --stage is not given (`--data 1k` = `--stage 1k`), a dataset
folder trains under `--stage` (default playground), whose gate it must pass. `-p NAME VALUE`
sets any notebook parameter, which includes every `TrainConfig` field (`maskdepth train
--help` lists them).

`--resume RUN_DIR` continues a stage run that was interrupted (Ctrl-C, SIGTERM, SIGHUP: exit
status 128 + the signal number, run.json status "interrupted"), failed or killed.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    from maskdepth.plan.stages import STAGES
    from maskdepth.workflow.pipeline import SINGLE_NOTEBOOKS

    parser.add_argument("--stage", choices=tuple(STAGES), default=None,
                        help="the stage to run: its training defaults, notebooks and gate (default: the stage "
                             "--data names, else playground)")
    parser.add_argument("--data", metavar="STAGE|DIR", default=None,
                        help="what to train on: a stage name or a dataset folder (default: the stage's own data); "
                             "same as -p data VALUE, and a stage name also picks --stage")
    parser.add_argument("--notebook", choices=tuple(SINGLE_NOTEBOOKS),
                        help="run one stand-alone notebook instead of a stage")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a notebook parameter (repeatable), e.g. -p epochs 5; every TrainConfig "
                             "field is one (see maskdepth train --help)")
    parser.add_argument("-f", "--params-file", help="YAML file of NAME: VALUE overrides (-p wins)")
    parser.add_argument("--name", help="run folder name (default: UTC timestamp + parameter hash)")
    parser.add_argument("--out", dest="outputs", metavar="DIR",
                        help="outputs root: runs go to DIR/STAGE/NAME (default: ./outputs or $MASKDEPTH_OUTPUTS)")
    parser.add_argument("--outputs", dest="outputs", help=argparse.SUPPRESS)  # the old name of --out
    parser.add_argument("--force", action="store_true",
                        help="run even without a passing run of the previous stage / on a CPU for 'full'")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell execution timeout in seconds")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN_DIR",
                        help="continue an interrupted or failed stage run (RUN_DIR, or --stage/--name under --out; "
                             "--resume alone: the newest unfinished run of --stage, e.g. on Drive after a disconnect): "
                             "skips the notebooks already done, continues training from checkpoints/last.pt, "
                             "validates again; -p changes a parameter (e.g. -p epochs 20 trains longer)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maskdepth.core.errors import MaskdepthError
    from maskdepth.core.fileio import check_output
    from maskdepth.core.params import field_defaults, parse_text, read_params_file
    from maskdepth.core.runs import check_run_name
    from maskdepth.plan.stages import STAGES
    from maskdepth.training.config import TrainConfig
    from maskdepth.workflow.interrupts import StageInterrupted
    from maskdepth.workflow.notebooks import NotebookFailed
    from maskdepth.workflow.pipeline import run_single_notebook, run_stage

    check_run_name(args.name)
    overrides = read_params_file(args.params_file) if args.params_file else {}
    defaults = field_defaults(TrainConfig)
    for name, value in args.param:
        overrides[name] = parse_text(value, defaults.get(name))
    if args.data is not None:
        if "data" in overrides and overrides["data"] != args.data:
            raise MaskdepthError(f"--data {args.data} and -p data {overrides['data']}: give the data once")
        overrides["data"] = args.data
    stage = args.stage or (args.data if args.data in STAGES else "playground")
    root = Path(args.outputs) if args.outputs else None
    if root is not None:
        check_output(root, reads=[args.params_file], folder=True)
    resume = _resume_dir(args, stage, root) if args.resume is not None else None
    if resume is not None:
        stage = _stage_of(resume, args.stage)
    try:
        if args.notebook:
            if resume is not None:
                raise MaskdepthError("--resume continues a stage run; it does not go with --notebook")
            run_single_notebook(args.notebook, overrides, name=args.name, root=root, timeout=args.timeout or 7200)
            return 0
        if resume is None:
            _check_training_parameters(stage, overrides)
        if stage == "full" and not _confirm_full_on_cpu(args.force):
            return 3
        result = run_stage(args.stage if resume is not None else stage, overrides, name=args.name, root=root,
                           force=args.force, timeout=args.timeout or (4 * 3600 if stage == "full" else 1800),
                           resume=resume)
    except NotebookFailed as exc:
        print(f"maskdepth run: FAILED: {exc}", file=sys.stderr)
        return 1
    except StageInterrupted as exc:
        import signal

        print(f"maskdepth run: interrupted ({exc.signame}); run.json says where; continue with: "
              f"maskdepth run --resume {exc.run_dir}", file=sys.stderr)
        return 128 + int(getattr(signal, exc.signame, signal.SIGINT))
    except MaskdepthError:
        raise
    return 0 if result.status == "ok" else 1


def _resume_dir(args: argparse.Namespace, stage: str, root):
    """--resume RUN_DIR, or --resume with --name (and --stage, --out): the run folder to continue."""
    from pathlib import Path

    from maskdepth.core import runs
    from maskdepth.core.errors import MaskdepthError

    if args.resume:
        if args.name:
            raise MaskdepthError("--resume RUN_DIR names the run already; leave out --name")
        return Path(args.resume)
    if not args.name:
        from maskdepth.workflow.pipeline import unfinished_run

        found = unfinished_run(stage, root)
        if found is None:
            raise MaskdepthError(f"--resume: no unfinished {stage} run under {(root or runs.outputs_root()) / stage}; "
                                 "name one with --resume RUN_DIR, or --stage STAGE --name NAME [--out ROOT]")
        print(f"maskdepth run: continuing the newest unfinished {stage} run, {found}", file=sys.stderr)
        return found
    return (root or runs.outputs_root()) / stage / args.name


def _stage_of(run_dir, asked: str | None) -> str:
    from maskdepth.core.errors import MaskdepthError
    from maskdepth.core.fileio import read_json

    try:
        stage = read_json(run_dir / "run.json").get("stage")
    except (OSError, ValueError):
        raise MaskdepthError(f"--resume {run_dir}: no readable run.json there (not the folder of a stage run)") from None
    if asked and asked != stage:
        raise MaskdepthError(f"--resume {run_dir}: that is a {stage} run, not {asked}")
    return stage


def _check_training_parameters(stage: str, overrides: dict) -> None:
    """Types and ranges of the training parameters, checked before any notebook runs (a bad
    `-p lr -1` or `-p epochs true` is a one-line error now, not a failed 02_train after setup)."""
    from maskdepth.core.params import coerce, field_defaults
    from maskdepth.plan.stages import stage_defaults
    from maskdepth.training.builders import check_memory
    from maskdepth.training.config import TrainConfig

    defaults = field_defaults(TrainConfig)
    params = {**stage_defaults(stage), **overrides}
    cfg = TrainConfig.from_mapping({k: coerce(k, v, defaults[k]) for k, v in params.items() if k in defaults},
                                   strict=False)
    check_memory(cfg)  # a model too large for memory is refused before a run folder exists


def _confirm_full_on_cpu(force: bool) -> bool:
    import torch

    if torch.cuda.is_available():
        return True
    warning = ("the full stage (400,000 samples per epoch) is meant for a GPU; on this CPU one epoch of the "
               "default model takes roughly 1-2 hours")
    if force:
        print(f"warning: {warning}; continuing because of --force", file=sys.stderr)
        return True
    if sys.stdin.isatty():
        answer = input(f"{warning}. Continue? [y/N] ").strip().lower()
        return answer in ("y", "yes")
    print(f"maskdepth run: {warning}. Pass --force to run it anyway.", file=sys.stderr)
    return False
