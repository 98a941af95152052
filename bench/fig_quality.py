"""Figure 7: quality at equal wall-clock, the default recipe against the capstone's way on the same 1k data.

What users wait for is not samples/s but the time until the model is good enough. Both sides
train on the 1k stage's train split at 64x64 with the same threads, each for the same training
wall-clock budgets (`quality_budgets_s`: 1, 2, 5 and 10 minutes; a few seconds with --quick):

capstone  the capstone's way (`bench.capstone_way`): two `resnet_unet` networks (mask, depth) with their
          own loss and AdamW (constant lr `quality_seed_lr`), fed from fg_bg JPEG / mask PNG /
          depth 16-bit PNG files opened with PIL
ours      the default recipe (`maskdepth run --stage 1k`: the stage's model, batch, lr, OneCycle
          over the stage's epochs, flips + batched augmentation, channels_last, bf16 where the
          trainer picks it) through `maskdepth.training.trainer.Trainer`; it stops at the last budget or at
          the end of its recipe, whichever comes first (then its final quality stands for the
          later budgets, and the table says when it finished)

Both are scored untrained (step 0), at every budget (the first optimizer step at or past it:
its training time is listed) and at `quality_curve_points` more times for the curve, on the
seen split (composed once, float32, eval mode, one evaluator for both): pooled mask IoU,
depth delta1 and AbsRel (metric) and scale-aligned delta1 (per-image median scaling). The
clock stops while either side is scored, so times are training wall time (data, forward,
backward, optimizer). The table lists the quality of both at each budget; the curve (metrics
against training minutes, untrained levels dashed) is written beside the results as
`<results>-quality.png`.

The headline, ratios.time_to_quality_vs_seed, is the capstone's way's training time to its final
quality (at the last budget) over ours' time to the same, on the metrics where that quality is
above both untrained nets' (a target an untrained net meets says nothing: after a few minutes
the capstone's mask network may still predict no foreground, IoU 0, and delta1 of an untrained net
is 0.2-0.3); the metrics used are named, and with none the ratio is n/a. Ours' time is that of
its first scoring at or above the target (an upper bound: scorings are `quality_curve_points`
apart).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import torch

from bench.capstone_way import CapstoneFileDataset, CapstoneTrainer, write_capstone_folder
from bench.report import fmt_ratio, fmt_seconds
from bench.settings import Settings
from bench.steps import ProductTrainer, describe_default

GOAL = 50.0
TARGET_METRICS = ("iou", "delta1", "sa_delta1")  # higher is better; seen split
METRICS = TARGET_METRICS
EXTRA = ("dice", "abs_rel")


class Clock:
    """Wall time that runs only between start() and pause()."""

    def __init__(self):
        self.total = 0.0
        self._since: float | None = None

    def start(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def pause(self) -> None:
        if self._since is not None:
            self.total += time.perf_counter() - self._since
            self._since = None

    @property
    def seconds(self) -> float:
        return self.total + (0.0 if self._since is None else time.perf_counter() - self._since)


def composed_batches(dataset, batch_size: int = 64, limit: int = 0) -> list[dict]:
    """The split composed once, as collated batches (validation never re-composes)."""
    from torch.utils.data import default_collate

    n = len(dataset) if limit <= 0 else min(limit, len(dataset))
    return [default_collate([dataset[i] for i in range(s, min(s + batch_size, n))]) for s in range(0, n, batch_size)]


@torch.no_grad()
def evaluate(models: list[torch.nn.Module], batches: list[dict]) -> dict:
    """Dataset-wide metrics of the union of the models' outputs (one joint, or mask + depth), float32."""
    from maskdepth.evaluation.metrics import DepthMeter, MaskMeter

    modes = [m.training for m in models]
    for model in models:
        model.eval()
    mask_meter, depth_meter = MaskMeter(), DepthMeter()
    try:
        for batch in batches:
            pred: dict = {}
            for model in models:
                pred.update(model(batch["image"]))
            mask_meter.update(pred["mask"].float(), batch["mask"])
            depth_meter.update(pred["depth"].float(), batch["depth"], mask=batch["mask"])
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)
    metrics = {**mask_meter.compute(), **depth_meter.compute()}
    return {k: float(metrics[k]) for k in (*METRICS, *EXTRA) if k in metrics}


def reached(metrics: dict, target: dict) -> bool:
    """Whether `metrics` meet every metric of `target` (higher is better); False for no target."""
    return bool(target) and all(metrics[k] >= target[k] for k in target)


class _CheckedLoader:
    """The trainer's loader; before handing out the next batch, when `due()` says so (once per
    optimizer step at most), the clock pauses and `check()` runs (it may stop training by setting
    the trainer's max_steps)."""

    def __init__(self, trainer, clock: Clock, due, check):
        self.trainer, self.loader, self.clock, self.due, self.check = trainer, trainer.train_loader, clock, due, check
        self.sampler = self.loader.sampler
        self.last = -1

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            self.maybe_check()
            yield batch

    def maybe_check(self) -> None:
        step = self.trainer.step
        if step > 0 and step != self.last and self.due():
            self.last = step
            self.clock.pause()
            try:
                self.check()
            finally:
                self.clock.start()


def score_times(budgets, points: int) -> list[float]:
    """Training times (s) at which both sides are scored: the budgets and `points` evenly spaced
    up to the last budget."""
    top = max(budgets)
    grid = [top * i / points for i in range(1, points + 1)] if points > 0 else []
    return sorted({round(float(t), 3) for t in (*budgets, *grid)})


class Due:
    """Whether the clock has passed the next scoring time (then the times it passed are used up)."""

    def __init__(self, clock: Clock, times: list[float]):
        self.clock, self.times, self.next = clock, list(times), 0

    def __call__(self) -> bool:
        if self.next >= len(self.times) or self.clock.seconds < self.times[self.next]:
            return False
        while self.next < len(self.times) and self.clock.seconds >= self.times[self.next]:
            self.next += 1
        return True

    @property
    def done(self) -> bool:
        return self.next >= len(self.times)


def train_capstone(settings: Settings, folder: Path, n_train: int, val: list[dict], times: list[float]) -> dict:
    """The capstone's way until the last of `times` (training wall time), scored at step 0 and at each."""
    batch, lr = settings.quality_batch, settings.quality_seed_lr
    capstone = CapstoneTrainer(CapstoneFileDataset(folder), batch, lr=lr)
    clock = Clock()
    due = Due(clock, times)
    curve = [{"step": 0, "train_s": 0.0, **evaluate(capstone.models, val)}]
    samples = step = 0
    while not due.done:
        clock.start()
        samples += capstone.run_steps(1)
        clock.pause()
        step += 1
        if due():
            curve.append({"step": step, "train_s": clock.seconds, **evaluate(capstone.models, val)})
    return {"steps": step, "samples": samples, "epochs": samples / n_train, "train_s": clock.seconds,
            "batch_size": batch, "lr": lr, "finished_early": False, "untrained": curve[0], "curve": curve}


def train_ours(settings: Settings, workdir: Path, val: list[dict], times: list[float]) -> dict:
    """The default recipe until the last of `times` or the end of its recipe, scored at step 0 and at each."""
    from maskdepth.training.rng import epoch_seed, seed_everything

    ours = ProductTrainer.default(out_dir=workdir / "run_default", stage=settings.quality_data, size=settings.size,
                                  batch_size=settings.quality_batch)
    trainer = ours.trainer
    cfg = trainer.cfg
    max_epochs = settings.quality_max_epochs or cfg.epochs
    clock = Clock()
    due = Due(clock, times)
    curve = [{"step": 0, "train_s": 0.0, **evaluate([trainer.model], val)}]

    def check() -> None:
        curve.append({"step": trainer.step, "train_s": clock.seconds, **evaluate([trainer.model], val)})
        if due.done:
            cfg.max_steps = max(trainer.step, 1)  # the trainer stops before its next step

    trainer.train_loader = _CheckedLoader(trainer, clock, due, check)
    for _ in range(max_epochs):
        # As Trainer.fit: the data order and augmentation are a function of (seed, epoch).
        seed_everything(epoch_seed(cfg.seed, trainer.epoch))
        trainer.shuffle_generator.manual_seed(epoch_seed(cfg.seed, trainer.epoch))
        clock.start()
        trainer.train_one_epoch()
        clock.pause()
        trainer.epoch += 1
        trainer.schedule.after_epoch(None)
        if cfg.max_steps and trainer.step >= cfg.max_steps:
            break
    finished_early = not due.done
    if curve[-1]["step"] != trainer.step:
        curve.append({"step": trainer.step, "train_s": clock.seconds, **evaluate([trainer.model], val)})
    n_train = len(trainer.train_set)
    return {
        "recipe": describe_default(stage=settings.quality_data),
        "batch_size": cfg.batch_size,
        "schedule": f"{cfg.schedule} over {cfg.epochs} epochs, lr {cfg.lr}",
        "steps": trainer.step,
        "samples": trainer.step * cfg.batch_size,
        "epochs": trainer.step * cfg.batch_size / n_train,
        "train_s": clock.seconds,
        "finished_early": finished_early,  # the recipe (or quality_max_epochs) ended before the last budget
        "untrained": curve[0],
        "curve": curve,
    }


def at_budget(side: dict, budget: float) -> dict:
    """The side's scoring at `budget`: the first at or past it, else (it finished earlier) its last."""
    return next((c for c in side["curve"] if c["train_s"] >= budget and c["step"] > 0), side["curve"][-1])


def time_to(side: dict, target: dict) -> dict | None:
    """The side's first scoring that meets `target` (None: never)."""
    return next((c for c in side["curve"] if reached(c, target)), None)


def curve_png(capstone: dict, ours: dict, budgets, title: str) -> bytes:
    """The curve: each target metric against training minutes, both sides, untrained levels dashed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, len(TARGET_METRICS), figsize=(4.2 * len(TARGET_METRICS), 3.6), squeeze=False)
    for ax, key in zip(axes[0], TARGET_METRICS, strict=True):
        for side, label, colour in ((capstone, "capstone's way", "tab:gray"), (ours, "default recipe", "tab:blue")):
            minutes = [c["train_s"] / 60 for c in side["curve"]]
            ax.plot(minutes, [c[key] for c in side["curve"]], marker="o", ms=3, color=colour, label=label)
            ax.axhline(side["untrained"][key], color=colour, ls="--", lw=0.8)
        for budget in budgets:
            ax.axvline(budget / 60, color="black", lw=0.4, alpha=0.4)
        ax.set_xlabel("training wall time (min)")
        ax.set_title(f"seen {key}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def fmt_budget(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def run(settings: Settings, workdir: Path) -> dict:
    from maskdepth.datasets.dataset import build_dataset

    torch.set_num_threads(settings.threads)
    stage, size = settings.quality_data, settings.size
    budgets = sorted(float(b) for b in settings.quality_budgets_s)
    times = score_times(budgets, settings.quality_curve_points)
    train_plain = build_dataset(stage, "train", size=size)
    n_train = len(train_plain)
    val = composed_batches(build_dataset(stage, "seen", size=size), limit=settings.quality_val_samples)
    folder = write_capstone_folder(train_plain, n_train, workdir / "seed_files")
    torch.manual_seed(0)
    capstone = train_capstone(settings, folder, n_train, val, times)
    ours = train_ours(settings, workdir, val, times)
    n_val = sum(int(b["image"].shape[0]) for b in val)
    note = f"{stage} train ({n_train}), seen split ({n_val} samples), {size}x{size}, {settings.threads} threads"

    final = capstone["curve"][-1]
    untrained_best = {k: max(capstone["untrained"][k], ours["untrained"][k]) for k in TARGET_METRICS}
    target = {k: final[k] for k in TARGET_METRICS if final[k] > untrained_best[k]}
    hit = time_to(ours, target)
    ratio = capstone["train_s"] / hit["train_s"] if hit is not None and hit["train_s"] > 0 else None
    trivial = [k for k in TARGET_METRICS if k not in target]

    rows = []
    for label, s_point, o_point in [("untrained (step 0)", capstone["untrained"], ours["untrained"])] + [
            (f"after {fmt_budget(b)} of training", at_budget(capstone, b), at_budget(ours, b)) for b in budgets]:
        rows.append({"at": label, "seed": s_point, "ours": o_point})
    table = []
    for row in rows:
        s_point, o_point = row["seed"], row["ours"]
        finished = (" (ours finished its recipe at " + fmt_seconds(ours["train_s"]) + ")"
                    if ours["finished_early"] and o_point is ours["curve"][-1] and o_point["step"] > 0 else "")
        table.append([
            f"{row['at']}: IoU, capstone's way / ours", f"{s_point['iou']:.3f} / {o_point['iou']:.3f}",
            f"delta1 {s_point['delta1']:.3f} / {o_point['delta1']:.3f}, sa_delta1 {s_point['sa_delta1']:.3f} / "
            f"{o_point['sa_delta1']:.3f}, AbsRel {s_point['abs_rel']:.3f} / {o_point['abs_rel']:.3f}; steps "
            f"{s_point['step']} / {o_point['step']} at {fmt_seconds(s_point['train_s'])} / "
            f"{fmt_seconds(o_point['train_s'])}{finished}"])
    if not target:
        verdict = (f"n/a: after {fmt_budget(budgets[-1])} the capstone's way is on no metric above an untrained net "
                   f"({', '.join(TARGET_METRICS)}); a longer budget gives a target")
    elif hit is None:
        verdict = f"ours did not reach the capstone's final {', '.join(target)} in {fmt_seconds(ours['train_s'])}: ratio < 1"
    else:
        verdict = (f"goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'missed'}; target = the capstone's way's "
                   + ", ".join(f"{k} {v:.3f}" for k, v in target.items())
                   + f" at {fmt_seconds(capstone['train_s'])}, reached by ours at step {hit['step']} "
                   f"({fmt_seconds(hit['train_s'])})"
                   + (f"; {', '.join(trivial)} left out: the capstone's way is not above an untrained net there"
                      if trivial else ""))
    table.append(["**time to the capstone's way's final quality, capstone / ours**", fmt_ratio(ratio), verdict])
    table.append(["setting", f"{len(times)} scorings per side", f"{note}; capstone's way batch {capstone['batch_size']}, "
                  f"lr {capstone['lr']}; ours: {ours['recipe']}, {ours['schedule']}; curve: <results>-quality.png"])
    title = f"seen quality vs training wall time ({note})"
    return {
        "data": note,
        "metrics": list(TARGET_METRICS) + list(EXTRA),
        "budgets_s": budgets,
        "score_times_s": times,
        "at_budgets": rows,
        "target": target,
        "target_left_out": trivial,
        "seed": capstone,
        "ours": ours,
        "ours_time_to_target": hit,
        "ratio": ratio,
        "goal": GOAL,
        "goal_met": bool(ratio is not None and ratio >= GOAL),
        "attachments": {"quality.png": curve_png(capstone, ours, budgets, title)},
        "table": table,
    }
