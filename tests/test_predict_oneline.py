"""predict in one line: the checkpoint found from a run, a stage folder or outputs/, a default
output folder, and a loaded predictor reused across calls."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import maskdepth
from maskdepth.cli import main
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.runs import resolve_checkpoint
from maskdepth.models import create_model
from maskdepth.models.checkpoint import save_checkpoint


def _run(folder, *, status="ok", passed=True, age=0):
    """A finished run folder with a tiny checkpoint; `age` seconds older than now."""
    (folder / "checkpoints").mkdir(parents=True)
    save_checkpoint(folder / "checkpoints" / "best.pt", create_model("joint", encoder="lean", context=False, base_channels=8),
                    info={"task": "joint", "input_mode": "fg_bg", "input_size": [64, 64]})
    (folder / "config.json").write_text("{}")
    (folder / "metrics.json").write_text("{}")
    (folder / "run.json").write_text(json.dumps({"status": status, "gate": {"passed": passed}}))
    stamp = 1_700_000_000 - age
    os.utime(folder, (stamp, stamp))
    return folder / "checkpoints" / "best.pt"


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    root = tmp_path / "outputs"
    monkeypatch.setenv("MASKDEPTH_OUTPUTS", str(root))
    torch.manual_seed(0)
    old_1k = _run(root / "1k" / "20260101-a", age=300)
    _run(root / "1k" / "20260102-b", passed=False, age=200)  # newer, but failed its gate
    _run(root / "1k" / "20260103-c", status="failed", age=100)
    _run(root / "playground" / "20260104-d", age=0)  # newest of all, but a smaller stage
    return root, old_1k


def test_checkpoint_from_a_stage_folder_or_the_outputs_is_the_newest_passing_run(outputs, tmp_path):
    root, old_1k = outputs
    assert resolve_checkpoint(root / "1k") == old_1k
    assert resolve_checkpoint(None) == old_1k  # the largest stage with a passing run
    assert resolve_checkpoint(old_1k.parent.parent) == old_1k
    (tmp_path / "empty").mkdir()
    with pytest.raises(MaskdepthError, match="no passing run inside"):
        resolve_checkpoint(tmp_path / "empty")


def test_predict_with_no_checkpoint_and_no_out(outputs, tmp_path, monkeypatch, capsys):
    root, old_1k = outputs
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((30, 45, 3), np.uint8)).save(tmp_path / "photo.png")
    assert main(["predict", "photo.png", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint: {old_1k}" in out
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == [
        "photo_depth.png", "photo_depth_color.png", "photo_mask.png", "photo_preview.png", "predictions.json"]


def test_a_loaded_predictor_is_reused(outputs):
    _, old_1k = outputs
    predictor = maskdepth.load(old_1k, device="cpu")
    reads = []
    original = torch.load
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "load", lambda *a, **k: reads.append(a) or original(*a, **k))
        images = [np.full((20 + i, 30, 3), 40 * i, np.uint8) for i in range(3)]
        first = predictor.predict(images, show_progress=False)
        again = predictor.predict(Image.fromarray(images[1]), show_progress=False)
    assert reads == []  # the checkpoint was read once, by load
    assert [r["depth"].shape for r in first] == [(20, 30), (21, 30), (22, 30)]
    np.testing.assert_array_equal(again[0]["depth"], first[1]["depth"])


def test_latest_points_at_the_newest_run_as_a_link_or_a_file(outputs, monkeypatch):
    from maskdepth.core import runs

    root, old_1k = outputs
    run = old_1k.parent.parent
    latest = runs.point_latest(run)
    assert latest == root / "1k" / "latest" and latest.is_symlink()
    assert resolve_checkpoint(latest) == old_1k
    monkeypatch.setattr(os, "symlink", lambda *a, **k: (_ for _ in ()).throw(OSError("no links here")))
    newer = _run(root / "1k" / "20260105-e", age=0)
    latest = runs.point_latest(newer.parent.parent)
    assert not latest.is_symlink() and latest.read_text().strip() == "20260105-e"
    assert resolve_checkpoint(latest) == newer
    (root / "playground" / "latest").mkdir()  # a user's own folder of that name is never replaced
    runs.point_latest(root / "playground" / "20260104-d")
    assert (root / "playground" / "latest").is_dir()
