"""The PNGs of a validated split: GT/prediction grids, the worst and best samples, per-sample
histograms and, in a run folder, the training curves; titled with the split's overall metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskdepth.core.fileio import read_json
from maskdepth.evaluation.catalogue import HEADLINE, higher_is_better, inline_summary, task_keys
from maskdepth.figures import grids, viz

N_BEST_WORST = 4  # samples in each of the best and worst blocks
# Which per-sample metric ranks samples for each task (its direction: the metric catalogue).
RANKING = {"mask": "iou", "depth": "abs_rel"}


def _images(dataset, positions) -> np.ndarray:
    return np.stack([np.asarray(dataset[int(p)]["image"], dtype=np.float32) for p in positions])


def write_figures(out: Path, arrays, per_sample, dataset, tasks, overall: dict, heading: str, n_show: int,
                  run_dir: Path | None):
    """Write the PNGs; returns {name: path}. Titles: `heading` plus the task's overall metrics."""

    def title(what: str, task: str | None = None) -> str:
        return f"{what} · {heading} · {inline_summary(overall, task_keys(task) if task else HEADLINE)}"

    figures: dict[str, Path] = {}
    n = len(arrays["index"])
    shown = list(range(min(n_show, n)))
    images = _images(dataset, shown)
    labels = [f"#{arrays['index'][p]}" for p in shown]

    def save(name, fig):
        figures[name] = out / f"{name}.png"
        viz.save_figure(fig, figures[name])

    def grid(task, positions, imgs, **kw):
        if task == "mask":
            prob = 1.0 / (1.0 + np.exp(-arrays["mask_logits"][positions]))
            return grids.mask_grid(imgs, arrays["gt_mask"][positions], prob, **kw)
        return grids.depth_grid(imgs, arrays["gt_depth"][positions], arrays["depth"][positions], **kw)

    for task in tasks:
        save(f"{task}_grid", grids.grid_figure(grid(task, shown, images, sample_labels=labels), title(task, task)))
        key = RANKING[task]
        values = [np.nan if r[key] is None else r[key] for r in per_sample]
        worst, best = grids.best_worst_order(values, N_BEST_WORST, higher_is_better=higher_is_better(key))
        if worst:
            chosen = worst + best
            sample_labels = [f"#{arrays['index'][p]} {key} {values[p]:.3f}" for p in chosen]
            g = grid(task, chosen, _images(dataset, chosen), per_row=len(worst), sample_labels=sample_labels,
                     block_names=["worst", "best"])
            save(f"best_worst_{key}", grids.grid_figure(g, title(f"{task}: worst and best by {key}", task)))
    hist = {key: [r[key] for r in per_sample if r.get(key) is not None] for key in (RANKING[t] for t in tasks)}
    save("histograms", viz.histogram_figure(hist, title("per-sample metrics")))
    if run_dir is not None and (run_dir / "history.json").is_file():
        history = read_json(run_dir / "history.json")
        save("training_curves", viz.training_curves_figure(history, f"training · {run_dir.name}"))
    return figures

