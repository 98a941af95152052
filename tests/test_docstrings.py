"""Module docstrings stay short: at most MAX_LINES lines saying what a module is and why it is so.
Manuals, measurements and long explanations belong in docs/ (issue 29)."""

from __future__ import annotations

import ast

from test_imports import LIB

MAX_LINES = 10


def long_docstrings(root=LIB / "maskdepth") -> dict[str, int]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        lines = len(doc.splitlines()) if doc else 0
        if lines > MAX_LINES:
            found[path.relative_to(root.parent).as_posix()] = lines
    return found


def test_module_docstrings_are_at_most_ten_lines():
    too_long = long_docstrings()
    assert not too_long, f"module docstrings over {MAX_LINES} lines (move the detail to docs/): {too_long}"


def test_the_check_sees_a_long_docstring(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "long.py").write_text('"""' + "\n".join(f"line {i}" for i in range(MAX_LINES + 1)) + '"""\n')
    (pkg / "short.py").write_text('"""One line."""\n')
    assert long_docstrings(pkg) == {"pkg/long.py": MAX_LINES + 1}
