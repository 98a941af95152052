"""Training: one loop for every model and task, on CPU, one GPU, or many with torchrun.

`train(TrainConfig(...))` builds the datasets, the model, the loss and the optimizer, then
runs epochs of: train → validate on every validation split that has samples (`seen`,
`unseen`, `ood`; see `maskdepth.plan.stages`) → log (console line, TensorBoard, history.json) →
checkpoint (`last.pt` every epoch, `best.pt` on improvement of `best_metric`, by default
the `seen` loss; directions come from the catalogue in `maskdepth.evaluation.metrics`).

The parts live in `maskdepth.training`: `config` (TrainConfig, resume_config), `optim`
(optimizer, Schedule), `distributed` and `rng` (torchrun, seeding), `precision` (float32 or bf16 on a
CPU, timed), `ema` (the weights' moving average, when asked), `runlog` (console, train.log,
TensorBoard, history.json, metrics.json); the validation loop is `maskdepth.evaluation.loop.run_split`,
shared with `maskdepth.validation.validate`. This module puts them together: `Trainer` and `train`.

Exact resume: every epoch starts by re-seeding all RNGs from (seed, epoch), and a
checkpoint is written only at epoch boundaries, so a run killed at any point and resumed
from `last.pt` repeats the interrupted epoch bit for bit (on CPU) and ends with the same
weights as an uninterrupted run.

Scale-out: launched by `torchrun --nproc_per_node=N -m maskdepth train ...`, each process
trains on its DistributedSampler shard under DistributedDataParallel; rank 0 alone
validates, logs and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskdepth.core import runs
from maskdepth.core.device import resolve_device
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import copy_file, folder_lock, write_json
from maskdepth.core.progress import progress
from maskdepth.evaluation.catalogue import is_better
from maskdepth.evaluation.loop import to_device as _to_device
from maskdepth.models.checkpoint import (
    load_checkpoint,
    load_weights,
    nonfinite_weights,
    save_checkpoint,
    unwrap,
)
from maskdepth.plan.stages import VAL_SPLITS
from maskdepth.training.builders import build_model, build_val_sets, check_memory, evaluate, make_loader
from maskdepth.training.config import (
    TrainConfig,
    check_resumable,
)
from maskdepth.training.distributed import (
    barrier,
    broadcast_buffers,
    broadcast_object,
    init_distributed,
    wrap_ddp,
)
from maskdepth.training.ema import WeightEMA
from maskdepth.training.optim import Schedule, build_optimizer, param_groups
from maskdepth.training.precision import PrecisionChoice, choose_cpu_precision
from maskdepth.training.rng import (
    epoch_seed,
    rng_state,
    seed_everything,
    set_rng_state,
)
from maskdepth.training.runlog import PROGRESS_LOG_EVERY_S, RunLog

# Files of a run: a fresh run refuses a folder that holds any of them (--resume continues it).
RUN_FILES = ("checkpoints/last.pt", "checkpoints/best.pt", "history.json", "metrics.json")


class TrainingDiverged(MaskdepthError):
    """The loss (training or validation) or the weights became NaN or infinite; no checkpoint
    is written from that state, so last.pt (when there is one) holds the last good epoch."""


def _metric_value(metrics: dict, key: str) -> float | None:
    split, _, name = key.partition(".")
    value = metrics.get(split, {}).get(name)
    return None if value is None or not math.isfinite(value) else float(value)


def _is_better(value: float, best: float | None, metric: str) -> bool:
    return is_better(value, best, metric.partition(".")[2])


# -- the loop ------------------------------------------------------------------------------
class Trainer:
    """Holds the pieces of one run; `fit()` runs the epochs. Use `train(cfg)` for the usual path."""

    def __init__(self, cfg: TrainConfig):
        from maskdepth.datasets.dataset import build_dataset
        from maskdepth.evaluation.losses import build_loss

        cfg.validate()
        self.cfg = cfg
        self.rank, self.world, device_name = init_distributed(cfg.device)
        amp = None if str(cfg.amp) == "auto" else str(cfg.amp) in ("on", "True")
        self.dev = resolve_device(device_name, amp=amp)
        self.is_main = self.rank == 0
        self.out_dir = self._resolve_out_dir()
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.runlog = RunLog(self.out_dir, cfg, self.is_main)

        seed_everything(cfg.seed)
        self.train_set = build_dataset(cfg.data, "train", size=cfg.size, seed=cfg.seed, augment=cfg.augment)
        # Every validation split with samples; an empty one (e.g. no ood in an imported folder) is skipped.
        self.val_sets, self.val_counts = build_val_sets(cfg.data, cfg.size, cfg.seed)
        best_split = cfg.best_metric.partition(".")[0]
        if best_split not in self.val_sets:
            raise MaskdepthError(f"best_metric={cfg.best_metric!r}: {cfg.data} has no {best_split} samples")
        check_memory(cfg)
        self.model = build_model(cfg).to(self.dev.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.precision = self._initial_precision()
        self.net = wrap_ddp(self.model, self.dev.device, self.world)  # what we call forward on
        self.criterion = build_loss(
            task=cfg.task,
            mask_loss=cfg.mask_loss,
            depth_loss=cfg.depth_loss,
            weights={"mask": cfg.mask_weight, "depth": cfg.depth_weight},
            uncertainty=cfg.uncertainty,
        ).to(self.dev.device)
        self.optimizer = build_optimizer(cfg, param_groups(cfg, self.model, self.criterion.parameters()))
        self.ema = WeightEMA(self.model, cfg.ema) if cfg.ema else None
        self.shuffle_generator = torch.Generator()
        self.train_loader = make_loader(
            self.train_set, cfg, train=True, pin_memory=self.dev.pin_memory, world=self.world, rank=self.rank,
            generator=self.shuffle_generator,
        )
        self.val_loaders = {
            s: make_loader(ds, cfg, train=False, pin_memory=self.dev.pin_memory) for s, ds in self.val_sets.items()
        }
        self.schedule = Schedule(cfg, self.optimizer, len(self.train_loader))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dev.grad_scaler and self.dev.device.type == "cuda")
        self.epoch = 0  # finished epochs
        self.step = 0
        self.saved_epoch: int | None = None  # the epoch checkpoints/last.pt holds (None: not written)
        self.history: list[dict] = []
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.train_time_s = 0.0

    @property
    def eval_model(self) -> nn.Module:
        """What is evaluated, saved and predicted with: the weights' moving average when `ema` is on."""
        return self.model if self.ema is None else self.ema.module

    # -- precision -------------------------------------------------------------------------------
    def _initial_precision(self) -> PrecisionChoice:
        """What the run trains in. `amp=auto` on a CPU times bf16 against float32 (rank 0, the
        others take its answer); a resumed run takes its checkpoint's choice instead (`load_for_resume`)."""
        cfg = self.cfg
        if str(cfg.amp) != "auto" or self.dev.device.type != "cpu":
            kind = self.dev.amp_name if self.dev.device.type in ("cuda", "cpu") else "off"
            return PrecisionChoice(kind, f"amp={cfg.amp} on {self.dev.device.type}")
        if cfg.resume:
            return PrecisionChoice("off", "amp=auto: the checkpoint's choice (resume)")
        return self._timed_precision()

    def _timed_precision(self) -> PrecisionChoice:
        cfg = self.cfg
        choice = None
        if self.is_main:
            choice = choose_cpu_precision(self.model, cfg.in_channels, cfg.size, cfg.batch_size,
                                          channels_last=cfg.channels_last)
        choice = broadcast_object(choice, self.world)
        self._use_precision(choice)
        return choice

    def _use_precision(self, choice: PrecisionChoice) -> None:
        self.precision = choice
        self.dev = dataclasses.replace(self.dev, amp=choice.enabled)

    def _resolve_out_dir(self) -> Path:
        if self.cfg.out_dir:
            return Path(self.cfg.out_dir)
        if self.cfg.resume:
            raise MaskdepthError("resume needs out_dir: the run folder to continue")
        out = runs.outputs_root() / runs.stage_label(self.cfg.data) / runs.new_run_name(self.cfg.to_dict())
        out = Path(broadcast_object(str(out), self.world))  # every rank must agree on the folder: rank 0's name
        self.cfg.out_dir = str(out)
        return out

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

    def train_one_epoch(self) -> dict:
        from maskdepth.augment.aspect import aspect_batch
        from maskdepth.augment.photometric import augment_batch
        from maskdepth.augment.zoom import zoom_batch
        from maskdepth.datasets.dataset import model_input

        cfg = self.cfg
        self.net.train()
        if hasattr(self.train_loader.sampler, "set_epoch"):
            self.train_loader.sampler.set_epoch(self.epoch)
        sums: dict[str, float] = {}
        seen = 0
        t0 = last_note = time.perf_counter()
        bar = progress(self.train_loader, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                       disable=not (self.is_main and cfg.progress_bar))
        for batch in bar:
            if self._max_steps_reached():
                break
            batch = _to_device(batch, self.dev.device, cfg.channels_last)
            if cfg.augment:
                batch = zoom_batch(batch, cfg.seed, self.epoch, cfg.zoom)
                batch = aspect_batch(batch, cfg.seed, self.epoch, cfg.aspect, self.model.size_multiple)
                batch = augment_batch(batch, cfg.seed, self.epoch, cfg.photometric)
            x = model_input(batch, cfg.in_channels)
            with torch.autocast(self.dev.device.type, dtype=self.dev.amp_dtype, enabled=self.dev.amp):
                pred = self.net(x)
            losses = self.criterion({k: v.float() for k, v in pred.items()}, batch)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"non-finite loss ({float(loss.detach())}) at epoch {self.epoch + 1}, step {self.step + 1}; "
                    f"training stopped. {self._last_good()} Try a lower lr (now {cfg.lr}) or amp=off."
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.schedule.after_step()
            self.step += 1
            if self.ema is not None:
                self.ema.update(self.model)
            n = x.shape[0]
            seen += n
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * n
            if self.is_main and time.perf_counter() - last_note >= PROGRESS_LOG_EVERY_S:
                last_note = time.perf_counter()
                self._note_progress(seen, sums, last_note - t0)
        bar.close()
        return {k: v / max(seen, 1) for k, v in sums.items()} | {"samples": seen * self.world}

    def _end_epoch(self, record: dict) -> None:
        self._check_finite(record)
        self.history.append(record)
        self.runlog.epoch_seconds.append(record["time_s"])
        value = _metric_value(record, self.cfg.best_metric)
        improved = value is not None and _is_better(value, self.best_value, self.cfg.best_metric)
        if improved:
            self.best_value, self.best_epoch = value, self.epoch
        metrics = {**{s: record[s] for s in VAL_SPLITS if s in record}, "epoch": self.epoch}
        # Write order: last.pt (holds the history and best_epoch: the commit point), then best.pt
        # (a copy of it), then history.json. A resume after a kill in between repairs the last two.
        self.save("last.pt", metrics)
        self.saved_epoch = self.epoch
        if improved:
            copy_file(self.ckpt_dir / "last.pt", self.ckpt_dir / "best.pt")
        self.runlog.write_history(self.history)
        self.runlog.write_epoch(record, grid=(self.eval_model, self.val_sets, self.dev.device, self.cfg.in_channels))
        self.runlog.log(self.runlog.epoch_line(record, stopping=self._max_steps_reached()) + ("  *best" if improved else ""))

    def _final_metrics(self) -> dict:
        best = next((r for r in self.history if r["epoch"] == self.best_epoch), self.history[-1] if self.history else {})
        result = {
            "model": self.cfg.model,
            "params": sum(p.numel() for p in unwrap(self.model).parameters()),
            "task": self.cfg.task,
            "data": self.cfg.data,
            "size": self.cfg.size,
            "epochs": self.epoch,
            "steps": self.step,
            "train_time_s": round(self.train_time_s, 2),
            "best_metric": self.cfg.best_metric,
            "best_epoch": self.best_epoch,
            # One entry per validation split; {} for a split without samples (see n_samples).
            **{s: best.get(s, {}) for s in VAL_SPLITS},
            "n_samples": dict(self.val_counts),
            "last": {s: self.history[-1].get(s, {}) for s in VAL_SPLITS} if self.history else {},
            "device": str(self.dev.device),
            "precision": self.precision.to_dict(),
            "world_size": self.world,
        }
        return self.runlog.write_metrics(result, self.epoch, hparams=bool(self.history))

    # -- lines ------------------------------------------------------------------------------------
    def _max_steps_reached(self) -> bool:
        return bool(self.cfg.max_steps) and self.step >= self.cfg.max_steps

    def _start_line(self) -> str:
        cfg = self.cfg
        n_params = sum(p.numel() for p in unwrap(self.model).parameters())
        splits = ", ".join(f"{n} {s}" if n else f"no {s} samples" for s, n in self.val_counts.items())
        return (f"training {cfg.model} ({n_params:,} params) on {cfg.data} [{len(self.train_set)} train, {splits}] at "
                f"{cfg.size}px, task {cfg.task}, device {self.dev.device} ({self.precision.label}), "
                f"world {self.world} -> {self.out_dir}")

    def _note_progress(self, seen: int, sums: dict, seconds: float) -> None:
        steps = len(self.train_loader)
        done = min(seen // max(self.train_loader.batch_size or 1, 1), steps)
        rate = seen / max(seconds, 1e-9) * self.world
        self.runlog.log_file_only(self.runlog.progress_line(self.epoch + 1, done, steps,
                                                            sums.get("loss", 0.0) / max(seen, 1), rate, seconds))

    def log(self, message: str) -> None:
        self.runlog.log(message)

    # -- checkpoints -------------------------------------------------------------------------
    def _claim_out_dir(self) -> None:
        """A fresh run refuses a folder that holds an earlier run (--resume continues it)."""
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            previous = [name for name in RUN_FILES if (self.out_dir / name).exists()]
            if not self.cfg.resume and previous:
                how = ("pass --resume (resume=True in Python) to continue it"
                       if "checkpoints/last.pt" in previous else
                       "it has no checkpoints/last.pt to resume from: move those files away")
                raise MaskdepthError(
                    f"{self.out_dir} already holds a run ({', '.join(previous)}): {how}, or choose another --out"
                )
        barrier(self.world)

    def save(self, name: str, metrics: dict) -> None:
        """Write checkpoints/NAME. It carries the history up to this epoch: last.pt is the one
        source of truth that a resume restores history.json, best.pt and metrics.json from."""
        cfg = self.cfg
        save_checkpoint(
            self.ckpt_dir / name,
            self.eval_model,
            info={"task": cfg.task, "tasks": list(cfg.tasks), "input_mode": cfg.input_mode,
                  "input_size": [cfg.size, cfg.size], "data": cfg.data, "precision": self.precision.to_dict()},
            config=cfg.to_dict(),
            epoch=self.epoch,
            step=self.step,
            optimizer=self.optimizer,
            scheduler=self.schedule,
            scaler=self.scaler,
            criterion=self.criterion,
            rng=rng_state(),
            metrics={**metrics, "best_value": self.best_value, "best_epoch": self.best_epoch,
                     "train_time_s": self.train_time_s},
            history=self.history,
            train_state=None if self.ema is None else {"weights": unwrap(self.model).state_dict(),
                                                       "ema": self.ema.state_dict()},
        )

    def load_for_resume(self) -> None:
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            raise MaskdepthError(f"resume: {path} does not exist (nothing to continue)")
        ckpt = load_checkpoint(path, map_location=self.dev.device)
        saved, now = ckpt.get("config") or {}, self.cfg.to_dict()
        changed = check_resumable(saved, now, path, self.out_dir)
        if self.ema is None:
            load_weights(self.model, ckpt["state_dict"], f"resume: {path}")
        else:  # the checkpoint's model is the average; the raw weights are in train_state
            train_state = ckpt.get("train_state") or {}
            if "weights" not in train_state:
                raise MaskdepthError(f"resume: {path} holds no raw weights beside its moving average "
                                     "(written by an older version); start a new run in another out_dir")
            load_weights(self.model, train_state["weights"], f"resume: {path}")
            self.ema.load_state_dict(train_state["ema"], ckpt["state_dict"])
        if str(self.cfg.amp) == "auto" and self.dev.device.type == "cpu":
            saved_precision = (ckpt.get("info") or {}).get("precision") or {}
            if saved_precision.get("autocast") in ("bf16", "off"):  # keep the run's precision: bit-exact resume
                self._use_precision(PrecisionChoice(saved_precision["autocast"],
                                                    f"the checkpoint's choice ({saved_precision.get('reason', '')})"))
            else:  # a checkpoint of an older version: time it now
                self._timed_precision()
        parts = [("optimizer", self.optimizer, True), ("scheduler", self.schedule, True),
                 ("scaler", self.scaler, False), ("criterion", self.criterion, False)]
        for key, target, required in parts:
            if required or ckpt.get(key):
                try:
                    target.load_state_dict(ckpt[key])
                except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
                    raise MaskdepthError(
                        f"resume: {path}: its {key} state does not fit this run ({type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); resume with the run's "
                        "settings, or start a new run in another out_dir"
                    ) from exc
        if ckpt.get("rng"):
            set_rng_state(ckpt["rng"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        self.saved_epoch = self.epoch
        m = ckpt.get("metrics", {})
        self.best_value, self.best_epoch = m.get("best_value"), m.get("best_epoch")
        self.train_time_s = float(m.get("train_time_s", 0.0))
        hist = self.out_dir / "history.json"
        if isinstance(ckpt.get("history"), list) and (ckpt["history"] or self.epoch == 0):
            self.history = list(ckpt["history"])
        elif hist.is_file():  # checkpoints of older versions: history.json, up to the checkpoint's epoch
            self.history = [e for e in json.loads(hist.read_text())["epochs"] if e["epoch"] <= self.epoch]
        if self.is_main:
            self._repair_after_kill(path)
        if changed:
            self.log("resume: settings changed since the checkpoint: "
                     + ", ".join(f"{k} {saved[k]!r} -> {now[k]!r}" for k in changed))
        for note in self.schedule.continue_with(saved):
            self.log(f"resume: {note}")
        self.log(f"resumed from {path} at epoch {self.epoch} (step {self.step})")

    def _repair_after_kill(self, last: Path) -> None:
        """A kill after last.pt was written but before best.pt / history.json were leaves them
        one epoch behind: bring them back in line with last.pt."""
        best = self.ckpt_dir / "best.pt"
        if self.best_epoch is not None and self.best_epoch == self.epoch:
            import filecmp

            if not best.is_file() or not filecmp.cmp(best, last, shallow=False):
                copy_file(last, best)  # last.pt *is* the best epoch's state
                self.log(f"repaired {best} (the run was stopped before it was written)")
        self.runlog.write_history(self.history)

    def _last_good(self) -> str:
        """Where the last good state is, naming only a file that exists."""
        last = self.ckpt_dir / "last.pt"
        if self.saved_epoch is not None and last.is_file():
            return f"{last} holds the last good state (epoch {self.saved_epoch})."
        return "No checkpoint was written (it diverged before the first epoch ended)."

    def _check_finite(self, record: dict) -> None:
        """Validation NaN/inf stops training like a training NaN; non-finite weights are never saved."""
        hint = f"Try a lower lr (now {self.cfg.lr}) or amp=off."
        for split, values in record.items():
            if isinstance(values, dict) and "loss" in values and not math.isfinite(values["loss"]):
                raise TrainingDiverged(
                    f"non-finite {split} loss ({values['loss']}) at epoch {self.epoch}; training stopped. "
                    f"{self._last_good()} {hint}"
                )
        bad = nonfinite_weights(unwrap(self.model).state_dict())
        if self.ema is not None:  # the average is what gets saved
            bad += nonfinite_weights(self.ema.module.state_dict())
        if bad:
            raise TrainingDiverged(
                f"the weights hold NaN or infinite values after epoch {self.epoch} ({bad[0]}); training stopped. "
                f"{self._last_good()} {hint}"
            )


def train(cfg: TrainConfig) -> dict:
    """Train according to `cfg`; returns the final metrics (also in RUN/metrics.json)."""
    trainer = Trainer(cfg)
    return trainer.fit()
