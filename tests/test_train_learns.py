"""The trainer learns: the other training tests compare the code with itself (a resumed run with
an uninterrupted one, rank 0 with rank 1) or check ranges, which a trainer that never steps its
optimizer would pass. This one trains a narrow model for 120 steps on the playground at 32 px
(seconds) and checks what only learning gives."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from maskdepth.metrics import is_better
from maskdepth.train import TrainConfig, train

LEARN = dict(data="playground", size=32, batch_size=4, val_batch_size=16, epochs=20, lr=3e-3, schedule="constant",
             augment=False, progress_bar=False, tensorboard=False, model_kwargs={"base_channels": 8},
             best_metric="seen.iou")


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    cfg = TrainConfig.from_mapping({**LEARN, "out_dir": str(tmp_path_factory.mktemp("learns") / "run")})
    metrics = train(cfg)
    run = Path(cfg.out_dir)
    history = json.loads((run / "history.json").read_text())["epochs"]
    return run, metrics, history


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def test_the_training_loss_falls_clearly(learned):
    _, _, history = learned
    assert len(history) == LEARN["epochs"]
    for key in ("loss", "mask", "depth"):  # the total and each task's own part
        losses = [record["train"][key] for record in history]
        first, last = _mean(losses[:5]), _mean(losses[-5:])
        assert last < 0.75 * first, (key, [round(x, 3) for x in losses])
    losses = [record["train"]["loss"] for record in history]
    assert _mean(losses[-5:]) < 0.7 * _mean(losses[:5]), [round(x, 3) for x in losses]


def test_seen_iou_beats_the_trivial_predictions(learned):
    """All background scores IoU 0; all foreground scores the foreground's share of the pixels."""
    from maskdepth.data import build_dataset

    _, metrics, _ = learned
    seen = build_dataset("playground", "seen", size=LEARN["size"])
    masks = torch.stack([seen[i]["mask"] for i in range(len(seen))])
    all_foreground_iou = float(masks.mean())
    assert 0.0 < all_foreground_iou < 0.5
    assert metrics["seen"]["iou"] > max(0.15, 1.5 * all_foreground_iou), (metrics["seen"]["iou"], all_foreground_iou)
    assert metrics["seen"]["delta1"] > 0.0


def test_best_epoch_is_the_best_of_the_history_by_the_configured_metric(learned):
    run, metrics, history = learned
    split, _, key = LEARN["best_metric"].partition(".")
    best = None
    for record in history:  # the first epoch that no later one beats (ties keep the earlier)
        value = record[split][key]
        if value is not None and math.isfinite(value) and is_better(value, None if best is None else best[1], key):
            best = (record["epoch"], value)
    assert metrics["best_metric"] == LEARN["best_metric"] and metrics["best_epoch"] == best[0]
    assert metrics["seen"][key] == max(r[split][key] for r in history)
    for s in ("seen", "unseen", "ood"):
        assert metrics[s] == history[best[0] - 1][s]
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] == best[0]


def test_validate_of_best_pt_reproduces_the_metrics_json_numbers(learned, tmp_path):
    """Training evaluates with the same loop as validate (`evaluation.run_split`, same memory
    format, same batches): re-scoring best.pt gives metrics.json's numbers exactly."""
    from maskdepth.checkpoint import load_checkpoint
    from maskdepth.validate import validate

    run, metrics, _ = learned
    assert load_checkpoint(run / "checkpoints" / "best.pt")["epoch"] == metrics["best_epoch"]
    for split in ("seen", "unseen", "ood"):
        again = validate(run, split=split, out_dir=tmp_path / split, batch_size=LEARN["val_batch_size"],
                         figures=False, save_predictions=False, progress_bar=False)
        assert again["epoch"] == metrics["best_epoch"] and again["n_samples"] == metrics["n_samples"][split]
        assert again["overall"] and set(again["overall"]) <= set(metrics[split])
        assert again["overall"] == {k: metrics[split][k] for k in again["overall"]}, split
