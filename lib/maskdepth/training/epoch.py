"""One epoch's training pass: batches moved to the device, augmented there (zoom, aspect, photometric,
each a function of (seed, epoch)), forward under autocast, the loss checked finite, the optimizer
step; and the checks that stop a run whose loss or weights became NaN or infinite.

`EpochPass` is one of the classes `maskdepth.training.trainer.Trainer` is made of.
"""

from __future__ import annotations

import math
import time

import torch

from maskdepth.core.errors import MaskdepthError
from maskdepth.core.progress import progress
from maskdepth.evaluation.loop import to_device as _to_device
from maskdepth.models.checkpoint import nonfinite_weights, unwrap
from maskdepth.training.runlog import PROGRESS_LOG_EVERY_S


class TrainingDiverged(MaskdepthError):
    """The loss (training or validation) or the weights became NaN or infinite; no checkpoint
    is written from that state, so last.pt (when there is one) holds the last good epoch."""



class EpochPass:
    """The training pass of an epoch and its console lines."""

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


