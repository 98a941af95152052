"""CI's rule (tests/conftest.py, MASKDEPTH_NO_SKIPS=1 set by .ci/run): a skip fails the run unless
the test is marked `hardware`; a deselected test stops it. Checked on a small suite in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = '''
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="no browser")
def test_needs_a_program():
    pass

def test_skips_itself():
    pytest.skip("no data")

@pytest.mark.hardware
@pytest.mark.skipif(True, reason="needs CUDA")
def test_needs_a_gpu():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_known_failure():
    assert False
'''


def _pytest(folder: Path, *args: str, no_skips: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "MASKDEPTH_NO_SKIPS": "1" if no_skips else "0"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def suite(tmp_path):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    hardware: needs hardware\n")
    return tmp_path


def test_without_the_flag_skips_are_skips(suite):
    run = _pytest(suite, no_skips=False)
    assert run.returncode == 0, run.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in run.stdout, run.stdout


def test_in_ci_only_a_hardware_skip_is_allowed(suite):
    run = _pytest(suite, no_skips=True)
    assert run.returncode == 1, run.stdout
    for failed in ("test_sample.py::test_needs_a_program", "test_sample.py::test_skips_itself"):
        assert f"FAILED {failed}" in run.stdout or f"ERROR {failed}" in run.stdout, (failed, run.stdout)
    assert "SKIPPED [1] test_sample.py" in run.stdout and "needs CUDA" in run.stdout
    assert "no browser" in run.stdout and "install what it needs" in run.stdout
    assert "1 xfailed" in run.stdout and "1 passed" in run.stdout


def test_in_ci_a_deselected_test_stops_the_run(suite):
    run = _pytest(suite, "-m", "not hardware", no_skips=True)
    assert run.returncode != 0 and "were deselected" in run.stdout + run.stderr, run.stdout + run.stderr


def test_in_ci_a_module_skipped_for_a_missing_package_stops_the_run(suite):
    (suite / "test_optional.py").write_text('import pytest\npytest.importorskip("no_such_package_here")\n')
    assert _pytest(suite, "test_optional.py", no_skips=False).returncode == 5  # skipped: nothing ran
    run = _pytest(suite, "test_optional.py", no_skips=True)
    assert run.returncode != 0 and "ERROR test_optional.py" in run.stdout and "no_such_package_here" in run.stdout
