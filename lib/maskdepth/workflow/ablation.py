"""The recipe ablation: train a list of recipes on one stage and rank them on seen / unseen / ood.

A recipe is a name and a few `TrainConfig` overrides on top of the stage's training defaults
(`maskdepth.plan.stages`), so every row differs from the default only by what it names. Each
recipe trains into `out_dir/<name>/` (a finished recipe is read back, an interrupted one
resumes), and the results land in `ablation.json` and one markdown table, `ablation.md`:
mask IoU, metric and scale-aligned δ1 and ordering on each validation split, and seconds
per epoch. The 20-epoch proxy on the 1k stage ranks recipes the way the 45-epoch stage run
does (docs/recipes.md); run the winner as the stage itself before making it the default.
"""

from __future__ import annotations

import json
from pathlib import Path

from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import write_json, write_text
from maskdepth.core.runs import METRICS_FILE
from maskdepth.evaluation.tables import splits_cell, splits_header
from maskdepth.plan.stages import LEAN_RECIPE, VAL_SPLITS, get_stage

# What each row reports, per validation split (labels and formats: maskdepth.evaluation.metrics).
COLUMNS = ("iou", "delta1", "sa_delta1", "ordering")

# What `maskdepth run --notebook ablation` runs unless told otherwise: the stage default
# (`TrainConfig`'s defaults) against the changes the recipe issue measured around it
# (docs/recipes.md). Each value is a set of TrainConfig overrides.
DEFAULT_RECIPES: dict[str, dict] = {
    "default": {},
    "lean_random": LEAN_RECIPE,  # the previous default: lean encoder, random init
    "lite0_random": {"weights": "none", "encoder_lr": 1.0},  # the same encoder without ImageNet weights
    "encoder_lr_1": {"encoder_lr": 1.0},
    "plain_l1_depth": {"depth_loss": "l1"},
    "depth_weight_2": {"depth_weight": 2.0},
    "l1_msgrad": {"depth_loss": "l1_msgrad"},
    "l1_ssid": {"depth_loss": "l1_ssid"},
    "l1_ssi": {"depth_loss": "l1_ssi"},  # the previous default: no disparity term
    "object_weight_3": {"object_weight": 3.0},  # the object-region depth term (evaluation.losses)
    "mask_to_depth": {"model_kwargs": {"mask_to_depth": True}},
    "bg_fg_bg": {"input_mode": "bg_fg_bg"},
    # No full-resolution layer (the memory-bound part of a CPU step): the same widths at strides
    # 2..32, input folded 2x2 into channels, 2x2 output blocks. Faster to train than the default
    # on a CPU, but it orders depth worse on every split (docs/recipes.md, "Compute").
    "space_to_depth": {**LEAN_RECIPE,
                       "model_kwargs": {"encoder": "lean", "num_stages": 4, "base_channels": 32, "space_to_depth": 2}},
}


def recipe_config(name: str, overrides: dict, out_dir: Path, *, data: str, epochs: int, seed: int):
    """The stage's training defaults, then `overrides` (model_kwargs merged key by key)."""
    from maskdepth.training.config import TrainConfig

    defaults = dict(get_stage(data).train_defaults)
    overrides = dict(overrides)
    model_kwargs = {**defaults.pop("model_kwargs", {}), **overrides.pop("model_kwargs", {})}
    mapping = {**defaults, "data": data, "epochs": epochs, "seed": seed, "model_kwargs": model_kwargs,
               "out_dir": str(out_dir / name), "grid_every": 0, "tensorboard": False, "progress_bar": False,
               **overrides}
    try:
        return TrainConfig.from_mapping(mapping)
    except (TypeError, ValueError, MaskdepthError) as error:
        raise MaskdepthError(f"recipe {name!r}: {error}") from None


# Settings that may differ between a recipe's finished run and the same recipe asked again.
VOLATILE = ("resume", "progress_bar", "tensorboard", "grid_every", "workers", "device")


def _finished(name: str, cfg) -> dict | None:
    """The metrics of a finished run of this very recipe in cfg.out_dir, None when there is no run
    yet; a run there with other settings is refused rather than overwritten or mixed in."""
    run = Path(cfg.out_dir)
    saved = run / "config.json"
    if not saved.is_file():
        return None
    old = {k: v for k, v in json.loads(saved.read_text()).items() if k not in VOLATILE}
    new = {k: v for k, v in json.loads(json.dumps(cfg.to_dict())).items() if k not in VOLATILE}
    if old != new:
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise MaskdepthError(f"recipe {name!r}: {run} holds a run with other settings ({', '.join(differ)}); "
                             f"rename the recipe or choose another out_dir")
    metrics = run / METRICS_FILE
    return json.loads(metrics.read_text()) if metrics.is_file() else None


def run_ablation(recipes: dict[str, dict] | None, out_dir, *, data: str = "1k", epochs: int = 20,
                 seed: int = 0) -> dict:
    """Train every recipe (skipping finished ones); returns {"results", "table"}."""
    from maskdepth.training.trainer import train

    recipes = dict(DEFAULT_RECIPES if recipes is None else recipes)
    if not recipes:
        raise MaskdepthError("recipes: give at least one recipe (name -> TrainConfig overrides)")
    out_dir = Path(out_dir)
    configs = {name: recipe_config(name, o, out_dir, data=data, epochs=epochs, seed=seed) for name, o in recipes.items()}
    results: dict[str, dict] = {}
    for name, cfg in configs.items():
        run = Path(cfg.out_dir)
        metrics = _finished(name, cfg)
        if metrics is None:
            cfg.resume = (run / "checkpoints" / "last.pt").is_file()
            metrics = train(cfg)
        results[name] = summarise(recipes[name], metrics)
        write_json(out_dir / "ablation.json", {"data": data, "epochs": epochs, "seed": seed, "results": results})
    table = results_table(results)
    write_text(out_dir / "ablation.md", table + "\n")
    return {"results": results, "table": table}


def summarise(overrides: dict, metrics: dict) -> dict:
    """The numbers a row shows: COLUMNS per split, time per epoch, the overrides."""
    row = {"overrides": overrides, "epochs": metrics.get("epochs"), "best_epoch": metrics.get("best_epoch"),
           "s_per_epoch": (metrics.get("train_time_s") or 0) / max(1, metrics.get("epochs") or 1)}
    for split in VAL_SPLITS:
        row[split] = {k: (metrics.get(split) or {}).get(k) for k in COLUMNS}
    return row


def results_table(results: dict) -> str:
    """One row per recipe; each metric cell reads seen / unseen / ood."""
    head = ["recipe", *(splits_header(k, VAL_SPLITS) for k in COLUMNS), "s / epoch"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, row in results.items():
        cells = [splits_cell(k, row, VAL_SPLITS) for k in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['s_per_epoch']:.1f} |")
    return "\n".join(lines)
