"""Running one notebook: papermill in a kernel of this very Python (the notebooks' stored kernelspec
is mapped to it, so a stage runs the code and packages it was started with), kernels stopped on exit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from maskdepth.core.errors import MaskdepthError
from maskdepth.core.progress import (
    PIPELINE_ENV,  # "1" in the kernels the pipeline starts: text bars for the log
)
from maskdepth.workflow.interrupts import StageInterrupted

KERNEL = "python3"  # the notebooks' stored kernelspec; it runs this very Python (see _kernel_manager_class)
NOTEBOOK_DIR_ENV = "MASKDEPTH_NOTEBOOKS"
_KERNELS: list = []  # kernel managers of the notebook now running (stopped at once on an interrupt)
def notebooks_dir() -> Path:
    """`$MASKDEPTH_NOTEBOOKS`, else the checkout's notebooks/, else the copies an installed
    package carries (`maskdepth.core.resources`)."""
    import os

    from maskdepth.core.resources import resource_dir

    env = os.environ.get(NOTEBOOK_DIR_ENV)
    if env:
        return Path(env)
    return resource_dir("notebooks")


def declared_parameters(path: Path) -> dict:
    import papermill as pm

    return pm.inspect_notebook(str(path))


def this_python_kernel_spec():
    """The `python3` kernel of the Python running the pipeline: whatever a `python3` kernelspec
    installed elsewhere (a system Jupyter, ~/.local) points at, the notebooks import the same
    packages, maskdepth included, as `maskdepth run` itself."""
    from jupyter_client.kernelspec import KernelSpec

    return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                      display_name="Python 3 (maskdepth run)", language="python", metadata={})


def _kernel_manager_class():
    """The kernel is this Python (`this_python_kernel_spec`). Talk to it over local IPC sockets
    where the OS has them: nothing listens on TCP, and ipykernel stops warning about unencrypted
    TCP in every papermill log. Shutdown sends no interrupt to a kernel that is shutting down anyway."""
    import os

    from jupyter_client.manager import AsyncKernelManager

    class QuietShutdownKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            _KERNELS.append(self)

        @property
        def kernel_spec(self):
            if self._kernel_spec is None:
                self._kernel_spec = this_python_kernel_spec()
            return self._kernel_spec

        async def _async_interrupt_kernel(self) -> None:
            # shutdown_kernel interrupts first; an idle kernel would only log a spurious
            # "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel" on a successful run.
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

    if os.name != "posix":
        return QuietShutdownKernelManager

    class IPCKernelManager(QuietShutdownKernelManager):
        """Its sockets live in a folder of its own: jupyter_client's default is `kernel-ipc-N` in the
        working folder, numbered from 1, so two runs started there at once bound the same sockets."""

        def __init__(self, **kwargs):
            import tempfile

            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)
            self._ipc_dir = tempfile.mkdtemp(prefix="maskdepth-kernel-")
            self.ip = os.path.join(self._ipc_dir, "ipc")

        def cleanup_ipc_files(self) -> None:
            import shutil

            super().cleanup_ipc_files()
            shutil.rmtree(self._ipc_dir, ignore_errors=True)

    return IPCKernelManager


def _stop_kernels() -> None:
    """End the kernels of the running notebook now (after an interrupt nothing shuts them down,
    and a training kernel would go on writing checkpoints into the run folder)."""
    import subprocess as sp
    from contextlib import suppress

    for km in _KERNELS:
        proc = getattr(getattr(km, "provisioner", None), "process", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except sp.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for cleanup in ("cleanup_connection_file", "cleanup_ipc_files"):
            with suppress(Exception):
                getattr(km, cleanup)()
    _KERNELS.clear()


def execute(nb_in: Path, nb_out: Path, parameters: dict, timeout: int, cwd: Path | None = None) -> float:
    """Run one notebook with papermill; returns seconds. Raises MaskdepthError naming notebook and cell;
    an interrupt (KeyboardInterrupt, StageInterrupted) stops the notebook's kernel and goes on up."""
    import os

    import papermill as pm
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    nb_out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    saved_env = os.environ.get(PIPELINE_ENV)
    os.environ[PIPELINE_ENV] = "1"  # the kernel inherits it
    try:
        pm.execute_notebook(
            str(nb_in),
            str(nb_out),
            parameters=parameters,
            kernel_name=KERNEL,
            execution_timeout=timeout,
            progress_bar={"mininterval": 10.0, "ascii": True, "desc": nb_in.stem, "leave": False},
            cwd=str(cwd) if cwd else None,
            kernel_manager_class=_kernel_manager_class(),
        )
    except KeyboardInterrupt:
        _stop_kernels()
        raise
    except PapermillExecutionError as exc:
        if exc.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel before this process
            raise StageInterrupted("SIGINT") from None
        raise NotebookFailed(nb_in.name, exc.exec_count, exc.ename, exc.evalue, nb_out) from None
    except Exception as exc:  # kernel died, timeout
        said = (str(exc).strip().splitlines() or [""])[0]
        if isinstance(exc, CellTimeoutError):  # no cell may run past `timeout`
            said += " Give a longer run's cells more time: `maskdepth run --timeout SECONDS`."
        raise NotebookFailed(nb_in.name, None, type(exc).__name__, said, nb_out) from None
    finally:
        if saved_env is None:
            os.environ.pop(PIPELINE_ENV, None)
        else:
            os.environ[PIPELINE_ENV] = saved_env
        _KERNELS.clear()
    return time.perf_counter() - t0


class NotebookFailed(MaskdepthError):
    def __init__(self, notebook, cell, ename, evalue, output):
        self.notebook, self.cell, self.ename, self.evalue, self.output = notebook, cell, ename, evalue, output
        where = f"cell [{cell}]" if cell is not None else "a cell"
        first = str(evalue).strip().splitlines()[0] if str(evalue).strip() else ""
        super().__init__(f"{notebook} failed in {where}: {ename}: {first} (executed notebook kept at {output})")
