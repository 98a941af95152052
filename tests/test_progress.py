"""Progress bars: widgets in a notebook someone watches, throttled text in logs (issue 17)."""

from __future__ import annotations

import sys
import types

from maskdepth.core import progress as P


def test_a_watched_notebook_gets_widget_bars_when_ipywidgets_is_there(monkeypatch):
    monkeypatch.setattr(P, "in_notebook", lambda: True)
    monkeypatch.setattr(P, "widgets_available", lambda: True)
    assert P.bar_kind() == "widget"
    monkeypatch.setattr(P, "widgets_available", lambda: False)  # no ipywidgets: text as before
    monkeypatch.setattr(P, "is_interactive", lambda: False)
    assert P.bar_kind() == "log"
    bar = P.progress(range(3), desc="x", disable=False)
    assert list(bar) == [0, 1, 2] and bar.ascii is True and bar.mininterval == 10.0


def test_in_notebook_means_a_jupyter_kernel_not_one_the_pipeline_started(monkeypatch):
    class ZMQInteractiveShell:  # what ipykernel (and Colab's subclass of it) runs
        pass

    class ColabShell(ZMQInteractiveShell):
        pass

    class TerminalInteractiveShell:
        pass

    fake = types.ModuleType("IPython")
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.delenv(P.PIPELINE_ENV, raising=False)
    for shell, expected in ((ColabShell(), True), (ZMQInteractiveShell(), True), (TerminalInteractiveShell(), False),
                            (None, False)):
        fake.get_ipython = lambda shell=shell: shell
        assert P.in_notebook() is expected, shell
    fake.get_ipython = lambda: ColabShell()
    monkeypatch.setenv(P.PIPELINE_ENV, "1")  # a papermill kernel of `maskdepth run`: its output is a log
    assert P.in_notebook() is False
