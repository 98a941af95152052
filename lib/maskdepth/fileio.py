"""Atomic writes: a file is either complete under its final name or absent.

Everything the workflow produces (checkpoints, JSON results, shards, images) goes
through these helpers, so an interrupted run never leaves a half-written file that a
later read would take as valid.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only on success.

    The rename alone protects against a killed process. `durable=True` also fsyncs the
    data before the rename (survives a power cut; used for checkpoints), at a cost that
    matters when writing thousands of small files.

    A full disk (ENOSPC, EDQUOT), while creating, writing or renaming, raises
    `DiskFullError` naming `path`; other OSErrors propagate unchanged."""
    path = Path(path)
    with _disk_full_as_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name stays short, so that it fails only where the final name would.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    tmp_path = Path(tmp)
    try:
        with _disk_full_as_error(path):
            yield tmp_path
            if durable:
                with open(tmp_path, "rb+") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def _disk_full_as_error(path: Path) -> Iterator[None]:
    from maskdepth.errors import DiskFullError

    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(path, quota=exc.errno == errno.EDQUOT) from exc
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any):
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as fh:
        # Through a Python file: a full disk is an OSError (ENOSPC), which torch's own file
        # writer reports only as "unexpected pos" RuntimeError.
        torch.save(obj, fh)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy `src` onto `dst` atomically and durably (dst is the old file or the complete copy)."""
    import shutil

    with atomic_path(dst, durable=True) as tmp:
        shutil.copyfile(src, tmp)
