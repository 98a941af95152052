"""The layout is the architecture: the layer order (`maskdepth.layers.LAYERS`, written once) holds for
every import (lazy ones inside functions too, read from the source as tests/test_imports.py reads
them), no module below the workflow imports more than MAX_IMPORTS project modules, and each
package's docstring lists the modules in its folder."""

from __future__ import annotations

import ast
import re

from test_imports import LIB, import_graph

from maskdepth.layers import LAYERS, MAX_IMPORTS, WIDE_LAYERS

PACKAGE = LIB / "maskdepth"


def layer_of(module: str) -> int | None:
    """The index of a module's layer in LAYERS; None for the top-level entry points."""
    parts = module.split(".")
    if len(parts) < 3 and not (PACKAGE / parts[-1]).is_dir():
        return None  # maskdepth, maskdepth.__main__, maskdepth.bootstrap, maskdepth.layers
    return LAYERS.index(parts[1])


def test_every_package_is_a_layer():
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(LAYERS)


def test_no_import_goes_up_a_layer():
    upward = []
    for module, targets in import_graph().items():
        here = layer_of(module)
        for target in targets:
            there = layer_of(target) if target != "maskdepth" else None
            if here is not None and there is not None and there > here:
                upward.append(f"{module} ({LAYERS[here]}) imports {target} ({LAYERS[there]})")
    assert not upward, "\n".join(sorted(upward))


def test_the_layer_check_sees_an_upward_import():
    assert layer_of("maskdepth.core.errors") < layer_of("maskdepth.cli.train")
    assert layer_of("maskdepth.bootstrap") is None
    graph = import_graph()
    assert "maskdepth.core.errors" in graph["maskdepth.training.checkpoints"]  # the graph sees real edges


def test_modules_below_the_workflow_import_few_project_modules():
    wide = {m: len(t - {"maskdepth"}) for m, t in import_graph().items()
            if layer_of(m) is not None and LAYERS[layer_of(m)] not in WIDE_LAYERS and len(t - {"maskdepth"}) > MAX_IMPORTS}
    assert not wide, f"modules importing more than {MAX_IMPORTS} project modules: {wide}"


def test_each_package_docstring_lists_its_modules():
    for name in LAYERS:
        folder = PACKAGE / name
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8"))) or ""
        found = re.search(r"^Modules: (.*?)\.$", doc, re.M | re.S)
        assert found, f"{name}/__init__.py: no 'Modules: a, b.' line in its docstring"
        listed = sorted(m.strip() for m in found.group(1).replace("\n", " ").split(","))
        files = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
        assert listed == files, f"{name}/__init__.py lists {listed}, the folder holds {files}"


def test_architecture_md_maps_every_module():
    text = (LIB.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(maskdepth(?:\.\w+)*)`", table))
    modules = {".".join(p.relative_to(LIB).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
               if p.stem != "__init__"}
    assert modules - named == set(), f"missing from docs/architecture.md's module map: {sorted(modules - named)}"
    packages = {f"maskdepth.{n}" for n in LAYERS}
    known = modules | packages | {"maskdepth"}
    unknown = {n for n in named if n not in known and n.rpartition(".")[0] not in known}  # NAME or module.NAME
    assert not unknown, f"named in the module map but not in the tree: {sorted(unknown)}"
