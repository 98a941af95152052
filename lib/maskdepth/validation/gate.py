"""The gate: the capstone's rule "only the promising changes go on", beside the stage table.

A stage's run passes when its validation metrics clear the stage's thresholds
(`maskdepth.plan.stages.Stage.gate`, keyed 'split.metric'): a minimum for a metric where higher is
better, a maximum where lower is better, per the catalogue in `maskdepth.evaluation.metrics`. A
threshold on a split the run had no samples in (e.g. `ood` of an imported dataset folder) is
skipped and says so. `1k` needs a passing playground run of the same idea (GATE_KEYS: the
model and loss settings) and `full` a passing 1k run, unless `--force`.
"""

from __future__ import annotations

import json
from pathlib import Path

from maskdepth.core import runs
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import read_json
from maskdepth.evaluation.catalogue import finite_or_none, format_value, higher_is_better, parse_split_metric
from maskdepth.plan.stages import get_stage, stage_defaults

# The settings that make two runs "the same idea" for the gate.
GATE_KEYS = ("model", "model_kwargs", "task", "input_mode", "mask_loss", "depth_loss", "mask_weight",
             "depth_weight", "object_weight", "uncertainty", "size")


def evaluate_gate(stage: str, metrics: dict) -> dict:
    """Compare a run's validation metrics (its metrics.json) with the stage's thresholds.

    Each threshold is keyed 'split.metric'; it is a minimum ("min") for a metric where higher
    is better and a maximum ("max") where lower is better. A missing or undefined value fails,
    except on a split the run had no samples in (metrics["n_samples"][split] == 0): that
    check is skipped (ok, with "skipped": "no <split> samples")."""
    checks = []
    counts = metrics.get("n_samples") or {}
    for key, threshold in get_stage(stage).gate.items():
        split, name = parse_split_metric(key)
        value = finite_or_none((metrics.get(split) or {}).get(name))
        bound = "min" if higher_is_better(name) else "max"
        check = {"metric": key, "value": value, bound: threshold}
        if value is None and counts.get(split) == 0:
            check.update(ok=True, skipped=f"no {split} samples")
        else:
            ok = value is not None and (value >= threshold if bound == "min" else value <= threshold)
            check["ok"] = bool(ok)
        checks.append(check)
    return {"passed": all(c["ok"] for c in checks), "checks": checks}


def describe_check(check: dict, sep: str = " ") -> str:
    """"unseen.iou 0.912 (min 0.88)"; "ood.iou skipped (no ood samples)"."""
    if check.get("skipped"):
        return f"{check['metric']} skipped ({check['skipped']})"
    bound = "min" if "min" in check else "max"
    name = check["metric"].partition(".")[2]
    return f"{check['metric']}{sep}{format_value(name, check['value'])} ({bound} {check[bound]})"


def gate_settings(params: dict) -> dict:
    """The settings that define an idea, with the training defaults filled in."""
    from maskdepth.core.params import field_defaults
    from maskdepth.training.config import TrainConfig

    defaults = field_defaults(TrainConfig)
    return {k: params.get(k, defaults.get(k)) for k in GATE_KEYS}


def same_idea(a: dict, b: dict) -> bool:
    return gate_settings(a) == gate_settings(b)


def find_passing_run(stage: str, params: dict, root: Path) -> Path | None:
    folder = root / stage
    if not folder.is_dir():
        return None
    for run_json in sorted(runs.run_files(folder), reverse=True):
        try:
            info = read_json(run_json)
        except (OSError, json.JSONDecodeError):
            continue
        if info.get("status") == "ok" and info.get("gate", {}).get("passed") and same_idea(info.get("params", {}), params):
            return run_json.parent
    return None


def check_prerequisite(stage: str, params: dict, root: Path, force: bool) -> dict:
    need = get_stage(stage).requires
    if need is None:
        return {"required": None, "decision": "no prerequisite"}
    found = find_passing_run(need, params, root)
    settings = ", ".join(f"{k}={v!r}" for k, v in gate_settings(params).items())
    if found:
        return {"required": need, "run": str(found), "decision": f"go: {need} run {found.name} passed with the same settings"}
    if force:
        return {"required": need, "run": None, "decision": f"forced: no passing {need} run with {settings}"}
    overrides = " ".join(f"-p {k} {json.dumps(params[k]) if not isinstance(params[k], str) else params[k]}"
                         for k in GATE_KEYS if k in params and params[k] != stage_defaults(need).get(k, params[k]))
    command = f"maskdepth run --stage {need} {overrides}".strip()
    raise MaskdepthError(
        f"stage {stage} needs a {need} run that passed its gate with the same settings ({settings}); none found "
        f"under {root / need}. Run `{command}` first, or pass --force."
    )
