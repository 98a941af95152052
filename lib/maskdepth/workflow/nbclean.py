"""Keep committed notebooks free of outputs: `python -m maskdepth.workflow.nbclean [--check] PATH...`.

Executed copies belong in outputs/; the notebooks in git stay thin and diffable.
`--check` exits 1 and names every notebook that has outputs or execution counts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat


def is_clean(nb) -> bool:
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            return False
    return True


def strip(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
        cell.get("metadata", {}).pop("papermill", None)
    nb.metadata.pop("papermill", None)
    return nb


def _notebooks(paths):
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(p.glob("*.ipynb"))
        else:
            yield p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m maskdepth.workflow.nbclean", description=__doc__)
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--check", action="store_true", help="only report; exit 1 if any notebook has outputs")
    args = ap.parse_args(argv)
    dirty = []
    for path in _notebooks(args.paths):
        nb = nbformat.read(path, as_version=4)
        if is_clean(nb):
            continue
        if args.check:
            dirty.append(path)
        else:
            nbformat.write(strip(nb), path)
            print(f"stripped outputs: {path}")
    for path in dirty:
        print(f"{path}: has outputs; run 'python -m maskdepth.workflow.nbclean {path}'", file=sys.stderr)
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
