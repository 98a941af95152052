"""Make a runtime that already has Python (and usually a CUDA torch) ready for maskdepth, in the
running kernel: Colab, GCP / Vertex AI notebooks, Kaggle, a rented GPU machine.

`notebooks/00_setup.ipynb` finds the checkout by this file (`MARKER`, never by the working
folder: Colab's is /content), loads it by path (maskdepth is not importable yet) and calls
`prepare(repo)`, which

1. keeps every requirement the runtime already satisfies (its CUDA torch and torchvision, its
   own ipykernel) and pip-installs only the missing or too old ones, with the kept versions
   pinned so pip cannot replace them;
2. makes `maskdepth` importable in the running kernel without a restart: the checkout's lib/
   goes on sys.path (import caches invalidated) and on PYTHONPATH, so `!python -m maskdepth
   run ...` and the notebook kernels it starts import it too (an editable install would only
   be seen after a restart);
3. registers the `maskdepth` Jupyter kernel that `maskdepth run` uses, if it is missing.

Standard library only. `REPO_URL` is the one place the repository's address is set: the
README's "Open in Colab" link and 00_setup's `repo_url` are copies that
`python -m maskdepth.bootstrap --set-repo-url URL` rewrites (tests/test_bootstrap.py checks
they agree).
"""

from __future__ import annotations

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
KERNEL = "maskdepth"


def colab_url(repo_url: str = REPO_URL, branch: str = BRANCH, notebook: str = "notebooks/00_setup.ipynb") -> str:
    """https://colab.research.google.com/github/OWNER/NAME/blob/BRANCH/notebooks/00_setup.ipynb"""
    path = re.sub(r"^https?://github\.com/", "", repo_url.rstrip("/")).removesuffix(".git")
    return f"https://colab.research.google.com/github/{path}/blob/{branch}/{notebook}"


def find_repo(start: str | os.PathLike | None = None) -> Path | None:
    """The checkout: $MASKDEPTH_REPO, else `start` (default: the working folder), one of its parents
    or one of its sub-folders (Colab clones into /content/NAME while the kernel works in /content)."""
    here = Path(start or Path.cwd()).resolve()
    candidates = [os.environ.get("MASKDEPTH_REPO", ""), here, *here.parents]
    candidates += sorted(p for p in here.iterdir() if p.is_dir()) if here.is_dir() else []
    for place in candidates:
        if place and (Path(place) / MARKER).is_file():
            return Path(place).resolve()
    return None


# -- requirements ----------------------------------------------------------------------------
RUNTIME_EXTRAS = ("pretrained", "real")  # what the default recipe and the real-photo check need


def requirements(repo: Path) -> list[str]:
    """[project] dependencies of the checkout's pyproject.toml, with those of RUNTIME_EXTRAS."""
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


# -- importable, kernel ----------------------------------------------------------------------
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


def kernel_installed(name: str = KERNEL) -> bool:
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:
        return False
    return name in KernelSpecManager().find_kernel_specs()


def install_kernel(run=subprocess.check_call) -> None:
    run([sys.executable, "-m", "ipykernel", "install", "--user", "--name", KERNEL, "--display-name",
         "Python (maskdepth)"])


def prepare(repo: str | os.PathLike, *, install: bool = True, run=subprocess.check_call, log=print) -> dict:
    """Steps 1-3 of the module doc; returns what was kept, installed and changed."""
    repo = Path(repo).resolve()
    keep, missing = plan(requirements(repo))
    report = {"repo": str(repo), "kept": keep, "installed": [], "path_added": False, "kernel_registered": False}
    shown = ", ".join(f"{n} {keep[n]}" for n in ("torch", "torchvision", "ipykernel") if n in keep)
    log(f"runtime keeps: {shown or 'nothing preinstalled'}")
    if missing:
        if not install:
            raise RuntimeError(f"missing: {', '.join(missing)} (install_if_missing is off)")
        log(f"installing only what is missing: {', '.join(missing)}")
        install_missing(missing, keep, run=run)
        importlib.invalidate_caches()
        report["installed"] = missing
    report["path_added"] = make_importable(repo)
    if not kernel_installed():
        install_kernel(run=run)
        report["kernel_registered"] = True
        log(f"registered the Jupyter kernel {KERNEL!r} (what `maskdepth run` executes notebooks with)")
    return report


# -- the one place of the repository URL -----------------------------------------------------
def set_repo_url(url: str, repo: Path | None = None) -> list[Path]:
    """Write `url` wherever the current REPO_URL (and its Colab link) appears: this file, the
    README and notebooks/00_setup.ipynb. Returns the files changed."""
    url = url.rstrip("/").removesuffix(".git")
    if not re.match(r"^https://github\.com/[^/\s]+/[^/\s]+$", url):
        raise ValueError(f"{url!r}: expected https://github.com/OWNER/NAME")
    repo = repo or Path(__file__).resolve().parents[2]
    replacements = [(colab_url(REPO_URL), colab_url(url)), (REPO_URL, url)]
    changed = []
    for path in (repo / MARKER, repo / "README.md", repo / "notebooks" / "00_setup.ipynb"):
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
    parser.add_argument("--prepare", metavar="REPO", help="prepare this runtime for the checkout REPO")
    args = parser.parse_args(argv)
    if args.set_repo_url:
        for path in set_repo_url(args.set_repo_url):
            print(f"updated {path}")
        return 0
    if args.prepare:
        print(json.dumps(prepare(args.prepare), indent=1))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
