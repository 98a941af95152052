"""The metric catalogue, the one home of every metric's key, label, direction and task: training's
best checkpoint, validation, reports, figures, pages and the stage gates read it from here.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from maskdepth.core.errors import MaskdepthError

MASK_KEYS = ("iou", "dice", "pixel_acc")
MASK_IMAGE_KEYS = ("miou", "iou_small", "iou_medium", "iou_large", "iou_small_n", "iou_medium_n", "iou_large_n")
DEPTH_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "rmse_over_std")
SCALE_ALIGNED_KEYS = ("sa_abs_rel", "sa_rmse", "sa_delta1")
OBJECT_KEYS = ("obj_abs_rel", "obj_delta1")
ORDERING_KEYS = ("ordering", "ordering_n")
ORDER_PAIRS = 20_000  # pixel pairs drawn by pairwise_ordering
ORDER_TIE = 0.02  # ground-truth depths closer than this (relative) have no order and are not drawn
RELIEF_QUANTILES = (0.1, 0.9)  # the near and far depths whose ratio depth_relief compares
# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Metric:
    """What a metric key means. `higher_is_better` is None for counts and for a diagnostic whose
    right value is `target` (neither higher nor lower is better)."""

    key: str
    label: str
    higher_is_better: bool | None
    task: str  # "mask" | "depth" | "loss"
    description: str = ""
    fmt: str = ".3f"
    target: float | None = None

    def format(self, value) -> str:
        """The value for a table cell: "–" when missing or not finite."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "–"
        return format(int(value) if self.fmt == "d" else value, self.fmt)


CATALOGUE: dict[str, Metric] = {m.key: m for m in (
    Metric("loss", "loss", False, "loss", "the total validation loss (what training minimises)", ".4f"),
    Metric("mask", "mask loss", False, "loss", "the mask term of the loss", ".4f"),
    Metric("depth", "depth loss", False, "loss", "the depth term of the loss", ".4f"),
    Metric("iou", "IoU", True, "mask", "pooled IoU: TP / (TP + FP + FN) over every pixel of the split"),
    Metric("dice", "Dice", True, "mask", "pooled Dice: 2 TP / (2 TP + FP + FN)"),
    Metric("pixel_acc", "pixel acc", True, "mask", "fraction of pixels classified right"),
    Metric("miou", "mIoU", True, "mask", "mean over images of each image's IoU (empty vs empty scores 1)"),
    Metric("iou_small", "IoU <2%", True, "mask", "pooled IoU over images whose object covers < 2 % of the image"),
    Metric("iou_medium", "IoU 2–10%", True, "mask", "pooled IoU over images whose object covers 2–10 %"),
    Metric("iou_large", "IoU >10%", True, "mask", "pooled IoU over images whose object covers > 10 %"),
    Metric("iou_small_n", "n <2%", None, "mask", "images in the < 2 % bin", "d"),
    Metric("iou_medium_n", "n 2–10%", None, "mask", "images in the 2–10 % bin", "d"),
    Metric("iou_large_n", "n >10%", None, "mask", "images in the > 10 % bin", "d"),
    Metric("abs_rel", "AbsRel", False, "depth", "mean |pred − gt| / gt"),
    Metric("sq_rel", "SqRel", False, "depth", "mean (pred − gt)² / gt"),
    Metric("rmse", "RMSE (m)", False, "depth", "sqrt(mean (pred − gt)²), metres"),
    Metric("rmse_log", "RMSE log", False, "depth", "sqrt(mean (ln pred − ln gt)²)"),
    Metric("log10", "log10", False, "depth", "mean |log10 pred − log10 gt|"),
    Metric("delta1", "δ1", True, "depth", "fraction of pixels with max(pred/gt, gt/pred) < 1.25"),
    Metric("delta2", "δ2", True, "depth", "same with 1.25²"),
    Metric("delta3", "δ3", True, "depth", "same with 1.25³"),
    Metric("rmse_over_std", "RMSE/std", False, "depth", "RMSE / standard deviation of the ground truth"),
    Metric("sa_abs_rel", "sa AbsRel", False, "depth", "AbsRel after scaling each image by median(gt)/median(pred)"),
    Metric("sa_rmse", "sa RMSE (m)", False, "depth", "RMSE after per-image median scaling"),
    Metric("sa_delta1", "sa δ1", True, "depth", "δ1 after per-image median scaling"),
    Metric("obj_abs_rel", "obj AbsRel", False, "depth", "AbsRel inside the ground-truth mask"),
    Metric("obj_delta1", "obj δ1", True, "depth", "δ1 inside the ground-truth mask"),
    Metric("ordering", "ordering", True, "depth", "fraction of images whose object is predicted nearer than the "
                                                  "ground just behind its foot"),
    Metric("ordering_n", "ordering n", None, "depth", "images the ordering was counted on", "d"),
    Metric("pair_ordering", "pair ordering", True, "depth", f"fraction of {ORDER_PAIRS:,} random pixel pairs whose "
           f"depths differ by over {ORDER_TIE:.0%} ordered as the ground truth orders them (a tie predicted: half)"),
    Metric("relief", "relief", None, "depth",
           f"ln(q{RELIEF_QUANTILES[1] * 100:.0f} / q{RELIEF_QUANTILES[0] * 100:.0f}) of the predicted depths "
           "over the same of the ground truth's: 1 is the true spread, above 1 the scene is stretched (near "
           "things too near against far ones), below 1 flattened", ".2f", target=1.0),
)}

# The columns of tables that compare runs and splits (report, run summary, notebooks).
HEADLINE = ("iou", "miou", "dice", "delta1", "sa_delta1", "abs_rel", "sa_abs_rel", "rmse_over_std",
            "obj_delta1", "ordering")
# What a validation shows in full (metrics.json has every key).
DETAIL = (*MASK_KEYS, *MASK_IMAGE_KEYS, "abs_rel", "rmse", "delta1", "delta2", "delta3", "rmse_over_std",
          *SCALE_ALIGNED_KEYS, *OBJECT_KEYS, *ORDERING_KEYS)
# What the training curves plot, split by direction in the figure.
CURVE_KEYS = ("iou", "miou", "delta1", "sa_delta1", "ordering", "abs_rel", "sa_abs_rel", "rmse_over_std")


def get_metric(key: str) -> Metric:
    try:
        return CATALOGUE[key]
    except KeyError:
        raise MaskdepthError(f"unknown metric {key!r}; known: {', '.join(CATALOGUE)}") from None


def label(key: str) -> str:
    """The column/axis title of a key (the key itself when it is not in the catalogue)."""
    return CATALOGUE[key].label if key in CATALOGUE else key


def higher_is_better(key: str) -> bool:
    """Direction of a score; an error for counts and unknown keys."""
    direction = get_metric(key).higher_is_better
    if direction is None:
        raise MaskdepthError(f"metric {key!r} is not a score (a count, or a diagnostic with a right value): "
                             "it has no better direction")
    return direction


def is_better(value: float, best: float | None, key: str) -> bool:
    """`value` improves on `best` for metric `key` (anything beats None)."""
    if best is None:
        return True
    return value > best if higher_is_better(key) else value < best


def task_keys(task: str, keys: Iterable[str] = HEADLINE) -> tuple[str, ...]:
    """The keys of `keys` that belong to `task` ("mask" or "depth")."""
    return tuple(k for k in keys if get_metric(k).task == task)


def finite_or_none(value) -> float | None:
    """A float, or None for a missing, NaN or infinite value (what JSON files hold)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def json_ready(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """{key: float or None}: NaN (an empty size bin, no valid pixel) becomes None."""
    return {k: finite_or_none(v) for k, v in metrics.items()}


def format_value(key: str, value) -> str:
    return CATALOGUE[key].format(value) if key in CATALOGUE else Metric(key, key, None, "").format(value)


def inline_summary(metrics: Mapping[str, float], keys: Iterable[str] = HEADLINE) -> str:
    """"IoU 0.912  δ1 0.455 ..." for the keys that have a finite value."""
    return "  ".join(f"{label(k)} {format_value(k, metrics[k])}" for k in keys
                     if finite_or_none(metrics.get(k)) is not None)


def parse_split_metric(text: str, splits: Sequence[str] | None = None, *, scores_only: bool = True) -> tuple[str, str]:
    """"seen.iou" -> ("seen", "iou"), checked against the validation splits and the catalogue."""
    from maskdepth.plan.stages import VAL_SPLITS

    splits = tuple(splits or VAL_SPLITS)
    split, _, key = str(text).partition(".")
    if split not in splits or key not in CATALOGUE or (scores_only and CATALOGUE[key].higher_is_better is None):
        raise MaskdepthError(
            f"{text!r}: expected '<{'|'.join(splits)}>.<metric>' with a metric such as loss, iou, miou, delta1, "
            f"sa_delta1, abs_rel or ordering (all: {', '.join(k for k, m in CATALOGUE.items() if m.higher_is_better is not None)})"
        )
    return split, key
