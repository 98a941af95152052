"""The loss lab: the capstone's controlled experiment, one depth model per depth loss.

Every loss trains the same model with the same data, seed, epochs and lr, so the
depth metrics that come out differ only by the loss. Results: `loss_lab.json`, a markdown
table, a comparison chart and one GT/prediction grid per loss in the lab's folder.
"""

from __future__ import annotations

from pathlib import Path

from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import write_json, write_text
from maskdepth.evaluation.catalogue import higher_is_better, label
from maskdepth.evaluation.tables import markdown_table

# Compared depth metrics (labels and directions: the catalogue in maskdepth.evaluation.metrics). The
# scale-aligned δ1 separates a loss that learns structure from one that also learns scale.
COMPARED = ("abs_rel", "rmse", "rmse_over_std", "delta1", "sa_delta1")


def run_loss_lab(
    losses,
    out_dir,
    *,
    model: str = "lean_unet",
    epochs: int = 200,
    lr: float = 0.01,
    data: str = "playground",
    split: str = "seen",
    seed: int = 0,
    batch_size: int = 8,
    size: int = 64,
    n_samples: int = 8,
) -> dict:
    """Train one depth model per loss name; returns {"results", "table", "chart", "grids"}."""
    from maskdepth.evaluation.losses import DEPTH_LOSSES
    from maskdepth.training.config import TrainConfig
    from maskdepth.training.trainer import train
    from maskdepth.validation.validate import validate

    losses = list(losses)
    unknown = [name for name in losses if name not in DEPTH_LOSSES]
    if unknown or not losses:
        raise MaskdepthError(f"losses={losses!r}: choose from {', '.join(DEPTH_LOSSES)}")
    out_dir = Path(out_dir)
    results: dict[str, dict] = {}
    grids: dict[str, str] = {}
    for name in losses:
        run = out_dir / name
        cfg = TrainConfig(
            data=data, out_dir=str(run), model=model, task="depth", depth_loss=name, epochs=epochs, lr=lr,
            seed=seed, batch_size=batch_size, size=size, optimizer="adam", schedule="constant",
            best_metric="seen.abs_rel", grid_every=0, progress_bar=False,
            resume=(run / "checkpoints" / "last.pt").exists(),
        )
        metrics = train(cfg)
        results[name] = {"train_time_s": metrics["train_time_s"], **metrics[split]}
        val = validate(run / "checkpoints" / "best.pt", split=split, out_dir=run / "validation", n_samples=n_samples)
        grid = next(iter(sorted((run / "validation").glob("*depth*grid*.png"))), None)
        if grid is not None:
            grids[name] = str(grid)
        results[name]["validation"] = {k: val["overall"].get(k) for k in COMPARED}
    table = results_table(results, split)
    chart = out_dir / "loss_lab_chart.png"
    comparison_chart(results, chart, title=f"Depth losses, {model}, {epochs} epochs, lr {lr}, {data} ({split})")
    write_json(out_dir / "loss_lab.json", {"model": model, "epochs": epochs, "lr": lr, "data": data,
                                           "split": split, "seed": seed, "results": results})
    write_text(out_dir / "loss_lab.md", table + "\n")
    return {"results": results, "table": table, "chart": str(chart), "grids": grids}


def results_table(results: dict, split: str) -> str:
    def abs_rel(kv):
        value = kv[1].get("abs_rel")
        return float("inf") if value is None else value

    ranked = sorted(results.items(), key=abs_rel)
    table = markdown_table([(name, m) for name, m in ranked], COMPARED, first="loss", drop_empty_columns=False)
    lines = table.rstrip("\n").split("\n")
    lines[0] += " time (s) |"
    lines[1] += "---|"
    lines[2:] = [f"{line} {m.get('train_time_s', 0):.0f} |" for line, (_, m) in zip(lines[2:], ranked)]
    return "\n".join([f"Depth metrics on the {split} split, best first by {label('abs_rel')}.", "", *lines])


def comparison_chart(results: dict, path, title: str = "") -> None:
    """Bar chart: one panel per metric, one bar per loss."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from maskdepth.figures.viz import save_figure

    names = list(results)
    fig, axes = plt.subplots(1, len(COMPARED), figsize=(4 * len(COMPARED), 3.6), dpi=100)
    for ax, key in zip(axes, COMPARED):
        values = [float("nan") if results[n].get(key) is None else results[n][key] for n in names]
        ax.bar(range(len(names)), values, color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_title(f"{label(key)} ({'higher' if higher_is_better(key) else 'lower'} is better)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
