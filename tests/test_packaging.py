"""Installable without a clone (issue 17): a wheel carries the notebooks and the data_manifests/
files `maskdepth run` needs, and the installed package finds them from any folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from maskdepth.core.resources import PACKAGED, SHIPPED, shipped_files

REPO = Path(__file__).resolve().parents[1]
NEEDED = {"notebooks/00_setup.ipynb", "notebooks/01_create_data.ipynb", "notebooks/02_train.ipynb",
          "notebooks/03_validate.ipynb", "notebooks/playground.ipynb", "notebooks/loss_lab.ipynb", "notebooks/ablation.ipynb",
          "data_manifests/spec.json", "data_manifests/playground.csv", "data_manifests/1k.csv",
          "data_manifests/README.md"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the sources (the checkout stays clean), installed into a folder."""
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints")
    for name in ("lib", *SHIPPED):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "wheel"), str(src)],
                   check=True, capture_output=True, text=True)
    (wheel,) = (tmp / "wheel").glob("maskdepth-*.whl")
    subprocess.run([*pip, "install", "-q", "--no-deps", "--target", str(tmp / "site"), str(wheel)],
                   check=True, capture_output=True, text=True)
    return wheel, tmp / "site"


def test_the_wheel_carries_every_file_maskdepth_run_needs(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    carried = {n.removeprefix(f"maskdepth/{PACKAGED}/") for n in names if n.startswith(f"maskdepth/{PACKAGED}/")}
    assert NEEDED <= carried
    assert carried == {str(p) for p in shipped_files(REPO)}  # what the checkout has, nothing else
    assert "maskdepth/workflow/pipeline.py" in names and "maskdepth/bootstrap.py" in names
    assert "maskdepth/training/config.py" in names and "maskdepth/datasets/samples.py" in names  # sub-packages ship



def _probe_installed(site, tmp_path, probe: str) -> list[str]:
    """Lines printed by `probe` run against the installed package only, from an empty folder."""
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKDEPTH_") or k == "MASKDEPTH_CACHE"}
    env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-c", probe], cwd=empty, env=env, capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()

def test_the_installed_package_finds_its_notebooks_and_manifests_from_any_folder(installed, tmp_path):
    _, site = installed
    probe = ("import json, maskdepth\n"
             "from maskdepth.workflow.notebooks import notebooks_dir\n"
             "from maskdepth.world.manifest import manifests_dir, load_manifest, verify_manifest\n"
             "print(json.dumps({'package': maskdepth.__file__, 'notebooks': str(notebooks_dir()),\n"
             "                  'manifests': str(manifests_dir()),\n"
             "                  'verified': verify_manifest(load_manifest('playground', verify=False))}))\n")
    found = json.loads(_probe_installed(site, tmp_path, probe)[-1])
    assert found["package"] == str(site / "maskdepth" / "__init__.py")
    assert found["notebooks"] == str(site / "maskdepth" / PACKAGED / "notebooks")
    assert found["manifests"] == str(site / "maskdepth" / PACKAGED / "data_manifests")
    assert found["verified"] is True  # the shipped spec.json is read and matches


def test_the_installed_package_carries_and_finds_the_page_templates(installed, tmp_path):
    """The jinja2 templates of the HTML pages (lib/maskdepth/pages/templates/) are package data:
    in the wheel, in the installed package, and found there by the page renderer."""
    wheel, site = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {n for n in names if n.startswith("maskdepth/pages/templates/")}
    checkout = {f"maskdepth/pages/templates/{p.name}" for p in (REPO / "lib/maskdepth/pages/templates").glob("*.html.j2")}
    assert "maskdepth/pages/templates/page.html.j2" in templates and templates == checkout
    assert (site / "maskdepth" / "pages" / "templates" / "run.html.j2").is_file()
    probe = ("from maskdepth.pages.html import ENV, render\n"
             "print(ENV.get_template('run.html.j2').filename)\n"
             "print(render('page.html.j2', 'a <title>').splitlines()[5])\n")
    out = _probe_installed(site, tmp_path, probe)
    assert out[-2] == str(site / "maskdepth" / "pages" / "templates" / "run.html.j2")
    assert out[-1] == "<title>a &lt;title&gt;</title>"

@pytest.mark.slow
def test_maskdepth_run_from_an_empty_folder_with_the_installed_package(installed, tmp_path):
    _, site = installed
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKDEPTH_") or k == "MASKDEPTH_CACHE"}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "maskdepth", "run", "--stage", "playground", "-p", "epochs", "1",
                           "-p", "size", "32", "-p", "n_samples", "4", "--name", "wheel"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    info = json.loads((tmp_path / "outputs" / "playground" / "wheel" / "run.json").read_text())
    assert info["status"] == "ok" and len(info["notebooks"]) == 6
    setup = json.loads((tmp_path / "outputs" / "playground" / "wheel" / "setup.json").read_text())
    assert setup["maskdepth"]
