"""`maskdepth doctor`: what this machine will do with the stages, before one starts.

Device and name, precision (and why), data-loading workers, batch and lr per stage, pinned
memory, and one epoch of each stage estimated from a 20-step timing of the stages' model
(`maskdepth.workflow.profile`).
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps timed for the estimate (default 20)")
    parser.add_argument("--no-timing", action="store_true", help="the rules only, no timing")


def run(args: argparse.Namespace) -> int:
    import torch

    from maskdepth.core.device import check_device_name
    from maskdepth.core.errors import MaskdepthError
    from maskdepth.plan.machine import current_machine
    from maskdepth.workflow.profile import describe_seconds, estimate_epochs, machine_profile

    check_device_name(args.device)
    if args.steps < 1:
        raise MaskdepthError(f"--steps {args.steps}: at least 1")
    machine = current_machine(args.device)
    profile = machine_profile(machine)
    if machine.device == "cuda":
        device = (f"cuda: {machine.name}, {machine.memory_gb} GB, compute capability "
                  f"{'.'.join(map(str, machine.capability))}")
    else:
        device = f"{machine.device}: {machine.name} (no CUDA GPU visible to torch {torch.__version__})"
    print(f"device     {device}")
    print(f"precision  {profile.precision}: {profile.precision_reason}")
    print(f"workers    {profile.workers} data-loading processes ({machine.cpu_count} CPUs, one kept for training, "
          f"at most 8) for the full stage; playground and 1k load in the training process")
    for name, info in profile.stages.items():
        print(f"batch      {name}: {info['batch_size']} at lr {info['lr']:.3g}, {info['workers']} workers")
    print(f"pin memory {'yes' if profile.pin_memory else 'no'} (CUDA only)")
    if args.no_timing:
        return 0
    seconds = estimate_epochs(profile, args.steps, args.device, log=print)
    for name, s in seconds.items():
        print(f"epoch      {name}: ~{describe_seconds(s)} of training steps for "
              f"{profile.stages[name]['n_train']:,} samples (data loading and validation not included)")
    return 0
