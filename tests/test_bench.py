"""The benchmark stays out of the test run: only check that it imports and that a dry run lists
every figure without measuring or writing anything."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a top-level folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))


def test_bench_imports_and_dry_run_lists_every_figure(tmp_path, capsys):
    from bench import run

    assert run.main(["--dry-run", "--quick", "--out", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    for figure in run.FIGURES:
        assert f"{figure.number}. {figure.name}" in listed
    assert [f.number for f in run.FIGURES] == [1, 2, 3, 4, 5, 6]
    assert list(tmp_path.iterdir()) == []  # a dry run measures and writes nothing
    assert set(run.RATIO_KEYS) == {"joint_vs_seed_train", "loader_over_model"}
    assert [f.name for f in run.select_figures("loader,1")] == ["train", "loader"]
    with pytest.raises(SystemExit):
        run.main(["--dry-run", "--only", "no-such-figure"])
