"""`maskdepth report`: every run folder becomes a row; folders that are not runs fail clearly."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from maskdepth.cli import main
from maskdepth.core.errors import MaskdepthError
from maskdepth.pages import report as rep


def _metrics(iou, delta1):
    return {"iou": iou, "dice": iou + 0.01, "pixel_acc": 0.99, "delta1": delta1, "abs_rel": 1 - delta1,
            "rmse_over_std": 0.5, "loss": 0.3}


def _finished_run(path, *, model, iou, delta1, params, time_s, data="1k", ood=None):
    """A finished run; `ood` (iou, delta1) adds the ood split, "empty" records one without samples,
    None leaves it out (a run made before the split existed)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model": model, "task": "joint", "data": data, "size": 64,
                                                  "epochs": 3, "model_kwargs": {}}))
    metrics = {"model": model, "params": params, "task": "joint", "data": data, "epochs": 3, "train_time_s": time_s,
               "best_epoch": 2, "seen": _metrics(iou + 0.05, delta1 + 0.05), "unseen": _metrics(iou, delta1)}
    if ood == "empty":
        metrics |= {"ood": {}, "n_samples": {"seen": 8, "unseen": 8, "ood": 0}}
    elif ood is not None:
        metrics |= {"ood": _metrics(*ood) | {"sa_delta1": 0.7, "ordering": 0.9}}
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def _unfinished_run(path):
    """Interrupted after 2 of 5 epochs: only config.json and history.json."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model": "lean_unet", "task": "mask", "data": "1k", "epochs": 5}))
    epochs = [{"epoch": e, "lr": 0.01, "time_s": 10.0 * e, "train": {"loss": 1.0},
               "seen": {"iou": 0.3 * e}, "unseen": {"iou": 0.2 * e}} for e in (1, 2)]
    (path / "history.json").write_text(json.dumps({"epochs": epochs}))
    return path


@pytest.fixture
def stage_dir(tmp_path):
    stage = tmp_path / "outputs" / "1k"
    _finished_run(stage / "run-a", model="joint", iou=0.70, delta1=0.60, params=1_234_567, time_s=3725,
                  ood=(0.5, 0.4))
    _finished_run(stage / "run-b", model="resnet_unet", iou=0.90, delta1=0.80, params=456_000, time_s=95)
    _unfinished_run(stage / "run-c")
    (stage / "notes").mkdir()  # not a run: skipped when scanning a parent folder
    return stage


def test_report_lists_every_run_of_a_stage_folder(stage_dir):
    result = rep.report([stage_dir])
    assert [r["run"].rsplit("/", 1)[-1] for r in result.rows] == ["run-a", "run-b", "run-c"]
    lines = result.markdown.splitlines()
    table = [ln for ln in lines if ln.startswith("| `")]
    assert len(table) == 3
    assert "| IoU (seen / unseen / ood) |" in lines[0] and "| sa δ1 (seen / unseen / ood) |" in lines[0]
    assert "mIoU" not in lines[0]  # no run has a value for it: no column
    assert table[0].startswith("| `run-a` | joint | joint | 1.23M | 1k | 3 | 1h02m |")
    assert "| 0.750 / 0.700 / 0.500 |" in table[0]  # IoU seen / unseen / ood
    assert "| 0.650 / 0.600 / 0.400 |" in table[0]  # δ1 seen / unseen / ood
    assert "| – / – / 0.700 |" in table[0]  # sa δ1: only the ood split has it
    assert table[1].startswith("| `run-b` | resnet_unet | joint | 456k | 1k | 3 | 1m35s |")
    assert "| 0.950 / 0.900 / – |" in table[1]  # run-b predates the ood split
    # the interrupted run shows its last epoch, marked, with time summed from history
    assert table[2].startswith("| `run-c` | lean_unet | mask | – | 1k | 2* | 30s |")
    assert "| 0.600 / 0.400 / – |" in table[2] and "| – / – / – |" in table[2]
    assert "unfinished run" in result.markdown
    # files land in the runs' common folder
    assert result.files["md"] == stage_dir.resolve() / "report.md"
    assert result.markdown in result.files["md"].read_text()
    assert [r["unseen"]["iou"] for r in json.loads(result.files["json"].read_text())] == [0.70, 0.90, 0.40]
    width, _ = Image.open(result.files["png"]).size
    assert width <= 1600


def test_report_sorts_best_first(stage_dir, tmp_path):
    result = rep.report([stage_dir / "run-a", stage_dir / "run-b", stage_dir / "run-c"], tmp_path / "rep",
                        sort="unseen.iou")
    assert [r["unseen"]["iou"] for r in result.rows] == [0.90, 0.70, 0.40]
    by_abs_rel = rep.report([stage_dir], write=False, sort="unseen.abs_rel")  # lower first; missing last
    assert [r["unseen"]["abs_rel"] for r in by_abs_rel.rows] == [pytest.approx(0.2), pytest.approx(0.4), None]
    by_ood = rep.report([stage_dir], write=False, sort="ood.iou")
    assert [r["ood"]["iou"] for r in by_ood.rows] == [0.5, None, None]
    with pytest.raises(MaskdepthError, match="sort='iou'"):
        rep.report([stage_dir], write=False, sort="iou")
    with pytest.raises(MaskdepthError, match="sort='seen.rmse'.*one of its columns"):
        rep.report([stage_dir], write=False, sort="seen.rmse")


def test_folder_that_is_not_a_run_fails_naming_it(tmp_path, stage_dir):
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    (empty / "config.json").write_text("{}")  # config alone is not a run
    with pytest.raises(MaskdepthError, match="not-a-run.*not a run folder"):
        rep.report([stage_dir / "run-a", empty])
    with pytest.raises(MaskdepthError, match="missing.*no such folder"):
        rep.report([tmp_path / "missing"])
    with pytest.raises(MaskdepthError, match="not a run folder"):
        rep.summarize_run(stage_dir / "notes")


def test_cli_report(stage_dir, tmp_path, capsys):
    assert main(["report", str(stage_dir / "run-a"), str(stage_dir / "run-b"), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "| `run-a` |" in out and "| `run-b` |" in out and "run-c" not in out
    assert (tmp_path / "r" / "report.png").is_file()
    assert main(["report", str(stage_dir / "notes")]) == 2
    err = capsys.readouterr().err
    assert "maskdepth report: error:" in err and "notes" in err


def test_metrics_markdown_summarises_a_finished_run(stage_dir):
    metrics = json.loads((stage_dir / "run-b" / "metrics.json").read_text())
    text = rep.metrics_markdown(metrics)
    assert text.startswith("**resnet_unet** (456k params, task joint) on 1k: 3 epochs in 1m35s, best epoch 2")
    lines = text.splitlines()
    assert "| split | IoU | Dice | δ1 | AbsRel | RMSE/std |" in lines
    rows = [ln for ln in lines if ln.startswith(("| seen", "| unseen", "| ood"))]
    assert rows == ["| seen | 0.950 | 0.960 | 0.850 | 0.150 | 0.500 |",
                    "| unseen | 0.900 | 0.910 | 0.800 | 0.200 | 0.500 |"]  # no ood entry: no ood row


def test_metrics_markdown_with_ood_numbers_and_with_an_empty_ood_split(tmp_path):
    with_ood = _finished_run(tmp_path / "a", model="joint", iou=0.9, delta1=0.8, params=1000, time_s=5, ood=(0.6, 0.5))
    text = rep.metrics_markdown(json.loads((with_ood / "metrics.json").read_text()))
    assert "| ood | 0.600 | 0.610 | 0.500 | 0.700 | 0.500 | 0.500 | 0.900 |" in text.splitlines()
    assert "| split | IoU | Dice | δ1 | sa δ1 | AbsRel | RMSE/std | ordering |" in text.splitlines()
    empty = _finished_run(tmp_path / "b", model="joint", iou=0.9, delta1=0.8, params=1000, time_s=5, ood="empty")
    text = rep.metrics_markdown(json.loads((empty / "metrics.json").read_text()))
    assert "| ood | no ood samples | | | | |" in text.splitlines()
    report = rep.report([empty], write=False)
    assert "/ – |" in report.markdown
