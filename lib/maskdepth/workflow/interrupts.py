"""A stage's interruptions and its console echo: SIGINT/SIGTERM/SIGHUP become `StageInterrupted`, and
`LogTail` echoes the trainer's train.log lines while a notebook trains.
"""

from __future__ import annotations

import math
import re
import time
from contextlib import contextmanager
from pathlib import Path


class StageInterrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP during a stage; run.json then says status "interrupted" and where."""

    def __init__(self, signame: str, run_dir: Path | None = None):
        super().__init__(signame)
        self.signame, self.run_dir = signame, run_dir


@contextmanager
def _signals_interrupt():
    """SIGTERM (a batch system or `kill` stopping the job) and SIGHUP (the terminal or SSH session
    went away) end a stage the way Ctrl-C does: as an interrupt that is recorded, not a silent death."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise StageInterrupted(signal.Signals(signum).name)

    saved = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            saved[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


EPOCH_LINE = re.compile(r"^epoch\s+(\d+)/(\d+)\b")


class LogTail:
    """Echo on the pipeline's console the lines a notebook's trainer appends to RUN/train.log
    while the notebook runs (the kernel's own output only reaches the executed notebook).
    Per-epoch lines are throttled for logs: at most one every `every` seconds, the last epoch's
    and the latest one at the end always; every other line (start, resume notes) is shown."""

    def __init__(self, path: Path, emit, every: float = 10.0, poll: float = 0.5):
        self.path, self.emit, self.every, self.poll = Path(path), emit, every, poll
        self.offset = 0
        self.pending: str | None = None
        self.last_shown = -math.inf
        self._stop = None
        self._thread = None

    def __enter__(self) -> LogTail:
        import threading

        self.offset = self.path.stat().st_size if self.path.is_file() else 0  # older lines were shown before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="maskdepth-log-tail", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.read()
        if self.pending is not None:
            self.emit(self.pending)
            self.pending = None

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self.read()

    def read(self) -> None:
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size < self.offset:
            self.offset = 0  # replaced by a new file
        if size == self.offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        whole = data.rfind(b"\n") + 1  # a line still being written waits for its newline
        self.offset += whole
        for line in data[:whole].decode("utf-8", "replace").splitlines():
            self._line(line)

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        match = EPOCH_LINE.match(line)
        if match is None:
            self.emit(line)
            return
        now = time.monotonic()
        if now - self.last_shown >= self.every or match.group(1) == match.group(2):
            self.emit(line)
            self.last_shown, self.pending = now, None
        else:
            self.pending = line
