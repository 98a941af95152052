"""Colab / GCP quick-start (issue 17): 00_setup finds the checkout by its marker file, keeps the
runtime's torch and ipykernel, installs only what is missing, and makes maskdepth importable in
the running kernel; the repository URL is set in one place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from maskdepth import bootstrap
from maskdepth.pipeline import notebooks_dir

REPO = Path(__file__).resolve().parents[1]


def test_requirements_are_ranges_and_ipykernel_is_not_pinned():
    reqs = dict(bootstrap.parse_requirement(r) for r in bootstrap.requirements(REPO))
    assert reqs["torch"] >= (2, 2) and reqs["torchvision"] >= (0, 17)
    assert reqs["ipykernel"] is None  # a runtime's own ipykernel (Colab pins one) is never replaced
    assert bootstrap.version_tuple("2.5.1+cu121") == (2, 5, 1) and bootstrap.version_tuple("0.20.0rc1") == (0, 20, 0)
    assert bootstrap.parse_requirement("onnx[reference] >= 1.15 ; python_version<'4'") == ("onnx", (1, 15))


def test_only_missing_requirements_are_installed_and_the_runtime_keeps_its_versions():
    runtime = {"torch": "2.5.1+cu121", "torchvision": "0.20.1+cu121", "ipykernel": "5.5.6", "numpy": "1.23.0",
               "tqdm": "4.67.1"}
    reqs = ["torch>=2.2", "torchvision>=0.17", "ipykernel", "numpy>=1.24", "tqdm>=4.66", "papermill>=2.5"]
    keep, install = bootstrap.plan(reqs, runtime.get)
    assert keep == {"torch": "2.5.1+cu121", "torchvision": "0.20.1+cu121", "ipykernel": "5.5.6", "tqdm": "4.67.1"}
    assert install == ["numpy>=1.24", "papermill>=2.5"]  # too old, missing
    seen = {}

    def fake_pip(cmd):
        seen["cmd"] = cmd
        seen["constraints"] = Path(cmd[cmd.index("-c") + 1]).read_text().splitlines()

    bootstrap.install_missing(install, keep, run=fake_pip)
    assert seen["cmd"][:4] == [sys.executable, "-m", "pip", "install"] and seen["cmd"][-2:] == install
    assert "torch==2.5.1+cu121" in seen["constraints"] and "ipykernel==5.5.6" in seen["constraints"]


def test_the_checkout_is_found_by_its_marker_not_by_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MASKDEPTH_REPO", raising=False)
    content = tmp_path / "content"  # Colab's working folder, the clone beside other folders
    (content / "sample_data").mkdir(parents=True)
    (content / "maskdepth").symlink_to(REPO, target_is_directory=True)
    assert bootstrap.find_repo(content) == REPO
    assert bootstrap.find_repo(REPO / "notebooks") == REPO
    assert bootstrap.find_repo(tmp_path / "content" / "sample_data") is None
    monkeypatch.setenv("MASKDEPTH_REPO", str(REPO))
    assert bootstrap.find_repo(tmp_path) == REPO


def test_the_repository_url_is_set_in_one_place(tmp_path):
    readme = (REPO / "README.md").read_text()
    assert bootstrap.colab_url() in readme and f"git clone {bootstrap.REPO_URL}" in readme
    assert bootstrap.colab_url().endswith("/blob/main/notebooks/00_setup.ipynb")
    setup = nbformat.read(notebooks_dir() / "00_setup.ipynb", as_version=4)
    (params,) = [c for c in setup.cells if "parameters" in c.metadata.get("tags", [])]
    assert f'repo_url = "{bootstrap.REPO_URL}"' in params.source
    copy = tmp_path / "repo"
    for rel in ("README.md", "notebooks/00_setup.ipynb", "lib/maskdepth/bootstrap.py"):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_text((REPO / rel).read_text())
    changed = bootstrap.set_repo_url("https://github.com/someone/maskdepth-fork.git", copy)
    assert len(changed) == 3
    for rel in ("README.md", "notebooks/00_setup.ipynb", "lib/maskdepth/bootstrap.py"):
        text = (copy / rel).read_text()
        assert bootstrap.REPO_URL not in text and "https://github.com/someone/maskdepth-fork" in text, rel
    assert "colab.research.google.com/github/someone/maskdepth-fork/blob/main/notebooks/00_setup.ipynb" in (
        copy / "README.md").read_text()
    with pytest.raises(ValueError):
        bootstrap.set_repo_url("not a url", copy)


def _colab_like_runtime(tmp_path: Path) -> tuple[Path, dict]:
    """A Python that has torch, torchvision, ipykernel, papermill... (this venv's site-packages on
    its path, as a runtime's preinstalled packages) but not maskdepth (the venv's editable-install
    .pth is not processed there), with a Jupyter kernel of its own."""
    runtime = tmp_path / "runtime"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(runtime)], check=True)
    python = runtime / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    import sysconfig

    Path(purelib, "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    kernels = tmp_path / "jupyter" / "kernels" / "runtime"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "a runtime", "language": "python"}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MASKDEPTH_REPO")}
    env.update(JUPYTER_PATH=str(tmp_path / "jupyter"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter-user"),
               OMP_NUM_THREADS="1")
    check = subprocess.run([str(python), "-c", "import torch, papermill, ipykernel; import maskdepth"],
                           capture_output=True, text=True, env=env)
    assert "No module named 'maskdepth'" in check.stderr  # the runtime starts without maskdepth
    return python, env


@pytest.mark.slow
def test_setup_notebook_makes_maskdepth_importable_in_a_fresh_runtime_without_a_restart(tmp_path, monkeypatch):
    """Colab simulated: the working folder is outside the repo (the clone is a sub-folder), the
    runtime has torch but not maskdepth; 00_setup runs in one pass, then the same kernel imports
    maskdepth from the checkout, still with the runtime's torch, and `maskdepth run` has its kernel."""
    import papermill as pm
    import torch

    python, env = _colab_like_runtime(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    content = tmp_path / "content"
    (content / "sample_data").mkdir(parents=True)
    (content / "maskdepth").symlink_to(REPO, target_is_directory=True)
    nb = nbformat.read(notebooks_dir() / "00_setup.ipynb", as_version=4)
    after = nbformat.v4.new_code_cell(
        "import torch, maskdepth.train\n"
        "from maskdepth.bootstrap import kernel_installed\n"
        "print('TORCH', torch.__version__, torch.__file__)\n"
        "print('KERNEL', kernel_installed())")
    nb.cells.append(after)
    source = tmp_path / "setup_plus.ipynb"
    nbformat.write(nb, source)
    pm.execute_notebook(str(source), str(tmp_path / "out.ipynb"), kernel_name="runtime", cwd=str(content),
                        parameters={"show_tensorboard": False}, progress_bar=False)
    done = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in done.cells for o in c.get("outputs", []))
    assert f"maskdepth 0.1.0 from {REPO / 'lib' / 'maskdepth'}" in text
    assert "runtime keeps: torch " in text and "installing only what is missing" not in text
    assert f"TORCH {torch.__version__} {torch.__file__}" in text  # the preinstalled torch, still in use
    assert "registered the Jupyter kernel 'maskdepth'" in text and "KERNEL True" in text
    spec = json.loads((tmp_path / "jupyter-user" / "kernels" / "maskdepth" / "kernel.json").read_text())
    assert spec["argv"][0] == str(python)
    assert "runs go to" in text and ("GPU: " in text or "no GPU: " in text)


@pytest.mark.slow
def test_setup_notebook_then_runs_a_playground_stage_in_the_same_kernel(tmp_path, monkeypatch):
    """The whole Colab pass: 00_setup in a fresh runtime with then_run = "playground" (1 epoch) runs
    the stage from that kernel; its notebooks run in the `maskdepth` kernel 00_setup registered."""
    import papermill as pm

    python, env = _colab_like_runtime(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    content = tmp_path / "content"
    content.mkdir()
    (content / "maskdepth").symlink_to(REPO, target_is_directory=True)
    pm.execute_notebook(str(notebooks_dir() / "00_setup.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="runtime",
                        cwd=str(content), progress_bar=False,
                        parameters={"show_tensorboard": False, "then_run": "playground",
                                    "then_run_params": {"epochs": 1, "size": 32, "n_samples": 4}})
    runs = list((content / "outputs" / "playground").glob("*/run.json"))
    (run_json,) = runs
    info = json.loads(run_json.read_text())
    assert info["status"] == "ok" and [e["status"] for e in info["notebooks"]] == ["ok"] * 6
    setup = nbformat.read(run_json.parent / "notebooks" / "00_setup.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in setup.cells for o in c.get("outputs", []))
    assert f"maskdepth 0.1.0 from {REPO / 'lib' / 'maskdepth'}" in text  # the stage's kernels import the checkout
