"""Make a runtime that already has Python (and usually a CUDA torch) ready for maskdepth, in the
running kernel: Colab, GCP / Vertex AI notebooks, Kaggle, a rented GPU machine, a local Jupyter.

Every notebook starts with the same set-up cell (`SETUP_CELL`, kept equal by `sync_notebooks`): it
makes `maskdepth` importable (from `SOURCE`, as installed, the checkout around the notebook, or
`REPO_URL`), then `setup()` keeps what the runtime already satisfies (its CUDA torch), installs the
rest and never ends in a traceback. Standard library only: it runs before the requirements are
installed. `REPO_URL` is set here once; `--set-repo-url` rewrites its copies.
The order and the steps: docs/workflow.md, "Notebook set-up"."""

from __future__ import annotations

import glob
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

REPO_URL = "https://github.com/OWNER/maskdepth"  # the placeholder the owner replaces (see --set-repo-url)
BRANCH = "main"
MARKER = Path("lib") / "maskdepth" / "bootstrap.py"  # this file: found only at the root of a checkout
ARCHIVES = (".whl", ".tar.gz", ".zip")  # what pip installs as a SOURCE file
DRIVE = Path("/content/drive")  # where Colab mounts Google Drive
DRIVE_OUTPUTS = DRIVE / "MyDrive" / "maskdepth" / "outputs"  # the runs on Colab, unless DRIVE = False
PIPELINE_ENV = "MASKDEPTH_PIPELINE"  # "1" in the kernels `maskdepth run` starts (maskdepth.core.progress)


def colab_url(repo_url: str = REPO_URL, branch: str = BRANCH, notebook: str = "notebooks/00_setup.ipynb") -> str:
    """https://colab.research.google.com/github/OWNER/NAME/blob/BRANCH/notebooks/00_setup.ipynb"""
    path = re.sub(r"^https?://github\.com/", "", repo_url.rstrip("/")).removesuffix(".git")
    return f"https://colab.research.google.com/github/{path}/blob/{branch}/{notebook}"


def configured(repo_url: str = REPO_URL) -> bool:
    """False while REPO_URL is the placeholder: nothing is cloned or installed from it then."""
    return "/OWNER/" not in repo_url


def badge(notebook: str = "notebooks/00_setup.ipynb", repo_url: str = REPO_URL) -> str:
    """The "Open in Colab" badge (Markdown) of a notebook of the configured repository."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(repo_url, notebook=notebook)})")


def drive_places() -> list[Path]:
    """Folders of a mounted Google Drive where a checkout may sit (MyDrive and two levels below)."""
    mydrive = DRIVE / "MyDrive"
    if not mydrive.is_dir():
        return []
    return [mydrive, *(Path(p) for p in sorted(glob.glob(str(mydrive / "*")) + glob.glob(str(mydrive / "*" / "*"))))]


def find_repo(start: str | os.PathLike | None = None) -> Path | None:
    """The checkout: $MASKDEPTH_REPO, else `start` (default: the working folder), one of its parents
    or one of its sub-folders (Colab clones into /content/NAME while the kernel works in /content),
    else a folder of a mounted Google Drive (`drive_places`)."""
    here = Path(start or Path.cwd()).resolve()
    candidates = [os.environ.get("MASKDEPTH_REPO", ""), here, *here.parents]
    candidates += sorted(p for p in here.iterdir() if p.is_dir()) if here.is_dir() else []
    for place in candidates:
        if place and (Path(place) / MARKER).is_file():
            return Path(place).resolve()
    return next((p.resolve() for p in drive_places() if (p / MARKER).is_file()), None) if start is None else None


# -- requirements ----------------------------------------------------------------------------
RUNTIME_EXTRAS = ("pretrained", "real")  # what the default recipe and the real-photo check need


def requirements(repo: Path | None = None) -> list[str]:
    """[project] dependencies of the checkout's pyproject.toml, with those of RUNTIME_EXTRAS; with
    no checkout, those the installed maskdepth declares."""
    if repo is None:
        declared = importlib.metadata.requires("maskdepth") or []
        wanted = [r for r in declared if "extra ==" not in r or any(f'extra == "{e}"' in r for e in RUNTIME_EXTRAS)]
        return [r.split(";")[0].strip() for r in wanted]
    text = (Path(repo) / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python 3.10: the lists we need, read plainly
        names = ("dependencies", *RUNTIME_EXTRAS)
        blocks = [re.search(rf"^{name}\s*=\s*\[(.*?)\]", text, re.S | re.M) for name in names]
        return [req for block in blocks if block for req in re.findall(r"[\"']([^\"']+)[\"']", block.group(1))]
    project = tomllib.loads(text).get("project", {})
    extras = project.get("optional-dependencies", {})
    return list(project.get("dependencies", [])) + [req for name in RUNTIME_EXTRAS for req in extras.get(name, [])]


def parse_requirement(text: str) -> tuple[str, tuple[int, ...] | None]:
    """'torch>=2.2' -> ('torch', (2, 2)); 'ipykernel' -> ('ipykernel', None). Lower bounds only
    (the project's dependencies are ranges `>=`); markers and extras are ignored."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:>=\s*([0-9][^,;\s]*))?", text)
    if not match:
        raise ValueError(f"cannot read the requirement {text!r}")
    return match.group(1), version_tuple(match.group(2)) if match.group(2) else None


def version_tuple(version: str) -> tuple[int, ...]:
    """'2.5.1+cu121' -> (2, 5, 1); '0.20.0rc1' -> (0, 20, 0)."""
    parts = []
    for piece in re.split(r"[.+]", version):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def plan(reqs: Iterable[str], installed: Callable[[str], str | None] = installed_version) -> tuple[dict, list]:
    """({name: installed version} kept as they are, [requirements to install])."""
    keep, install = {}, []
    for req in reqs:
        name, minimum = parse_requirement(req)
        have = installed(name)
        if have is not None and (minimum is None or version_tuple(have) >= minimum):
            keep[name] = have
        else:
            install.append(req)
    return keep, install


def pip_command(install: list[str], constraints: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--quiet", "-c", str(constraints), *install]


def install_missing(install: list[str], keep: dict, run=subprocess.check_call) -> None:
    """pip install `install` with every kept package pinned to the version the runtime has."""
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "keep.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(keep.items())))
        run(pip_command(install, constraints))


# -- importable --------------------------------------------------------------------------------
def make_importable(repo: Path) -> bool:
    """Put the checkout's lib/ first on sys.path and PYTHONPATH (child processes); True if changed."""
    lib = str(Path(repo).resolve() / "lib")
    spec = importlib.util.find_spec("maskdepth") if "maskdepth" not in sys.modules else sys.modules["maskdepth"].__spec__
    origin = Path(spec.origin).resolve().parent.parent if spec and spec.origin else None
    changed = False
    if origin != Path(lib):
        if lib not in sys.path:
            sys.path.insert(0, lib)
        importlib.invalidate_caches()
        changed = True
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if lib not in paths and changed:
        os.environ["PYTHONPATH"] = os.pathsep.join([lib, *paths])
    return changed



# -- the set-up cell -------------------------------------------------------------------------
class SetupStopped(Exception):
    """A set-up that cannot go on: IPython shows its one line, not a traceback, and Run all stops."""

    def _render_traceback_(self) -> list[str]:
        return [f"maskdepth set-up stopped: {self}"]


NOT_FOUND = ("no maskdepth to set up: set SOURCE to a maskdepth checkout folder or a .whl/.tar.gz/.zip file "
             "(upload it, or put it on Google Drive), or open this notebook inside a checkout")

# The first code cell of every notebook. Two steps: make maskdepth importable (from SOURCE, as
# installed, the checkout around the notebook, else the repository), then one call of setup().
# Kept in one line each for the set-up to stay a glance long; the module docstring explains it.
SETUP_CELL = """\
# Set-up, safe to re-run: makes `maskdepth` importable (SOURCE, else as installed, else the checkout this notebook
# sits in: a clone, an upload, a Drive folder; else the repository), says which in one line, readies this runtime.
SOURCE = ""  # optional: a maskdepth checkout folder or a .whl / .tar.gz / .zip of it (uploaded, or on Drive)
DRIVE = True  # Colab: runs go to Google Drive and a stage resumes from there after a disconnect (False: VM disk)
import glob, importlib, os, runpy, subprocess, sys  # noqa: E401
DRIVE and "google.colab" in sys.modules and not os.path.isdir("/content/drive/MyDrive") and __import__("google.colab.drive").colab.drive.mount("/content/drive")
near = [f for p in ([SOURCE] if SOURCE else ["..", ".", "*", "/content/drive/MyDrive", "/content/drive/MyDrive/*", "/content/drive/MyDrive/*/*"]) for f in sorted(glob.glob(f"{p}/lib/maskdepth/bootstrap.py"))]
near or importlib.util.find_spec("maskdepth") or not (SOURCE or "/OWNER/" not in "{repo_url}") or subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", SOURCE or "git+{repo_url}"]) and importlib.invalidate_caches()
boot = near or [s.origin.replace("__init__.py", "bootstrap.py") for s in [importlib.util.find_spec("maskdepth")] if s]
runpy.run_path(boot[0])["setup"](SOURCE, drive=DRIVE) if boot else sys.exit("{not_found}")"""


def setup_cell(repo_url: str = REPO_URL) -> str:
    """The set-up cell's source for the repository `repo_url`."""
    return SETUP_CELL.replace("{repo_url}", repo_url).replace("{not_found}", NOT_FOUND)


def _direct_url() -> str | None:
    """Where pip installed maskdepth from (PEP 610 direct_url.json), None for an index or no install."""
    try:
        info = json.loads(importlib.metadata.distribution("maskdepth").read_text("direct_url.json") or "null")
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    return info.get("url") if isinstance(info, dict) else None


def make_available(source: str = "", *, run=subprocess.check_call) -> tuple[str, Path | None]:
    """Make `maskdepth` importable; returns (one phrase naming the source used, the checkout or None).
    See the module docstring for the order."""
    source = str(source or "").strip()
    if source.endswith(ARCHIVES):
        path = Path(source).expanduser()
        if not path.is_file():
            raise SetupStopped(f"SOURCE {source}: no such file")
        if importlib.util.find_spec("maskdepth") is None:
            run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", str(path)])
            importlib.invalidate_caches()
        return f"the file {path}", None
    if source:
        repo = Path(source).expanduser().resolve()
        if not (repo / MARKER).is_file():
            raise SetupStopped(f"SOURCE {source}: not a maskdepth checkout (no {MARKER} there)")
        make_importable(repo)
        return f"the checkout {repo} (SOURCE)", repo
    spec = importlib.util.find_spec("maskdepth") if "maskdepth" not in sys.modules else sys.modules["maskdepth"].__spec__
    if spec is not None and spec.origin:
        package = Path(spec.origin).resolve().parent
        if package.parent.name == "lib" and (package.parents[1] / MARKER).is_file():
            return f"the checkout {package.parents[1]}", package.parents[1]
        origin = _direct_url()
        return f"the installed package {package}" + (f" (from {origin})" if origin else ""), None
    repo = find_repo()
    if repo is not None:
        make_importable(repo)
        return f"the checkout {repo} (found beside this notebook)", repo
    if configured():
        run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", f"git+{REPO_URL}@{BRANCH}"])
        importlib.invalidate_caches()
        return f"the repository {REPO_URL}", None
    raise SetupStopped(NOT_FOUND)


def on_colab() -> bool:
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def setup(source: str = "", *, drive: bool = True, install: bool = True, run=subprocess.check_call, log=print) -> dict:
    """The set-up cell's library call, and the logic of 00_setup: maskdepth importable (one line says
    from where), only the missing requirements installed, on Colab the runs on Google Drive (unless
    `drive` is False), and a line on what this machine will do. Safe to call again. Under `maskdepth
    run` (its kernels import maskdepth already) it only says which maskdepth runs."""
    try:
        return _setup(source, drive=drive, install=install, run=run, log=log)
    except SetupStopped:
        raise
    except (Exception, KeyboardInterrupt) as exc:  # one line in the notebook, never a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SetupStopped(f"{type(exc).__name__}: {first}") from None


def _setup(source: str, *, drive: bool, install: bool, run, log) -> dict:
    report: dict = {"source": None, "kept": {}, "installed": [], "outputs": None, "profile": None}
    if os.environ.get(PIPELINE_ENV) == "1":
        import maskdepth

        report["source"] = "the kernel of `maskdepth run`"
        log(f"maskdepth {maskdepth.__version__} from {Path(maskdepth.__file__).parent} ({report['source']})")
        return report
    where, repo = make_available(source, run=run)
    report["source"] = where
    keep, missing = plan(requirements(repo))
    report["kept"] = keep
    if missing:
        if not install:
            raise SetupStopped(f"missing: {', '.join(missing)} (install is off)")
        log(f"installing what this runtime lacks: {', '.join(missing)}")
        install_missing(missing, keep, run=run)
        importlib.invalidate_caches()
        report["installed"] = missing
    import maskdepth

    kept = ", ".join(f"{n} {keep[n]}" for n in ("torch", "torchvision") if n in keep)
    log(f"maskdepth {maskdepth.__version__} from {where}" + (f"; keeps {kept}" if kept else ""))
    from maskdepth.core.environment import use_outputs
    from maskdepth.core.runs import outputs_root

    if drive and on_colab():
        try:
            use_outputs(DRIVE_OUTPUTS)
        except Exception as exc:  # refused or failed mount: the VM's disk, said plainly
            log(f"Google Drive not mounted ({type(exc).__name__}: {exc}); runs stay on this VM's disk")
    report["outputs"] = str(outputs_root().resolve())
    log(f"runs go to {report['outputs']}" + (" (Google Drive: a stage resumes there after a disconnect with "
                                             "`maskdepth run --resume`)" if str(DRIVE) in report["outputs"] else ""))
    from maskdepth.workflow.profile import machine_profile

    profile = machine_profile()
    report["profile"] = profile.to_dict()
    log(profile.line())
    return report


# -- the one place of the repository URL -----------------------------------------------------
def notebook_paths(repo: Path) -> list[Path]:
    return sorted((Path(repo) / "notebooks").glob("*.ipynb"))


def sync_notebooks(repo: Path | None = None, repo_url: str = REPO_URL) -> list[Path]:
    """Give every notebook of the checkout the set-up cell as its first code cell and the Colab
    badge under its title (the first Markdown cell); returns the notebooks changed."""
    repo = Path(repo or Path(__file__).resolve().parents[2])
    changed = []
    for path in notebook_paths(repo):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
        cell = {"cell_type": "code", "execution_count": None, "id": "maskdepth-setup", "metadata": {"tags": ["setup"]},
                "outputs": [],
                "source": setup_cell(repo_url).splitlines(keepends=True)}
        codes = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
        tagged = [i for i in codes if "setup" in c_tags(cells[i])]
        if tagged:
            cells[tagged[0]] = {"id": cell["id"], **cells[tagged[0]], "source": cell["source"]}
        else:
            cells.insert(codes[0] if codes else len(cells), cell)
        line = badge(f"notebooks/{path.name}", repo_url)
        md = next((c for c in cells if c["cell_type"] == "markdown"), None)
        if md is not None:
            text = "".join(md["source"])
            text = re.sub(r"\n?\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)", "", text)
            first, _, more = text.partition("\n")
            md["source"] = f"{first}\n{line}" + (f"\n{more}" if more else "")
            md["source"] = md["source"].splitlines(keepends=True)
        nb.setdefault("metadata", {})["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                                       "name": "python3"}
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if text != path.read_text(encoding="utf-8"):
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def c_tags(cell: dict) -> list:
    return cell.get("metadata", {}).get("tags", [])


def set_repo_url(url: str, repo: Path | None = None) -> list[Path]:
    """Write `url` wherever the current REPO_URL (and its Colab links) appears: this file, the
    README and every notebook (set-up cell, badge). Returns the files changed."""
    url = url.rstrip("/").removesuffix(".git")
    if not re.match(r"^https://github\.com/[^/\s]+/[^/\s]+$", url):
        raise ValueError(f"{url!r}: expected https://github.com/OWNER/NAME")
    repo = Path(repo or Path(__file__).resolve().parents[2])
    old_colab = colab_url(REPO_URL, notebook="")
    replacements = [(old_colab, colab_url(url, notebook="")), (REPO_URL, url)]
    changed = []
    for path in (repo / MARKER, repo / "README.md", *notebook_paths(repo)):
        text = path.read_text(encoding="utf-8")
        new = text
        for old, fresh in replacements:
            new = new.replace(old, fresh)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m maskdepth.bootstrap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--set-repo-url", metavar="URL", help="the repository's https://github.com/OWNER/NAME")
    parser.add_argument("--sync-notebooks", action="store_true",
                        help="write the set-up cell and the Colab badge into every notebook")
    parser.add_argument("--setup", metavar="SOURCE", nargs="?", const="",
                        help="set up this runtime (what a notebook's first cell does)")
    args = parser.parse_args(argv)
    if args.set_repo_url:
        for path in set_repo_url(args.set_repo_url):
            print(f"updated {path}")
        return 0
    if args.sync_notebooks:
        for path in sync_notebooks():
            print(f"updated {path}")
        return 0
    if args.setup is not None:
        setup(args.setup, drive=False)
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
