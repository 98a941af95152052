"""The trainer's parts; `maskdepth.training.trainer` puts them together (`Trainer`, `train`).

config       `TrainConfig` (the papermill parameters and `maskdepth train` flags), `resume_config`
optim        the optimizer and the learning-rate `Schedule`
distributed  torchrun's process group, barriers, broadcasts, the DDP wrapper
rng          seeding and the RNG state that makes a resume exact
runlog       `RunLog`: console and train.log lines, TensorBoard, history.json, metrics.json

The loop that scores a model on a split is `maskdepth.evaluation.loop.run_split` (shared with
`maskdepth.validation.validate`).
"""
