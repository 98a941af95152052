"""The trainer (`train`, `Trainer`) and its parts: `TrainConfig`, building blocks, the optimizer and
schedule, torchrun, seeding for exact resume, CPU precision, the weights' moving average and the run
log.

Modules: builders, config, distributed, ema, optim, precision, rng, runlog, trainer.
"""
