"""Atomic writes: a file is either complete under its final name or absent.

Everything the workflow produces (checkpoints, JSON results, shards, images) goes through these
helpers, so an interrupted run never leaves a half-written file that a later read would take as
valid. They never destroy what the user gave: only a regular file or a missing path is replaced, a
character device or FIFO is written in place, anything else is refused; `check_output` refuses an
output that is one of the command's inputs, `folder_lock` keeps a second process out of a folder.
Details: docs/architecture.md, Contracts, "Written files"."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
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
    in_place = _writable_in_place(path)
    with _disk_full_as_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name stays short, so that it fails only where the final name would.
        # A device is written in place: its temporary file goes to the usual temp folder, not /dev.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp",
                                   dir=None if in_place else path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    tmp_path = Path(tmp)
    try:
        with _disk_full_as_error(path):
            yield tmp_path
            if durable:
                with open(tmp_path, "rb+") as fh:
                    os.fsync(fh.fileno())
            if in_place:
                _copy_into(tmp_path, path)
            else:
                os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _special_kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    for test, kind in ((stat.S_ISREG, None), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "a special file"


def _writable_in_place(path: Path) -> bool:
    """True for a character device or FIFO (written in place, never replaced); False for a
    regular file or a missing path (replaced by rename). Anything else is refused: renaming a
    file over it would destroy it (as root, even a device under /dev)."""
    from maskdepth.core.errors import MaskdepthError

    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    if stat.S_ISREG(mode):
        return False
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return True
    raise MaskdepthError(f"{path}: is {_special_kind(mode)}, not a file; name a file to write")


def _copy_into(src: Path, dst: Path) -> None:
    import shutil

    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)


def check_output(path: str | os.PathLike, *, reads=(), option: str = "--out", folder: bool = False,
                 overwrite: bool = True) -> Path:
    """Refuse, before any work, an output `path` that would destroy what the command reads.

    `reads`: the files and folders the command reads in the same call (checkpoint, params
    file, images, dataset); the output may be none of them, and a folder output may not lie
    inside a folder read. `folder`: the output is a folder (an existing file is refused);
    else a file: a folder or a special file other than a character device or FIFO is refused,
    and so is an existing file unless `overwrite`. Returns `path` as a Path."""
    from maskdepth.core.errors import MaskdepthError

    path = Path(path)
    target = path.resolve()
    for given in reads:
        if given is None or given == "":
            continue
        source = Path(given).resolve()
        if target == source or (path.exists() and Path(given).exists() and os.path.samefile(path, given)):
            raise MaskdepthError(f"{option} {path}: is {given}, which this command reads; write elsewhere")
        if folder and source.is_dir() and target.is_relative_to(source):
            raise MaskdepthError(f"{option} {path}: lies inside {given}, which this command reads; write elsewhere")
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return path
    if folder:
        if not stat.S_ISDIR(mode):
            raise MaskdepthError(f"{option} {path}: is {_special_kind(mode) or 'a file'}, not a folder; "
                                 "name a folder to write into")
        return path
    if stat.S_ISDIR(mode):
        raise MaskdepthError(f"{option} {path}: is a folder; name the file to write inside it")
    _writable_in_place(path)
    if stat.S_ISREG(mode) and not overwrite:
        raise MaskdepthError(f"{option} {path}: already exists; pass --overwrite to replace it, or write elsewhere")
    return path


LOCK_NAME = ".maskdepth.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold FOLDER/.maskdepth.lock (PID, host, command) while a command writes into `folder`.

    A second writer stops with one line naming the holder, instead of mixing its files with the
    first's. A lock left by a process that is gone (same host, PID not running) is stale and
    taken over. The holder's own child processes (the notebooks `maskdepth run` executes) and
    a nested call in the same process pass through."""
    import socket
    import time

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
          "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    fd, tmp = tempfile.mkstemp(prefix=f"{LOCK_NAME}.", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(me, fh)
    owned = False
    try:
        for _ in range(3):
            try:
                os.link(tmp, lock)  # creates the lock with its content, or fails if one exists
                owned = True
                break
            except FileExistsError:
                holder = _lock_holder(lock)
                if holder is not None and holder.get("host") == me["host"] and (
                        holder.get("pid") == me["pid"] or _is_ancestor(holder.get("pid"))):
                    break  # our own lock, or our parent's: pass through
                if holder is not None and not _is_stale(holder, me["host"]):
                    from maskdepth.core.errors import MaskdepthError

                    raise MaskdepthError(
                        f"{folder}: in use by `maskdepth {holder.get('command', '?')}` (pid {holder.get('pid')} on "
                        f"{holder.get('host')}, since {holder.get('since', '?')}); wait for it to end, or write "
                        f"elsewhere (if that process is gone, delete {lock})") from None
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()  # stale (or unreadable): the process that wrote it is gone
        else:
            from maskdepth.core.errors import MaskdepthError

            raise MaskdepthError(f"{folder}: cannot take {lock} (another process keeps taking it); write elsewhere")
    finally:
        os.unlink(tmp)
    try:
        yield lock
    finally:
        if owned and _lock_holder(lock) == me:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()


def _lock_holder(lock: Path) -> dict | None:
    """The lock's content; {} when it vanished meanwhile; None when unreadable (stale)."""
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _is_stale(holder: dict, host: str) -> bool:
    """A lock whose process is gone: same host and PID not running. A lock from another host
    (a shared file system) is never taken as stale: its process cannot be seen from here."""
    pid = holder.get("pid")
    if not holder:
        return True
    if holder.get("host") != host or not isinstance(pid, int) or isinstance(pid, bool):
        return holder.get("host") == host
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _is_ancestor(pid) -> bool:
    """Whether `pid` is a parent, grandparent, ... of this process (Linux /proc; else False)."""
    if not isinstance(pid, int) or pid <= 1:
        return False
    current = os.getppid()
    for _ in range(64):
        if current == pid:
            return True
        if current <= 1:
            return False
        try:
            with open(f"/proc/{current}/stat", encoding="utf-8") as fh:
                current = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


@contextlib.contextmanager
def _disk_full_as_error(path: Path) -> Iterator[None]:
    from maskdepth.core.errors import DiskFullError

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
