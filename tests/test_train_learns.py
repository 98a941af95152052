"""The trainer learns: the other training tests compare the code with itself (a resumed run with
an uninterrupted one, rank 0 with rank 1) or check ranges, which a trainer that never steps its
optimizer would pass. This one trains a narrow model for 5 epochs (310 steps) on the 1k stage's
1000 training images at 32 px (seconds), picks its checkpoint on `seen` (the loss) and scores it on
the 200 `unseen` images, which neither training nor the selection looked at, against the same
network before its first step.

Margins, from six seeds (0-5) of exactly this run, on `unseen`, untrained -> trained:
  scale-aligned delta1  0.19-0.26 -> 0.39-0.46, gain +0.14 to +0.21
  scale-aligned AbsRel  0.71-0.81 -> 0.41-0.63, gain -0.08 to -0.38
  mask IoU              0.00-0.10 -> 0.27-0.38
With the depth output detached (the depth head gets no gradient, the rest trains; same six seeds)
the gains were -0.07 to -0.01 (sa delta1) and +0.03 to +0.64 (sa AbsRel, worse). The bars, +0.07
and -0.03, lie between the two: the test fails when depth stops learning and holds on every seed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from maskdepth.evaluation.catalogue import is_better
from maskdepth.training.config import TrainConfig
from maskdepth.training.trainer import Trainer, evaluate

# amp off: the untrained/trained margins were measured in float32 (auto would pick per CPU).
LEARN = dict(data="1k", size=32, batch_size=16, val_batch_size=100, epochs=5, lr=3e-3, schedule="constant",
             augment=False, amp="off", progress_bar=False, tensorboard=False, model_kwargs={"encoder": "lean", "context": False, "base_channels": 8},
             depth_loss="l1_ssi", best_metric="seen.loss")
SA_DELTA1_GAIN = 0.07  # trained minus untrained, unseen (higher is better)
SA_ABS_REL_GAIN = 0.03  # untrained minus trained, unseen (lower is better)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    cfg = TrainConfig.from_mapping({**LEARN, "out_dir": str(tmp_path_factory.mktemp("learns") / "run")})
    trainer = Trainer(cfg)
    untrained = evaluate(trainer.eval_model, trainer.val_loaders["unseen"], trainer.criterion, cfg, trainer.dev)
    metrics = trainer.fit()
    run = Path(cfg.out_dir)
    history = json.loads((run / "history.json").read_text())["epochs"]
    return run, metrics, history, untrained, trainer.val_sets["unseen"]


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def test_the_training_loss_falls_clearly(learned):
    """Last two epochs' mean against the first epoch's (already a mean over 62 learning steps).
    Six seeds: total 0.51-0.68x, mask 0.48-0.66x, depth 0.76-0.84x; with depth cut, depth 0.97-1.05x."""
    _, _, history, _, _ = learned
    assert len(history) == LEARN["epochs"]
    for key, factor in (("loss", 0.75), ("mask", 0.75), ("depth", 0.9)):  # the total and each task's own part
        losses = [record["train"][key] for record in history]
        assert _mean(losses[-2:]) < factor * losses[0], (key, [round(x, 3) for x in losses])


def test_held_out_depth_beats_the_untrained_network(learned):
    """Scored on `unseen` (checkpoint picked on `seen`): scale-aligned delta1 and AbsRel."""
    _, metrics, _, untrained, _ = learned
    trained = metrics["unseen"]
    summary = {k: (round(untrained[k], 3), round(trained[k], 3)) for k in ("sa_delta1", "sa_abs_rel", "iou")}
    assert trained["sa_delta1"] > untrained["sa_delta1"] + SA_DELTA1_GAIN, summary
    assert trained["sa_abs_rel"] < untrained["sa_abs_rel"] - SA_ABS_REL_GAIN, summary


def test_held_out_iou_beats_the_trivial_predictions(learned):
    """All background scores IoU 0; all foreground scores the foreground's share of the pixels."""
    _, metrics, _, untrained, unseen = learned
    masks = torch.stack([unseen[i]["mask"] for i in range(len(unseen))])
    all_foreground_iou = float(masks.mean())
    assert 0.0 < all_foreground_iou < 0.5
    bar = max(0.2, 1.5 * all_foreground_iou, untrained["iou"] + 0.15)
    assert metrics["unseen"]["iou"] > bar, (metrics["unseen"]["iou"], all_foreground_iou, untrained["iou"])


def test_best_epoch_is_the_best_of_the_history_by_the_configured_metric(learned):
    run, metrics, history, _, _ = learned
    split, _, key = LEARN["best_metric"].partition(".")
    best = None
    for record in history:  # the first epoch that no later one beats (ties keep the earlier)
        value = record[split][key]
        if value is not None and math.isfinite(value) and is_better(value, None if best is None else best[1], key):
            best = (record["epoch"], value)
    assert metrics["best_metric"] == LEARN["best_metric"] and metrics["best_epoch"] == best[0]
    assert metrics["seen"][key] == min(r[split][key] for r in history)  # a loss: lower is better
    for s in ("seen", "unseen", "ood"):
        assert metrics[s] == history[best[0] - 1][s]
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] == best[0]


def test_validate_of_best_pt_reproduces_the_metrics_json_numbers(learned, tmp_path):
    """Training evaluates with the same loop as validate (`evaluation.run_split`, same memory
    format, same batches): re-scoring best.pt with one plain view (no test-time augmentation,
    which training's per-epoch evaluation does not use) gives metrics.json's numbers exactly."""
    from maskdepth.models.checkpoint import load_checkpoint
    from maskdepth.validation.validate import validate

    run, metrics, _, _, _ = learned
    assert load_checkpoint(run / "checkpoints" / "best.pt")["epoch"] == metrics["best_epoch"]
    for split in ("seen", "unseen", "ood"):
        again = validate(run, split=split, out_dir=tmp_path / split, batch_size=LEARN["val_batch_size"], tta="none",
                         figures=False, save_predictions=False, progress_bar=False)
        assert again["epoch"] == metrics["best_epoch"] and again["n_samples"] == metrics["n_samples"][split]
        assert again["overall"] and set(again["overall"]) <= set(metrics[split])
        assert again["overall"] == {k: metrics[split][k] for k in again["overall"]}, split
