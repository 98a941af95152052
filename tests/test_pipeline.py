"""The staged papermill pipeline: run folder contents, parameter errors, failing cells, the gate."""

from __future__ import annotations

import json

import nbformat
import pytest

from maskdepth.cli import main
from maskdepth.errors import MaskdepthError
from maskdepth.pipeline import (
    check_prerequisite,
    evaluate_gate,
    run_stage,
    stage_defaults,
)

FAST = {"epochs": 1, "size": 32, "n_samples": 4}


@pytest.fixture(scope="module")
def playground_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    lines: list[str] = []
    result = run_stage("playground", dict(FAST), name="smoke", root=root, log=lines.append)
    return result, root, lines


def test_playground_stage_end_to_end(playground_run):
    result, root, lines = playground_run
    run = result.run_dir
    assert run == root / "playground" / "smoke"
    names = ["00_setup", "01_create_data", "02_train", "03_validate_seen", "03_validate_unseen", "03_validate_ood"]
    for name in names:
        nb = nbformat.read(run / "notebooks" / f"{name}.ipynb", as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), name
        assert any(line.startswith(f"[playground] {name}.ipynb done in") for line in lines), name
    for rel in ("run.json", "summary.md", "metrics.json", "history.json", "config.json", "setup.json",
                "checkpoints/best.pt", "checkpoints/last.pt", "figures/training_curves.png"):
        assert (run / rel).is_file(), rel
    assert any((run / "tb").iterdir())
    for split in ("seen", "unseen", "ood"):
        assert (run / "validation" / split / "metrics.json").is_file()
        assert list((run / "validation" / split).glob("*.png"))
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "ok" and info["params"]["epochs"] == 1 and info["params"]["size"] == 32
    assert [nb["notebook"] for nb in info["notebooks"]] == [f"{n}.ipynb" for n in names]
    assert all(nb["seconds"] > 0 for nb in info["notebooks"])
    assert info["packages"]["torch"] and "start" in info and "end" in info
    assert info["device"]["torch"].startswith(info["packages"]["torch"]) and "cuda_available" in info["device"]
    assert info["prerequisite"]["decision"] == "no prerequisite"
    metrics = json.loads((run / "metrics.json").read_text())
    assert [c["metric"] for c in info["gate"]["checks"]] == ["seen.iou", "seen.delta1"]
    assert info["gate"]["checks"][0]["value"] == pytest.approx(metrics["seen"]["iou"])
    assert metrics["n_samples"] == {"seen": 8, "unseen": 8, "ood": 8}
    assert {"sa_delta1", "ordering", "obj_abs_rel", "miou", "iou_large"} <= set(metrics["ood"])
    summary = (run / "summary.md").read_text()
    assert "playground run `smoke`" in summary and "| unseen |" in summary and "| ood |" in summary
    assert "| split | IoU | mIoU |" in summary


def test_unknown_parameter_is_an_error(tmp_path):
    with pytest.raises(MaskdepthError, match="unknown parameter.*epochz"):
        run_stage("playground", {"epochz": 3}, root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing made
    assert main(["run", "--stage", "playground", "-p", "epochz", "3", "--outputs", str(tmp_path)]) == 2


def test_failing_cell_stops_the_stage_and_keeps_the_notebook(tmp_path, capsys):
    rc = main(["run", "--stage", "playground", "-p", "model", "no_such_model", "-p", "epochs", "1",
               "--outputs", str(tmp_path), "--name", "broken"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "02_train.ipynb failed in cell" in err and "no_such_model" in err
    run = tmp_path / "playground" / "broken"
    kept = nbformat.read(run / "notebooks" / "02_train.ipynb", as_version=4)
    assert any(o.get("output_type") == "error" for c in kept.cells for o in c.get("outputs", []))
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and info["notebooks"][-1]["status"] == "failed"
    assert not (run / "notebooks" / "03_validate_seen.ipynb").exists()


def test_gate_refuses_1k_without_a_passing_playground_run(tmp_path, capsys):
    params = stage_defaults("1k")
    with pytest.raises(MaskdepthError, match="needs a playground run.*maskdepth run --stage playground"):
        check_prerequisite("1k", params, tmp_path, force=False)
    forced = check_prerequisite("1k", params, tmp_path, force=True)
    assert forced["decision"].startswith("forced")
    assert main(["run", "--stage", "1k", "--outputs", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err


def test_gate_accepts_a_passing_run_with_the_same_settings(playground_run, tmp_path):
    result, root, _ = playground_run
    params = stage_defaults("1k") | {"size": 32}
    info = json.loads((result.run_dir / "run.json").read_text())
    if not info["gate"]["passed"]:  # one epoch rarely passes: fabricate a passing copy of the run
        fake = root / "playground" / "passing"
        fake.mkdir()
        info["gate"]["passed"] = True
        (fake / "run.json").write_text(json.dumps(info))
    decision = check_prerequisite("1k", params, root, force=False)
    assert decision["decision"].startswith("go")
    with pytest.raises(MaskdepthError):  # a different model is another idea: no go
        check_prerequisite("1k", params | {"model": "lean_unet", "task": "mask"}, root, force=False)


def test_evaluate_gate_thresholds():
    good = {"unseen": {"iou": 0.95}, "seen": {"delta1": 0.85}, "ood": {"iou": 0.6}}
    passed = evaluate_gate("1k", good)
    assert passed["passed"] and [c["metric"] for c in passed["checks"]] == ["unseen.iou", "seen.delta1", "ood.iou"]
    failed = evaluate_gate("1k", {**good, "seen": {"delta1": 0.5}})
    assert not failed["passed"] and [c["ok"] for c in failed["checks"]] == [True, False, True]
    assert not evaluate_gate("1k", {})["passed"]
    # The 1k gate asks for an OOD number: a run without one (made before the split) does not pass.
    assert not evaluate_gate("1k", {"unseen": {"iou": 0.95}, "seen": {"delta1": 0.85}})["passed"]
    assert not evaluate_gate("1k", {**good, "ood": {"iou": None}})["passed"]


def test_evaluate_gate_at_the_boundary_skips_empty_splits_and_caps_lower_is_better(monkeypatch):
    import dataclasses

    from maskdepth import stages

    threshold = stages.get_stage("1k").gate["ood.iou"]
    base = {"unseen": {"iou": 0.95}, "seen": {"delta1": 0.85}}
    assert evaluate_gate("1k", {**base, "ood": {"iou": threshold}})["passed"]
    assert not evaluate_gate("1k", {**base, "ood": {"iou": threshold - 1e-6}})["passed"]
    # A dataset without ood samples (an import): the ood check is skipped and says why.
    skipped = evaluate_gate("1k", {**base, "ood": {}, "n_samples": {"seen": 5, "unseen": 5, "ood": 0}})
    assert skipped["passed"] and skipped["checks"][2]["skipped"] == "no ood samples"
    from maskdepth.pipeline import describe_check

    assert describe_check(skipped["checks"][2]) == "ood.iou skipped (no ood samples)"
    assert describe_check(skipped["checks"][0]) == "unseen.iou 0.950 (min 0.88)"
    # A lower-is-better metric is a maximum.
    stage = dataclasses.replace(stages.get_stage("1k"), gate={"ood.sa_abs_rel": 0.2})
    monkeypatch.setitem(stages.STAGES, "1k", stage)
    capped = evaluate_gate("1k", {"ood": {"sa_abs_rel": 0.2}})
    assert capped["passed"] and capped["checks"][0]["max"] == 0.2
    assert not evaluate_gate("1k", {"ood": {"sa_abs_rel": 0.21}})["passed"]


def test_full_stage_on_cpu_needs_force(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["run", "--stage", "full", "--outputs", str(tmp_path)]) == 3
    assert "Pass --force" in capsys.readouterr().err


def test_params_file_and_stage_defaults(tmp_path):
    assert stage_defaults("1k")["data"] == "1k"
    bad = tmp_path / "p.yaml"
    bad.write_text("- not a mapping\n")
    assert main(["run", "--stage", "playground", "-f", str(bad), "--outputs", str(tmp_path)]) == 2
    assert main(["run", "--stage", "playground", "-f", str(tmp_path / "missing.yaml")]) == 2



def test_stage_runs_on_a_dataset_folder(tmp_path):
    from maskdepth.data.materialize import materialize

    folder = tmp_path / "my_data"
    materialize("playground", folder, fmt="folders", size=32)
    result = run_stage("playground", {"data": str(folder), **FAST}, name="own-data", root=tmp_path / "out",
                       log=lambda _: None)
    run = result.run_dir
    assert run == tmp_path / "out" / "playground" / "own-data"
    assert json.loads((run / "metrics.json").read_text())["data"] == str(folder)
    assert json.loads((run / "data.json").read_text())["data"] == str(folder)
    created = nbformat.read(run / "notebooks" / "01_create_data.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in created.cells for o in c.get("outputs", []))
    assert f"dataset {folder}" in text
    assert (run / "figures" / "data_grid.png").is_file()
    unseen = json.loads((run / "validation" / "unseen" / "metrics.json").read_text())
    assert unseen["data"] == str(folder)
