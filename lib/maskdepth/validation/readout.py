"""metrics.json of a validated split read back for notebooks and logs: a summary in Markdown or
one line, the figures of a notebook section and the breakdown table; and a run's metrics as its
recipe reads them (`run_metrics`: what the gate, summary, page and README report)."""

from __future__ import annotations

from pathlib import Path

from maskdepth.core.errors import MaskdepthError
from maskdepth.evaluation.catalogue import DETAIL, HEADLINE, inline_summary
from maskdepth.evaluation.tables import definitions_table, markdown_table

SECTIONS = {
    "mask": ("mask_grid.png", "best_worst_iou.png"),
    "depth": ("depth_grid.png", "best_worst_abs_rel.png"),
    "overview": ("histograms.png", "training_curves.png"),
}



def breakdown_markdown(metrics: dict) -> str | None:
    """The breakdown table that `validate` wrote beside metrics.json (None when there is none)."""
    name = metrics.get("breakdown")
    path = Path(metrics.get("out_dir", "")) / name if name else None
    return path.read_text() if path is not None and path.is_file() else None


def figure_paths(metrics: dict, section: str) -> list[Path]:
    """The PNGs a validation wrote for one notebook section: "mask", "depth" or "overview"."""
    if section not in SECTIONS:
        raise MaskdepthError(f"section={section!r}: choose one of {', '.join(SECTIONS)}")
    out = Path(metrics["out_dir"])
    return [out / name for name in SECTIONS[section] if name in metrics.get("figures", [])]


def summary_markdown(metrics: dict) -> str:
    """What was validated and how it scored, as markdown (for notebooks and summaries): the
    headline row, then every metric with its definition."""
    head = (f"**{metrics['model']}** ({metrics['task']}), `{metrics['checkpoint']}` (epoch {metrics['epoch']}), "
            f"split **{metrics['split']}** of {metrics['data']}: {metrics['n_samples']} samples at {metrics['size']} px, "
            f"test-time augmentation `{metrics.get('tta', 'none')}`")
    if not metrics["n_samples"]:
        return f"{head}\n\n*{metrics.get('note') or 'no samples'}: nothing to score.*\n"
    overall = metrics["overall"]
    return "\n".join([head, "", markdown_table([(metrics["split"], overall)], HEADLINE).rstrip(), "",
                      definitions_table(overall, DETAIL)])


def summary_line(metrics: dict) -> str:
    """One line for logs and notebooks: split, sample count and the headline metrics."""
    if not metrics["n_samples"]:
        return f"{metrics['split']}: {metrics.get('note') or 'no samples'} (skipped)"
    return f"{metrics['split']} ({metrics['n_samples']} samples): {inline_summary(metrics['overall'])}"


def run_metrics(run_dir: Path, metrics: dict | None) -> dict | None:
    """A run's metrics as its recipe reads them: training's metrics.json (the best epoch, scored on
    the plain network) with each split that `validate` scored on that same checkpoint and epoch
    (RUN/validation/<split>/metrics.json: the recipe's test-time augmentation) laid over it, so
    the gate and every report say what `maskdepth predict` gives. "read_as" maps each split to
    the reading its numbers come from ("plain": training's own)."""
    from maskdepth.core.fileio import read_json
    from maskdepth.core.runs import CHECKPOINT_NAMES
    from maskdepth.validation.validate import METRICS_FILE, VALIDATION_DIR

    if not metrics:
        return metrics
    out = dict(metrics)
    read_as = {}
    for split in [s for s in metrics.get("n_samples") or {} if isinstance(metrics.get(s), dict)]:
        path = Path(run_dir) / VALIDATION_DIR / split / METRICS_FILE
        read_as[split] = "plain"
        try:
            validated = read_json(path) if path.is_file() else None
        except (OSError, ValueError):
            validated = None
        if (validated and validated.get("n_samples") and validated.get("epoch") == metrics.get("best_epoch")
                and Path(str(validated.get("checkpoint", ""))).name == CHECKPOINT_NAMES[0]
                and validated.get("n_samples") == (metrics.get("n_samples") or {}).get(split)):
            out[split] = {**metrics[split], **{k: v for k, v in validated["overall"].items() if v is not None}}
            read_as[split] = validated.get("tta", "none")
    out["read_as"] = read_as
    return out
