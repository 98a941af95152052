"""Atomic writes on a full disk: one line naming the file, nothing half-written left behind."""

from __future__ import annotations

import builtins
import errno
import os

import pytest
import torch

import maskdepth.core.fileio as mio
from maskdepth.cli import main
from maskdepth.core.errors import DiskFullError


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_checkpoint_written_to_a_full_disk_says_no_space_left(tmp_path, monkeypatch):
    # Every file torch_save opens is /dev/full: the kernel answers ENOSPC to the write, as a full disk does.
    monkeypatch.setattr(mio, "open", lambda path, mode="r", *a, **k: builtins.open("/dev/full", mode), raising=False)
    target = tmp_path / "checkpoints" / "last.pt"
    with pytest.raises(DiskFullError, match=r"last.pt: no space left on device"):
        mio.torch_save({"weights": torch.zeros(100_000)}, target)
    assert list(target.parent.iterdir()) == []  # neither the file nor its temporary


def test_fsync_failing_for_space_and_other_writers_name_the_file(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mio.os, "fsync", full)
    with pytest.raises(DiskFullError, match=r"x.pt: no space left on device"):
        mio.torch_save({"a": 1}, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_reports_a_full_disk_in_one_line(monkeypatch, capsys):
    import maskdepth.cli.models as models_cli

    def fails(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/shard_0003.npy")

    monkeypatch.setattr(models_cli, "run", fails)
    assert main(["models"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("maskdepth models: error: /data/shard_0003.npy: no space left on device; free some space "
                   "(or write elsewhere) and run again")
