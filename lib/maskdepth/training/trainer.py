"""Training: one loop for every model and task, on CPU, one GPU, or many with torchrun.

`train(TrainConfig(...))` builds the run (`parts`), then runs epochs of: train (`epoch`) →
validate on every validation split that has samples (`maskdepth.evaluation.loop.run_split`, shared
with `maskdepth.validation.validate`) → log (`runlog`) → checkpoint (`checkpoints`: `last.pt`
every epoch, `best.pt` when `best_metric` improves). Every epoch re-seeds all RNGs from (seed,
epoch) and checkpoints are written only at epoch boundaries, so a run killed anywhere and resumed
from `last.pt` ends with the same weights (bit for bit on CPU). Under `torchrun` each process
trains on its shard with DistributedDataParallel; rank 0 alone validates, logs and saves.
"""

from __future__ import annotations

import time
from typing import Any

from maskdepth.core.device import resolve_device
from maskdepth.core.fileio import folder_lock, write_json
from maskdepth.training.builders import evaluate
from maskdepth.training.checkpoints import RunCheckpoints
from maskdepth.training.config import TrainConfig
from maskdepth.training.distributed import barrier, broadcast_buffers, init_distributed
from maskdepth.training.epoch import EpochPass
from maskdepth.training.parts import RunParts
from maskdepth.training.rng import epoch_seed, seed_everything
from maskdepth.training.runlog import RunLog


# -- the loop ------------------------------------------------------------------------------
class Trainer(RunParts, EpochPass, RunCheckpoints):
    """Holds the pieces of one run; `fit()` runs the epochs. Use `train(cfg)` for the usual path."""

    def __init__(self, cfg: TrainConfig):
        cfg.validate()
        self.cfg = cfg
        self.rank, self.world, device_name = init_distributed(cfg.device)
        amp = None if cfg.amp == "auto" else cfg.amp == "on"
        self.dev = resolve_device(device_name, amp=amp)
        self.is_main = self.rank == 0
        self.out_dir = self._resolve_out_dir()
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.runlog = RunLog(self.out_dir, cfg, self.is_main)
        self._build_parts()

    # -- run -----------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train; the main process holds the run folder's lock meanwhile (one writer per run)."""
        import contextlib

        with folder_lock(self.out_dir, "train") if self.is_main else contextlib.nullcontext():
            return self._fit()

    def _fit(self) -> dict:
        cfg = self.cfg
        self._claim_out_dir()
        if cfg.resume:
            self.load_for_resume()
        if self.is_main:
            write_json(self.out_dir / "config.json", cfg.to_dict())
        self.runlog.open_tensorboard()
        self.runlog.log(self._start_line())
        try:
            while self.epoch < cfg.epochs and not self._max_steps_reached():
                # Re-seed from (seed, epoch): an interrupted epoch replays identically on resume.
                seed_everything(epoch_seed(cfg.seed, self.epoch))
                self.shuffle_generator.manual_seed(epoch_seed(cfg.seed, self.epoch))
                t0 = time.perf_counter()
                train_stats = self.train_one_epoch()
                train_s = time.perf_counter() - t0
                broadcast_buffers(self.model, self.world)  # the BatchNorm statistics rank 0 validates and saves
                self.epoch += 1
                record: dict[str, Any] = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"]}
                if self.is_main:
                    for split, loader in self.val_loaders.items():
                        record[split] = evaluate(self.eval_model, loader, self.criterion, cfg, self.dev)
                barrier(self.world)
                self.schedule.after_epoch(record.get("seen", {}).get("loss"))
                self.train_time_s += time.perf_counter() - t0
                record["train"] = {k: v for k, v in train_stats.items() if k != "samples"}
                record["time_s"] = time.perf_counter() - t0
                record["samples_per_s"] = train_stats["samples"] / max(train_s, 1e-9)
                if self.is_main:
                    self._end_epoch(record)
                barrier(self.world)
        finally:
            self.runlog.close()
        result = self._final_metrics() if self.is_main else {}
        barrier(self.world)
        return result

    # -- helpers ----------------------------------------------------------------------------------
    def _max_steps_reached(self) -> bool:
        return bool(self.cfg.max_steps) and self.step >= self.cfg.max_steps

    def log(self, message: str) -> None:
        self.runlog.log(message)


def train(cfg: TrainConfig) -> dict:
    """Train according to `cfg`; returns the final metrics (also in RUN/metrics.json)."""
    trainer = Trainer(cfg)
    return trainer.fit()
