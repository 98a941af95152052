"""Shared fixtures. Tests are hermetic: caches go to a temporary folder, never ~/.cache."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _hermetic_env(tmp_path_factory):
    """Point MASKDEPTH_CACHE at a session temp folder and silence progress bars."""
    saved = {k: os.environ.get(k) for k in ("MASKDEPTH_CACHE", "MASKDEPTH_NO_PROGRESS")}
    os.environ["MASKDEPTH_CACHE"] = str(tmp_path_factory.mktemp("maskdepth-cache"))
    os.environ["MASKDEPTH_NO_PROGRESS"] = "1"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# -- CI: every test runs -----------------------------------------------------------------------
# `.ci/run` sets MASKDEPTH_NO_SKIPS=1: a test skipped there for anything but missing hardware
# fails the run (a missing package or browser is the CI machine's fault, not the test's), and
# so does a test deselected by -m/-k. Tests that only hardware can run are marked `hardware`.
NO_SKIPS = os.environ.get("MASKDEPTH_NO_SKIPS") == "1"


def _as_failure(report, what: str) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"{what} skipped ({reason}), but MASKDEPTH_NO_SKIPS=1 (CI) allows a skip only for a "
                       "test marked `hardware`: install what it needs")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("hardware") is None:
        _as_failure(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped:  # a module-level skip (pytest.importorskip)
        _as_failure(report, collector.nodeid)


def pytest_deselected(items):
    if NO_SKIPS and items:
        raise pytest.UsageError(f"MASKDEPTH_NO_SKIPS=1 (CI) runs every test, but {len(items)} were deselected "
                                f"(-m/-k), e.g. {items[0].nodeid}")
