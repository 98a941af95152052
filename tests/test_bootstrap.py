"""Colab / GCP quick-start (issues 17, 26): every notebook's first cell makes maskdepth importable
(a checkout found by its marker file, a wheel, the repository), keeps the runtime's torch and
ipykernel, installs only what is missing, and never ends in a traceback; the repository URL is
set in one place. The slow test simulates Colab: an empty venv with only torch preinstalled, a
copy of the repository outside this working folder, 02_train opened first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from maskdepth import bootstrap
from maskdepth.workflow.notebooks import notebooks_dir

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
    assert bootstrap.colab_url() in readme and bootstrap.badge("notebooks/00_setup.ipynb") in readme
    assert bootstrap.colab_url().endswith("/blob/main/notebooks/00_setup.ipynb")
    for path in sorted(notebooks_dir().glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert bootstrap.badge(f"notebooks/{path.name}") in nb.cells[0].source, path.name
        assert f"git+{bootstrap.REPO_URL}" in nb.cells[1].source, path.name  # the set-up cell's copy
    copy = tmp_path / "repo"
    rels = ["README.md", "lib/maskdepth/bootstrap.py", *(f"notebooks/{p.name}" for p in notebooks_dir().glob("*.ipynb"))]
    for rel in rels:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_text((REPO / rel).read_text())
    changed = bootstrap.set_repo_url("https://github.com/someone/maskdepth-fork.git", copy)
    assert len(changed) == len(rels)
    for rel in rels:
        text = (copy / rel).read_text()
        assert bootstrap.REPO_URL not in text and "https://github.com/someone/maskdepth-fork" in text, rel
    assert "colab.research.google.com/github/someone/maskdepth-fork/blob/main/notebooks/00_setup.ipynb" in (
        copy / "README.md").read_text()
    assert "colab.research.google.com/github/someone/maskdepth-fork/blob/main/notebooks/02_train.ipynb" in (
        copy / "notebooks" / "02_train.ipynb").read_text()
    assert bootstrap.sync_notebooks(copy, "https://github.com/someone/maskdepth-fork") == []  # already in sync
    with pytest.raises(ValueError):
        bootstrap.set_repo_url("not a url", copy)


def test_notebooks_are_in_sync_with_the_set_up_cell():
    assert not bootstrap.configured() or "/OWNER/" not in bootstrap.REPO_URL
    assert bootstrap.sync_notebooks(REPO) == [], "run python -m maskdepth.bootstrap --sync-notebooks"


def test_a_set_up_that_cannot_go_on_says_one_line_not_a_traceback(tmp_path):
    """The set-up cell where there is no maskdepth at all (no site-packages, an empty folder, no URL
    configured): one line on stderr, exit status 1, no traceback."""
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run([sys.executable, "-I", "-S", "-c", bootstrap.setup_cell()], cwd=empty, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip() == bootstrap.NOT_FOUND
    stopped = bootstrap.SetupStopped("SOURCE x.whl: no such file")
    assert stopped._render_traceback_() == ["maskdepth set-up stopped: SOURCE x.whl: no such file"]
    with pytest.raises(bootstrap.SetupStopped, match="no such file"):
        bootstrap.setup(str(tmp_path / "missing.whl"), log=lambda _: None)
    with pytest.raises(bootstrap.SetupStopped, match="not a maskdepth checkout"):
        bootstrap.setup(str(empty), log=lambda _: None)


def test_set_up_in_this_checkout_installs_nothing_and_says_where_from(monkeypatch):
    monkeypatch.delenv("MASKDEPTH_PIPELINE", raising=False)
    lines: list[str] = []

    def no_pip(cmd):
        raise AssertionError(f"nothing to install here, yet: {cmd}")

    report = bootstrap.setup("", drive=True, run=no_pip, log=lines.append)  # not Colab: drive changes nothing
    assert report["source"] == f"the checkout {REPO}" and report["installed"] == []
    assert lines[0].startswith(f"maskdepth 0.1.0 from the checkout {REPO}; keeps torch ")
    assert any(line.startswith("runs go to ") for line in lines)
    assert report["profile"]["machine"]["cpu_count"] >= 1 and ("GPU" in lines[-1])
    monkeypatch.setenv("MASKDEPTH_PIPELINE", "1")
    assert bootstrap.setup("", log=lines.append)["source"] == "the kernel of `maskdepth run`"


# -- Colab, simulated ------------------------------------------------------------------------
PREINSTALLED = ("torch", "torchvision", "ipykernel")


def _installed_closure(names) -> dict:
    """The installed distributions `names` need, requirements and their extras followed, by name."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict = {}
    done: set = set()
    todo = [(name, "") for name in names]
    while todo:
        name, extra = todo.pop()
        name = canonicalize_name(name)
        if (name, extra) in done:
            continue
        done.add((name, extra))
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a platform-only requirement this venv never installed
        found[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo += [(req.name, "")] + [(req.name, wanted) for wanted in req.extras]
    return found


def _base_runtime() -> Path:
    """A venv with only what a Colab image preinstalls that matters here: torch, torchvision and
    ipykernel with what they require, laid into its site-packages from this venv's installed files
    (their RECORDs, hard-linked where the file system allows): the same versions pip would give,
    without a 3 GB download that a busy disk or registry can fail. Built once per test session in the
    test cache, then copied by hard links for every test, never changed."""
    import sysconfig

    from maskdepth.core.resources import default_cache_dir

    base = default_cache_dir() / "colab-runtime"
    if (base / "ready").is_file():
        return base
    shutil.rmtree(base, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(base)], check=True)
    site = base / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    here = Path(sysconfig.get_path("purelib"))
    for dist in _installed_closure(PREINSTALLED).values():
        for rel in dist.files or []:
            src = Path(dist.locate_file(rel))
            if rel.parts[0] == ".." or not src.is_file() or here not in src.parents:
                continue  # scripts outside site-packages, caches never written
            dst = site / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
    (base / "ready").write_text(", ".join(PREINSTALLED) + "\n")
    return base


def _fresh_runtime(tmp_path: Path) -> tuple[Path, dict]:
    """A copy of the base runtime (its own venv: nothing shared with the test's), its Jupyter kernel,
    and the environment of a kernel that starts without maskdepth."""
    base = _base_runtime()
    runtime = tmp_path / "runtime"
    if subprocess.run(["cp", "-al", str(base), str(runtime)]).returncode != 0:
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.copytree(base, runtime, symlinks=True)
    python = runtime / "bin" / "python"
    kernels = tmp_path / "jupyter" / "kernels" / "runtime"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "a Colab-like runtime", "language": "python"}))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MASKDEPTH_REPO", "MASKDEPTH_PIPELINE", "VIRTUAL_ENV", "MASKDEPTH_OUTPUTS")}
    env.update(JUPYTER_PATH=str(tmp_path / "jupyter"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter-user"),
               OMP_NUM_THREADS="1", MASKDEPTH_CACHE=str(tmp_path / "cache"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    check = subprocess.run([str(python), "-c", "import torch, ipykernel\nimport maskdepth"], capture_output=True,
                           text=True, env=env)
    assert "No module named 'maskdepth'" in check.stderr  # the runtime starts with torch but without maskdepth
    missing = subprocess.run([str(python), "-c", "import papermill"], capture_output=True, text=True, env=env)
    assert "No module named 'papermill'" in missing.stderr  # nor its requirements: the set-up installs them
    return python, env


def _copy_repo(target: Path) -> Path:
    """This checkout's files, outside the working folder (no .git, no outputs, no caches)."""
    skip = shutil.ignore_patterns(".git", "outputs", ".venv", ".cache*", "__pycache__", "*.egg-info", "build")
    shutil.copytree(REPO, target, ignore=skip)
    return target


def _text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_colab_simulation_opens_02_train_first_in_a_fresh_runtime(tmp_path, monkeypatch):
    """Colab, simulated without faking pip: a fresh venv that has torch but neither maskdepth nor its
    requirements, the kernel working in `content/` with a copy of the repository in content/maskdepth
    (a clone beside the notebook), and 02_train opened first. Its set-up cell installs what is
    missing (keeping torch), trains, and a second notebook in a new kernel installs nothing."""
    import papermill as pm
    import torch

    python, env = _fresh_runtime(tmp_path)
    for key in ("PYTHONPATH", "MASKDEPTH_PIPELINE", "MASKDEPTH_OUTPUTS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    content = tmp_path / "content"
    repo = _copy_repo(content / "maskdepth")
    (content / "sample_data").mkdir()
    train_nb = nbformat.read(repo / "notebooks" / "02_train.ipynb", as_version=4)
    train_nb.cells.append(nbformat.v4.new_code_cell(
        "import torch, maskdepth\nprint('TORCH', torch.__version__, torch.__file__)\nprint('MASKDEPTH', maskdepth.__file__)"))
    opened = tmp_path / "02_train_as_opened.ipynb"
    nbformat.write(train_nb, opened)
    out_dir = content / "outputs" / "first"
    pm.execute_notebook(str(opened), str(tmp_path / "02_train_out.ipynb"), kernel_name="runtime", cwd=str(content),
                        progress_bar=False, parameters={"epochs": 1, "size": 32, "batch_size": 8, "val_batch_size": 8,
                                                        "out_dir": str(out_dir), "progress_bar": False})
    text = _text(tmp_path / "02_train_out.ipynb")
    assert f"maskdepth 0.1.0 from the checkout {repo} (found beside this notebook)" in text
    assert "installing what this runtime lacks: " in text and "papermill" in text
    version = torch.__version__.split("+")[0]  # the runtime's torch: this venv's version from the index
    assert f"keeps torch {version}" in text  # the runtime's torch is kept, not replaced
    assert f"TORCH {version}" in text and f"{tmp_path / 'runtime'}" in text.split("TORCH ")[1].splitlines()[0]
    assert f"MASKDEPTH {repo / 'lib' / 'maskdepth' / '__init__.py'}" in text
    assert "runs go to " in text and "Traceback" not in text
    assert (out_dir / "checkpoints" / "best.pt").is_file()
    # A new kernel (another notebook opened later): the set-up finds everything in place.
    pm.execute_notebook(str(repo / "notebooks" / "00_setup.ipynb"), str(tmp_path / "00_setup_out.ipynb"),
                        kernel_name="runtime", cwd=str(content), progress_bar=False,
                        parameters={"show_tensorboard": False})
    again = _text(tmp_path / "00_setup_out.ipynb")
    assert f"maskdepth 0.1.0 from the checkout {repo} (found beside this notebook)" in again
    assert "installing what this runtime lacks" not in again and "runs go to " in again and "no GPU: " in again
