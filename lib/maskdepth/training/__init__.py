"""The trainer (`train`, `Trainer`) and its parts: `TrainConfig`, building blocks, the run's parts built
in order, an epoch's training pass, the run folder and its checkpoints, the optimizer and schedule,
torchrun, seeding for exact resume, CPU precision, the weights' moving average and the run log.

Modules: builders, checkpoints, config, distributed, ema, epoch, optim, parts, precision, rng, runlog,
trainer.
"""
