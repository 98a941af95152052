"""metrics.json of a validated split read back for notebooks and logs: a summary in Markdown or
one line, the figures of a notebook section and the breakdown table."""

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
