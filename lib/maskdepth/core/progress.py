"""tqdm bars that fit where they are shown.

- a terminal: a live bar (redrawn every 0.5 s);
- a Jupyter / Colab notebook someone watches: a real widget bar (`tqdm.notebook`, as
  `tqdm.auto` would pick) when ipywidgets is installed;
- a log (papermill under `maskdepth run`, CI, a file): plain ASCII redrawn at most every
  `mininterval` seconds (default 10 s), since a log records every redraw.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from tqdm import tqdm as _tqdm

PIPELINE_ENV = "MASKDEPTH_PIPELINE"  # set by maskdepth.workflow.pipeline for the kernels it starts


def is_interactive() -> bool:
    return sys.stderr.isatty()


def in_notebook() -> bool:
    """Inside a Jupyter kernel a person watches (Jupyter, Colab, VS Code), not one the pipeline started."""
    if os.environ.get(PIPELINE_ENV) == "1" or "IPython" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)


def widgets_available() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def bar_kind() -> str:
    """"widget", "terminal" or "log": how progress() draws."""
    if in_notebook() and widgets_available():
        return "widget"
    return "terminal" if is_interactive() else "log"


def progress(iterable=None, *, desc: str = "", total=None, disable: bool | None = None, **kwargs):
    kind = bar_kind()
    if disable is None:
        disable = os.environ.get("MASKDEPTH_NO_PROGRESS") == "1"
    if kind == "widget":
        from tqdm.notebook import tqdm as widget_bar

        kwargs.setdefault("mininterval", 0.5)
        kwargs.setdefault("leave", False)
        return widget_bar(iterable, desc=desc, total=total, disable=disable, **kwargs)
    interactive = kind == "terminal"
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
