"""`maskdepth train`: train on a stage or dataset folder. Every TrainConfig field is a flag.

Scale-out: `torchrun --nproc_per_node=N -m maskdepth train --data 1k ...` (DDP).
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from maskdepth.params import add_dataclass_flags
    from maskdepth.train import TrainConfig

    parser.add_argument("-f", "--params-file", help="YAML file of NAME: VALUE parameters (flags override it)")
    add_dataclass_flags(parser, TrainConfig)


def run(args: argparse.Namespace) -> int:
    from maskdepth.params import dataclass_values, read_params_file
    from maskdepth.stages import STAGES
    from maskdepth.train import TrainConfig, train

    values = read_params_file(args.params_file) if args.params_file else {}
    flags = dataclass_values(args, TrainConfig)
    stage = STAGES.get(str(flags.get("data", values.get("data", TrainConfig.data))))
    merged = {**(stage.train_defaults if stage else {}), **values, **flags}
    cfg = TrainConfig.from_mapping(merged)
    train(cfg)
    return 0
