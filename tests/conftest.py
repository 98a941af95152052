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
