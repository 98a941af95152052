"""A run's folder and checkpoints: where it writes (a fresh run refuses a folder holding an earlier
one), an epoch committed in order (last.pt, then best.pt as its copy, then history.json), resume
from last.pt with the repair of a kill in between, and the final metrics.json.

`RunCheckpoints` is one of the classes `maskdepth.training.trainer.Trainer` is made of.
"""

from __future__ import annotations

import math
from pathlib import Path

from maskdepth.core import runs
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import copy_file
from maskdepth.evaluation.catalogue import is_better
from maskdepth.models.checkpoint import load_checkpoint, load_weights, save_checkpoint, unwrap
from maskdepth.plan.stages import VAL_SPLITS
from maskdepth.training.config import check_resumable
from maskdepth.training.distributed import barrier, broadcast_object
from maskdepth.training.precision import PrecisionChoice
from maskdepth.training.rng import rng_state, set_rng_state


def _metric_value(metrics: dict, key: str) -> float | None:
    split, _, name = key.partition(".")
    value = metrics.get(split, {}).get(name)
    return None if value is None or not math.isfinite(value) else float(value)


def _is_better(value: float, best: float | None, metric: str) -> bool:
    return is_better(value, best, metric.partition(".")[2])


class RunCheckpoints:
    """The run folder, the checkpoints and what an epoch and the run leave in them."""

    def _resolve_out_dir(self) -> Path:
        if self.cfg.out_dir:
            return Path(self.cfg.out_dir)
        if self.cfg.resume:
            raise MaskdepthError("resume needs out_dir: the run folder to continue")
        out = runs.outputs_root() / runs.stage_label(self.cfg.data) / runs.new_run_name(self.cfg.to_dict())
        out = Path(broadcast_object(str(out), self.world))  # every rank must agree on the folder: rank 0's name
        self.cfg.out_dir = str(out)
        return out

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

    def _claim_out_dir(self) -> None:
        """A fresh run refuses a folder that holds an earlier run (--resume continues it)."""
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            previous = [name for name in runs.TRAINING_FILES if (self.out_dir / name).exists()]
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
            else:  # a float16 run from a GPU continues on the CPU: time the choice here
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
        if not isinstance(ckpt.get("history"), list) or not (ckpt["history"] or self.epoch == 0):
            raise MaskdepthError(f"resume: {path} carries no training history (written by an older maskdepth); "
                                 "start a new run in another out_dir")
        self.history = list(ckpt["history"])
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

