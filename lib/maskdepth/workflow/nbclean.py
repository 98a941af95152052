"""Keep committed notebooks thin and current: `python -m maskdepth.workflow.nbclean [--check] PATH...`.

Executed copies belong in outputs/; the notebooks in git stay without outputs, and 02_train's
parameters cell is written from `TrainConfig` (every field, its default, its comment), so the
dataclass is the one source. `--check` only reports: it exits 1 and names every notebook that
has outputs or execution counts, or a parameters cell other than the one written here.
"""

from __future__ import annotations

import argparse
import json
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


TRAIN_NOTEBOOK = "02_train.ipynb"
TRAIN_PARAMETERS_HEAD = (
    'run_dir = ""  # the pipeline sets the run folder (and out_dir to it)\n'
    "# Every TrainConfig field with its default and help, written from TrainConfig by `make notebooks`;\n"
    "# the pipeline passes the stage's training defaults and -p NAME VALUE on top.\n"
)


def _literal(value) -> str:
    """A default as Python source, strings in double quotes as the notebooks write them."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def train_parameters_source() -> str:
    """The source of 02_train's parameters cell: every TrainConfig field in order, with its
    default and its comment (`maskdepth.core.params.field_docs`)."""
    from maskdepth.core.params import field_defaults, field_docs
    from maskdepth.training.config import TrainConfig

    docs = field_docs(TrainConfig)
    lines = [f"{name} = {_literal(default)}" + (f"  # {docs[name]}" if docs.get(name) else "")
             for name, default in field_defaults(TrainConfig).items()]
    return TRAIN_PARAMETERS_HEAD + "\n".join(lines)


def stale_parameters(nb, path: Path) -> bool:
    """True when `path` is 02_train and its parameters cell differs from `train_parameters_source`."""
    if Path(path).name != TRAIN_NOTEBOOK:
        return False
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    return len(cells) != 1 or cells[0].source != train_parameters_source()


def _notebooks(paths):
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(p.glob("*.ipynb"))
        else:
            yield p


def write_parameters(path: Path) -> None:
    """Rewrite 02_train's parameters cell from TrainConfig, editing the stored JSON so that
    nothing else in the file changes (nbformat would reorder every cell's keys)."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text)
    cells = [c for c in data["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise SystemExit(f"{path}: no single cell tagged 'parameters' to write the TrainConfig fields into")
    cells[0]["source"] = train_parameters_source().splitlines(keepends=True)
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m maskdepth.workflow.nbclean", description=__doc__)
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--check", action="store_true",
                    help="only report; exit 1 if any notebook has outputs or a stale parameters cell")
    args = ap.parse_args(argv)
    dirty, stale = [], []
    for path in _notebooks(args.paths):
        nb = nbformat.read(path, as_version=4)
        clean, current = is_clean(nb), not stale_parameters(nb, path)
        if args.check:
            dirty += [] if clean else [path]
            stale += [] if current else [path]
            continue
        if not current:
            write_parameters(path)
            print(f"wrote the parameters cell: {path}")
        if not clean:
            nbformat.write(strip(nbformat.read(path, as_version=4)), path)
            print(f"stripped outputs: {path}")
    for path in dirty:
        print(f"{path}: has outputs; run 'python -m maskdepth.workflow.nbclean {path}'", file=sys.stderr)
    for path in stale:
        print(f"{path}: its parameters cell is not what TrainConfig gives; run 'make notebooks'", file=sys.stderr)
    return 1 if dirty or stale else 0


if __name__ == "__main__":
    sys.exit(main())
