"""`maskdepth train`: train on a stage or dataset folder. Every TrainConfig field is a flag,
its help the field's comment in `maskdepth.training.config`.

`--resume --out RUN` continues RUN with its own settings (RUN/config.json): a flag given with
it changes that setting (e.g. `--epochs 30` extends the run), every other one keeps the run's
value, never a default; the trainer says what changed. When training ends, RUN/index.html
(`maskdepth.pages.runpage`) shows the run on one page.

Scale-out: `torchrun --nproc_per_node=N -m maskdepth train --data 1k ...` (DDP).
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from maskdepth.core.params import add_dataclass_flags
    from maskdepth.evaluation.losses import DEPTH_LOSSES, MASK_LOSSES
    from maskdepth.models import list_models
    from maskdepth.training.config import (
        AMP_MODES,
        INPUT_MODES,
        OPTIMIZERS,
        RUN_TASKS,
        SCHEDULES,
        TrainConfig,
    )

    parser.add_argument("-f", "--params-file", help="YAML file of NAME: VALUE parameters (flags override it)")
    choices = {
        "model": list_models(),
        "task": RUN_TASKS,
        "input_mode": tuple(INPUT_MODES),
        "mask_loss": tuple(MASK_LOSSES),
        "depth_loss": tuple(DEPTH_LOSSES),
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "amp": AMP_MODES,
    }
    # --out is the output location, as in every command; --out-dir (the field's own name) still works.
    add_dataclass_flags(parser, TrainConfig, choices=choices,
                        flags={"out_dir": "--out"}, aliases={"out_dir": ["--out-dir"]})


def run(args: argparse.Namespace) -> int:
    from maskdepth.core.errors import MaskdepthError
    from maskdepth.core.fileio import check_output
    from maskdepth.core.params import dataclass_values, read_params_file
    from maskdepth.plan.stages import STAGES
    from maskdepth.training.config import TrainConfig, resume_config
    from maskdepth.training.trainer import train

    values = read_params_file(args.params_file) if args.params_file else {}
    flags = dataclass_values(args, TrainConfig)
    out = flags.get("out_dir", values.get("out_dir"))
    if out:  # the run folder may be neither the params file nor inside the dataset folder
        check_output(out, reads=[args.params_file, flags.get("data", values.get("data"))], folder=True)
    if flags.get("resume", values.get("resume")):
        # Continue a run with its own settings (RUN/config.json); only what is given here changes.
        out = flags.get("out_dir", values.get("out_dir"))
        if not out:
            raise MaskdepthError("--resume needs --out RUN: the run folder to continue")
        cfg = resume_config(out, {**values, **flags})
        train(cfg)
        _write_page(cfg.out_dir)
        return 0
    stage = STAGES.get(str(flags.get("data", values.get("data", TrainConfig.data))))
    merged = {**(stage.train_defaults if stage else {}), **values, **flags}
    cfg = TrainConfig.from_mapping(merged)
    train(cfg)  # sets cfg.out_dir when it was left to the default
    _write_page(cfg.out_dir)
    return 0


def _write_page(run_dir: str) -> None:
    """RUN/index.html (`maskdepth.pages.runpage`), by the main process only; its failure is said, not raised."""
    import os

    if os.environ.get("RANK", "0") != "0" or not run_dir:
        return
    from maskdepth.pages.runpage import write_page

    write_page(run_dir)
