"""What a training run says and leaves behind besides its checkpoints: console lines (also in
RUN/train.log, which `maskdepth run` echoes), TensorBoard (scalars per epoch, GT/prediction grids,
the HParams tab), history.json and metrics.json. Only the main process (rank 0) writes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from maskdepth.core.fileio import write_json
from maskdepth.core.runs import METRICS_FILE, format_duration
from maskdepth.plan.stages import VAL_SPLITS

# The run's console lines (also on stdout): `maskdepth run` echoes them while 02_train runs.
TRAIN_LOG = "train.log"
PROGRESS_LOG_EVERY_S = 60.0  # within an epoch, a progress line in train.log at most this often
# Shown in the epoch line for each validation split (catalogue key, short name).
CONSOLE_METRICS = (("iou", "IoU"), ("delta1", "d1"), ("sa_delta1", "sa-d1"), ("abs_rel", "AbsRel"),
                   ("ordering", "ord"))


def _scalars(metrics: dict):
    """(key, value) of the numbers worth a curve: no counts (catalogue direction None), no sample totals."""
    from maskdepth.evaluation.catalogue import CATALOGUE

    for k, v in metrics.items():
        is_count = k in CATALOGUE and CATALOGUE[k].higher_is_better is None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "samples" and not is_count:
            yield k, v


class RunLog:
    """The run folder's logs, for one process (`is_main`: rank 0 writes, the others stay silent)."""

    def __init__(self, out_dir: Path, cfg, is_main: bool):
        self.out_dir, self.cfg, self.is_main = Path(out_dir), cfg, is_main
        self.writer = None  # TensorBoard SummaryWriter while open
        self.epoch_seconds: list[float] = []  # wall time of each epoch of this session (for the ETA)

    # -- lines ----------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        """A line on stdout and in RUN/train.log (which `maskdepth run` shows on its console)."""
        if self.is_main:
            print(message, flush=True)
            self.log_file_only(message)

    def log_file_only(self, message: str) -> None:
        if self.is_main and self.out_dir.is_dir():
            with open(self.out_dir / TRAIN_LOG, "a", encoding="utf-8") as f:
                f.write(message.rstrip("\n") + "\n")

    def epoch_line(self, r: dict, *, stopping: bool) -> str:
        """The line of a finished epoch: train loss, each split's headline metrics, lr, speed, ETA
        (`stopping`: the run ends after this epoch whatever `epochs` says, e.g. max_steps reached)."""
        from maskdepth.evaluation.catalogue import format_value

        parts = [f"epoch {r['epoch']:>3}/{self.cfg.epochs}", f"loss {r['train']['loss']:.4f}"]
        for split in VAL_SPLITS:
            if split in r:
                m = r[split]
                parts.append(f"{split}: " + " ".join(f"{name} {format_value(k, m[k])}"
                                                     for k, name in CONSOLE_METRICS if k in m))
        parts.append(f"lr {r['lr']:.2e}  {r['time_s']:.1f}s  {r['samples_per_s']:.0f} samples/s")
        left = self.cfg.epochs - r["epoch"]
        if left > 0 and self.epoch_seconds and not stopping:
            recent = self.epoch_seconds[-5:]
            parts[-1] += f"  ETA {format_duration(left * sum(recent) / len(recent))}"
        return " | ".join(parts)

    def progress_line(self, epoch: int, done: int, steps: int, loss: float, rate: float, seconds: float) -> str:
        """Within a long epoch (written to train.log every PROGRESS_LOG_EVERY_S seconds)."""
        eta = (steps - done) * seconds / max(done, 1)
        return (f"epoch {epoch:>3}/{self.cfg.epochs} step {done}/{steps} loss {loss:.4f}  {rate:.0f} samples/s  "
                f"epoch ETA {format_duration(eta)}")

    # -- TensorBoard ----------------------------------------------------------------------------
    def open_tensorboard(self) -> None:
        if not (self.is_main and self.cfg.tensorboard):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a declared dependency; stay usable without it
            self.log("tensorboard is not installed: skipping TensorBoard logs")
            return
        self.writer = SummaryWriter(log_dir=str(self.out_dir / "tb"))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def write_epoch(self, record: dict, grid=None) -> None:
        """One epoch's scalars; `grid()` (model, val_sets, device, in_channels) draws the image grid
        every `grid_every` epochs and at the last one."""
        w, e = self.writer, record["epoch"]
        if w is None:
            return
        for split in ("train", *VAL_SPLITS):
            for k, v in _scalars(record.get(split, {})):
                w.add_scalar(f"{split}/{k}", v, e)
        w.add_scalar("lr", record["lr"], e)
        w.add_scalar("time/epoch_s", record["time_s"], e)
        w.add_scalar("time/samples_per_s", record["samples_per_s"], e)
        if grid is not None and self.cfg.grid_every and (e % self.cfg.grid_every == 0 or e == self.cfg.epochs):
            self.write_grid(e, *grid)
        w.flush()

    def write_grid(self, epoch: int, model, val_sets: dict, device, in_channels: int) -> None:
        """A GT/prediction grid in TensorBoard (input, GT mask, pred mask, GT depth, pred depth), drawn
        like the validation grids (`maskdepth.figures.grids`): depth near = bright on the fixed log scale
        [DEPTH_MIN, DEPTH_MAX] (`maskdepth.figures.depthviz`), with its colour bar in metres."""
        from maskdepth.datasets.dataset import model_input
        from maskdepth.evaluation.loop import to_device
        from maskdepth.figures import grids, viz

        split = "unseen" if "unseen" in val_sets else next(iter(val_sets))
        ds = val_sets[split]
        n = min(8, len(ds))
        batch = {k: torch.stack([ds[i][k] for i in range(n)]) for k in ("image", "bg", "mask", "depth")}
        batch = to_device(batch, device)
        model.eval()
        with torch.no_grad():
            pred = model(model_input(batch, in_channels))
        masks, depths = "mask" in pred, "depth" in pred
        grid = grids.prediction_grid(
            batch["image"],
            gt_mask=batch["mask"] if masks else None,
            pred_prob=torch.sigmoid(pred["mask"].float()) if masks else None,
            gt_depth=batch["depth"] if depths else None,
            pred_depth=pred["depth"].float() if depths else None,
            per_row=n,
        )
        image = viz.figure_to_array(grids.grid_figure(grid, f"{split} · epoch {epoch}"))
        self.writer.add_image(f"val_{split}/grid", image, epoch, dataformats="HWC")

    def write_hparams(self, result: dict, epoch: int) -> None:
        """TensorBoard's HParams tab: the run's hyperparameters (TrainConfig) with its final metrics
        (metrics.json: the best epoch's, per split, as hparam/SPLIT.METRIC), so runs compare there."""
        if not (self.is_main and self.cfg.tensorboard):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams
        except ImportError:
            return
        skip = ("out_dir", "resume", "tensorboard", "progress_bar")  # where and how, not what was trained
        hp = {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
              for k, v in self.cfg.to_dict().items() if k not in skip}
        metrics = {f"hparam/{split}.{k}": float(v) for split in VAL_SPLITS
                   for k, v in _scalars(result.get(split) or {}) if math.isfinite(v)}
        for k in ("best_epoch", "epochs", "train_time_s", "params"):
            if isinstance(result.get(k), (int, float)):
                metrics[f"hparam/{k}"] = float(result[k])
        exp, ssi, sei = hparams(hp, metrics)
        with SummaryWriter(log_dir=str(self.out_dir / "tb")) as w:
            for summary in (exp, ssi, sei):
                w.file_writer.add_summary(summary, epoch)
            for k, v in metrics.items():
                w.add_scalar(k, v, epoch)

    # -- files ----------------------------------------------------------------------------------
    def write_history(self, history: list[dict]) -> None:
        write_json(self.out_dir / "history.json", {"epochs": history})

    def write_metrics(self, result: dict, epoch: int, *, hparams: bool = True) -> dict:
        """metrics.json (the run's final numbers), then (`hparams`) the HParams tab from it."""
        write_json(self.out_dir / METRICS_FILE, result)
        if hparams:
            self.write_hparams(result, epoch)
        return result
