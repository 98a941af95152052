"""Imports: every module of lib/maskdepth imports on its own (first, in a fresh interpreter state),
and the import graph gains no cycle.

The graph is read from the source (every `import`, module-level or inside a function: a lazy
import hides a cycle from Python but not from the reader), so a cycle shows even when it never
fails at import time. The cycles that remain are listed in KNOWN_CYCLES, to be removed; a new
one fails here."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"

# Cycles still in the code, each a set of modules (remove an entry when its cycle is gone):
KNOWN_CYCLES: list[set[str]] = []


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((LIB / "maskdepth").rglob("*.py")):
        parts = list(path.relative_to(LIB).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """{module: the maskdepth modules it imports anywhere in its source}."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                if target.startswith("maskdepth"):
                    found = known(target)
                    if found and found != module:
                        graph[module].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_gains_no_cycle():
    graph = import_graph()
    assert {"maskdepth.training.trainer", "maskdepth.datasets.datadir", "maskdepth.datasets.packed"} <= set(graph)
    assert "maskdepth.datasets.datadir" in graph["maskdepth.datasets.packed"]  # the graph sees real edges
    new = [sorted(c) for c in cycles(graph) if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, f"import cycle(s): {new}"
    # the data folder contract, its readers and the dispatcher: no way back from the contract
    for reader in ("maskdepth.datasets.packed", "maskdepth.datasets.folder_dataset", "maskdepth.datasets.dataset"):
        assert reader not in graph["maskdepth.datasets.datadir"]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


SCRIPT = """
import importlib, json, sys, traceback
import torch  # loaded once; every maskdepth module is imported first on its own below
failed = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "maskdepth" or m.startswith("maskdepth.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=3)
print(json.dumps(failed))
"""


def test_every_module_imports_first_on_its_own():
    names = [m for m in _modules() if m != "maskdepth.__main__"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(names)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failed, "\n".join(f"{k}:\n{v}" for k, v in failed.items())
