"""The README's "what to expect" table is the reference runs' numbers, written by a script."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from maskdepth.workflow.expectations import (
    BEGIN,
    END,
    REFERENCE_FILE,
    main,
    readme_block,
    render_table,
    summarize_run,
)

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_table_is_the_committed_reference():
    reference = json.loads((REPO / REFERENCE_FILE).read_text())
    assert reference["runs"], "no reference run"
    assert readme_block((REPO / "README.md").read_text()) == render_table(reference)


def _run(folder: Path, iou: float) -> Path:
    folder.mkdir(parents=True)
    split = {"iou": iou, "sa_delta1": 0.5, "delta1": 0.25, "ordering": 0.75}
    (folder / "metrics.json").write_text(json.dumps({s: split for s in ("seen", "unseen", "ood")}))
    (folder / "run.json").write_text(json.dumps({"stage": "1k", "seconds": 600.0, "gate": {"passed": True},
                                                 "params": {"size": 96, "epochs": 32},
                                                 "device": {"cuda_available": False, "cpu_threads": 2}}))
    (folder / "real").mkdir()
    scores = {"pair_ordering": 0.8, "sa_delta1": 0.6, "delta1": 0.4}
    (folder / "real" / "real.json").write_text(json.dumps({"photos": [
        {"name": "motorcycle", "model": scores, "baselines": {"ramp": scores}}]}))
    return folder


def test_regenerating_from_runs_rewrites_the_table_and_check_catches_drift(tmp_path, capsys):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "README.md").write_text(f"# x\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    run = _run(tmp_path / "run", iou=0.875)
    assert summarize_run(run)["splits"]["ood"]["iou"] == 0.875
    assert main(["--repo", str(repo), "--from", str(run)]) == 0
    readme = (repo / "README.md").read_text()
    assert "| 1k (96 px, 32 epochs) | 10.0 min | 0.88 / 0.88 / 0.88 |" in readme and readme.endswith("after\n")
    assert main(["--repo", str(repo), "--check"]) == 0
    (repo / "README.md").write_text(readme.replace("0.88 / 0.88 / 0.88", "0.99 / 0.88 / 0.88"))
    assert main(["--repo", str(repo), "--check"]) == 1
    assert "differs" in capsys.readouterr().err
    shutil.rmtree(run / "real")
    assert summarize_run(run)["real"] is None


def test_a_run_folder_that_is_not_a_finished_run_is_one_line(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(f"{BEGIN}\n{END}\n")
    assert main(["--repo", str(tmp_path), "--from", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "not a finished stage run" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(Exception, match="no <!-- expectations"):
        readme_block("no markers here")
