"""The stand-alone notebooks run through papermill on the smallest parameters.

(The stage notebooks 00-03 are executed by tests/test_pipeline.py.)
"""

from __future__ import annotations

import json

import nbformat
import pytest

from maskdepth import bootstrap
from maskdepth.workflow.nbclean import is_clean
from maskdepth.workflow.notebooks import notebooks_dir
from maskdepth.workflow.pipeline import run_single_notebook

NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_are_thin_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert is_clean(nb), f"{path} has outputs"
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path} needs exactly one cell tagged 'parameters'"
    assert "run_dir" in tagged[0].source
    assert nb.metadata["kernelspec"]["name"] == "python3"  # what Colab and any Jupyter have
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == bootstrap.setup_cell(), "the first code cell is the set-up (bootstrap.sync_notebooks)"
    assert bootstrap.badge(f"notebooks/{path.name}") in nb.cells[0].source
    assert len(code) <= 8, "notebooks stay thin: logic belongs in lib/maskdepth"
    assert not any("def " in c.source or "class " in c.source for c in code), "no logic only in a notebook"


@pytest.mark.slow
def test_ablation_notebook(tmp_path):
    small = {"size": 32, "batch_size": 8, "model_kwargs": {"encoder": "lean", "context": False, "base_channels": 4, "max_channels": 16}}
    run = run_single_notebook("ablation", {"recipes": {"a": small, "b": {**small, "depth_loss": "l1_msgrad"}},
                                           "data": "playground", "epochs": 1},
                              name="abl", root=tmp_path, log=lambda _: None)
    results = json.loads((run / "ablation.json").read_text())["results"]
    assert set(results) == {"a", "b"} and all(0 <= r["ood"]["iou"] <= 1 for r in results.values())
    assert "| b |" in (run / "ablation.md").read_text()


@pytest.mark.slow
def test_loss_lab_notebook(tmp_path):
    run = run_single_notebook("loss_lab", {"losses": ["l1", "silog"], "epochs": 1, "lr": 0.01},
                              name="lab", root=tmp_path, log=lambda _: None)
    lab = json.loads((run / "loss_lab.json").read_text())
    assert set(lab["results"]) == {"l1", "silog"}
    for m in lab["results"].values():
        assert m["abs_rel"] > 0 and 0 <= m["delta1"] <= 1
    assert (run / "loss_lab_chart.png").is_file() and (run / "loss_lab.md").read_text().count("|") > 10
    executed = nbformat.read(run / "loss_lab.ipynb", as_version=4)
    assert any(o.get("output_type") == "display_data" for c in executed.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_playground_notebook(tmp_path):
    run = run_single_notebook("playground", {"epochs": 1}, name="pg", root=tmp_path, log=lambda _: None)
    assert (run / "train" / "checkpoints" / "best.pt").is_file()
    assert json.loads((run / "validation" / "metrics.json").read_text())["overall"]
    assert list((run / "validation").glob("*grid*.png"))


def test_two_runs_started_at_once_in_one_folder_each_talk_to_their_own_kernel(tmp_path):
    """Two `maskdepth run`s started together in one working folder (two ablations side by side): each
    kernel's sockets are its own, so both notebooks run, and no socket file is left in the folder."""
    import subprocess
    import sys

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell("x = 0", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import os\nprint('ran', x, os.getpid())")]
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    script = ("import sys\nfrom pathlib import Path\nfrom maskdepth.workflow.notebooks import execute\n"
              "execute(Path('tiny.ipynb'), Path(f'out{sys.argv[1]}.ipynb'), {'x': int(sys.argv[1])}, 120)\n")
    runs = [subprocess.Popen([sys.executable, "-c", script, str(i)], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for i in (1, 2)]
    logs = [run.communicate(timeout=300)[0] for run in runs]
    for i, (run, log) in enumerate(zip(runs, logs, strict=True), start=1):
        assert run.returncode == 0 and "Invalid Signature" not in log, log[-2000:]
        out = nbformat.read(tmp_path / f"out{i}.ipynb", as_version=4)
        assert out.cells[-1].outputs[0]["text"].startswith(f"ran {i} ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out1.ipynb", "out2.ipynb", "tiny.ipynb"]
