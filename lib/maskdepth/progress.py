"""tqdm bars that stay readable in papermill logs and CI.

A papermill log records every redraw; we redraw at most every `mininterval` seconds
(default 10 s when not attached to a terminal) and use plain ASCII.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm as _tqdm


def is_interactive() -> bool:
    return sys.stderr.isatty()


def progress(iterable=None, *, desc: str = "", total=None, disable: bool | None = None, **kwargs):
    interactive = is_interactive()
    if disable is None:
        disable = os.environ.get("MASKDEPTH_NO_PROGRESS") == "1"
    kwargs.setdefault("mininterval", 0.5 if interactive else 10.0)
    kwargs.setdefault("maxinterval", kwargs["mininterval"] * 6)
    kwargs.setdefault("ascii", not interactive)
    kwargs.setdefault("dynamic_ncols", interactive)
    kwargs.setdefault("leave", interactive)
    if not interactive:
        kwargs.setdefault("ncols", 100)
        from tqdm import tqdm as plain

        return plain(iterable, desc=desc, total=total, disable=disable, file=sys.stderr, **kwargs)
    return _tqdm(iterable, desc=desc, total=total, disable=disable, **kwargs)
