"""The staged workflow: `maskdepth run --stage playground|1k|full` runs the notebooks with papermill.

00_setup → 01_create_data → 02_train → 03_validate run in kernels of the pipeline's own Python
(no kernel has to be registered), with parameters from the stage, `-f params.yaml` and `-p`. The
stage's gate decides whether the run passed, and the next stage needs a passing run (`--force`
overrides). Long stages run on machines that go away: a signal marks the run "interrupted" and
`--resume` continues it. Every run folder gets its page, RUN/index.html, however the stage ends.
Details: docs/workflow.md, "Stage runs"."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from maskdepth.core import runs
from maskdepth.core.environment import device_summary, git_commit, package_versions
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import folder_lock, read_json, write_json
from maskdepth.core.runs import METRICS_FILE, run_metrics
from maskdepth.pages.runpage import write_page
from maskdepth.plan.stages import STAGES, VAL_SPLITS, get_stage, stage_defaults
from maskdepth.validation.gate import check_prerequisite, describe_check, evaluate_gate, same_idea
from maskdepth.workflow.interrupts import LogTail, StageInterrupted, _signals_interrupt
from maskdepth.workflow.notebooks import NotebookFailed, declared_parameters, execute, notebooks_dir
from maskdepth.workflow.summary import write_summary

RESERVED = {"run_dir"}  # set by the pipeline for every notebook


@dataclass
class Step:
    notebook: str  # file name in notebooks/
    output: str  # executed copy's name in RUN/notebooks/
    fixed: dict = field(default_factory=dict)  # parameters this step always gets


STAGE_STEPS = [
    Step("00_setup.ipynb", "00_setup.ipynb"),
    Step("01_create_data.ipynb", "01_create_data.ipynb"),
    Step("02_train.ipynb", "02_train.ipynb"),
    # the real-photo check runs once, with the last split
    *(Step("03_validate.ipynb", f"03_validate_{split}.ipynb", {"split": split, "real": split == VAL_SPLITS[-1]})
      for split in VAL_SPLITS),
]
SINGLE_NOTEBOOKS = {"playground": "playground.ipynb", "loss_lab": "loss_lab.ipynb", "ablation": "ablation.ipynb",
                    "predict": "04_predict.ipynb"}


def check_parameters(params: dict, steps: list[Step], nb_dir: Path) -> dict[str, set]:
    """Names each notebook declares; unknown names (declared by none) are an error."""
    declared: dict[str, set] = {}
    for step in steps:
        path = nb_dir / step.notebook
        if not path.is_file():
            raise MaskdepthError(f"notebook {path} is missing")
        declared[step.notebook] = set(declared_parameters(path))
    known = set().union(*declared.values()) - RESERVED
    unknown = sorted(set(params) - known)
    if unknown:
        raise MaskdepthError(
            f"unknown parameter(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}"
        )
    return declared


def console(line: str) -> None:
    """A line on stdout that papermill's progress bar does not garble (cleared and redrawn around it)."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- execution -----------------------------------------------------------------------------


@dataclass
class RunResult:
    run_dir: Path
    status: str
    gate: dict | None
    info: dict


def run_stage(
    stage: str | None,
    overrides: dict | None = None,
    *,
    name: str | None = None,
    root: Path | None = None,
    force: bool = False,
    timeout: int = 1800,
    log=None,
    resume: Path | str | None = None,
) -> RunResult:
    """Run a stage's notebooks end to end; returns the run folder and its gate decision.

    `resume`: a run folder to continue instead (its stage comes from its run.json; `stage`, when
    given, must match). The notebooks recorded as done are skipped, unless a parameter they
    take changed (`overrides` on top of the run's own parameters; the data never changes);
    02_train continues from checkpoints/last.pt; validation runs again. SIGINT, SIGTERM and
    SIGHUP stop the stage with run.json status "interrupted" (notebook, epoch reached, signal)
    and raise StageInterrupted."""
    log = log or console
    nb_dir = notebooks_dir()
    overrides = dict(overrides or {})
    if overrides.get("out_dir"):
        raise MaskdepthError("parameter 'out_dir' is the run folder, which the pipeline sets: choose it with "
                             "--out DIR (the outputs root) and --name NAME, not -p out_dir")
    if resume is not None:
        run_dir, info, params, declared, steps = _prepare_resume(Path(resume), stage, overrides, nb_dir, force, log)
        stage = info["stage"]
    else:
        if stage is None:
            raise MaskdepthError("a stage to run is needed (--stage playground|1k|full)")
        get_stage(stage)  # fail early on an unknown stage
        root = Path(root) if root else runs.outputs_root()
        if "stage" in overrides and overrides["stage"] != stage:
            raise MaskdepthError("parameter 'stage' is set by --stage; don't pass it with -p")
        declared = check_parameters(overrides, STAGE_STEPS, nb_dir)
        params = {**stage_defaults(stage), **overrides}
        _coerce_known(params)

        prereq = check_prerequisite(stage, params, root, force)
        log(f"[gate] {prereq['decision']}")

        # Runs live under their stage whatever the data (a stage or a dataset folder): the gate looks there.
        run_dir = root / stage / (runs.check_run_name(name) or runs.new_run_name(params))
        if (run_dir / "run.json").exists():
            raise MaskdepthError(f"run folder {run_dir} already exists; choose another --name, or continue it "
                                 f"with `maskdepth run --resume {run_dir}`")
        run_dir.mkdir(parents=True, exist_ok=True)
        info: dict[str, Any] = {
            "stage": stage,
            "run_dir": str(run_dir),
            "params": params,
            "git_commit": git_commit(),
            "packages": package_versions(),
            "python": sys.version.split()[0],
            "device": device_summary(),
            "prerequisite": prereq,
            "start": _now(),
            "notebooks": [],
        }
        steps = list(STAGE_STEPS)
    with folder_lock(run_dir, "run"):
        return _run_steps(stage, run_dir, info, params, declared, steps, nb_dir, timeout, log)


def _run_steps(stage, run_dir: Path, info: dict, params: dict, declared: dict, steps: list[Step], nb_dir: Path,
               timeout: int, log) -> RunResult:
    import os
    import socket

    from maskdepth.training.runlog import TRAIN_LOG

    earlier = float(info.get("seconds") or 0.0)  # the sessions before a resume
    info.update(status="running", pid=os.getpid(), host=socket.gethostname())
    write_json(run_dir / "run.json", info)
    total0 = time.perf_counter()

    def seconds() -> float:
        return round(earlier + time.perf_counter() - total0, 1)

    entry: dict | None = None
    try:
        with _signals_interrupt():
            for step in steps:
                nb_params = {k: v for k, v in params.items() if k in declared[step.notebook]}
                nb_params.update(step.fixed)
                nb_params["run_dir"] = str(run_dir.resolve())
                if "resume" in declared[step.notebook] and (run_dir / "checkpoints" / "last.pt").is_file():
                    nb_params["resume"] = True  # an interrupted 02_train continues from its last checkpoint
                out = run_dir / "notebooks" / step.output
                log(f"[{stage}] {step.output} ...")
                entry = {"notebook": step.output, "start": _now()}
                info["notebooks"].append(entry)
                write_json(run_dir / "run.json", info)  # even a hard kill leaves the notebook it was in
                try:
                    with LogTail(run_dir / TRAIN_LOG, lambda line: log(f"[{stage}] {line}")):
                        took = execute(nb_dir / step.notebook, out, nb_params, timeout)
                except NotebookFailed as exc:
                    entry.update(status="failed", error=str(exc))
                    raise
                entry.update(status="ok", seconds=round(took, 1))
                log(f"[{stage}] {step.output} done in {took:.1f}s")
                write_json(run_dir / "run.json", info)
    except KeyboardInterrupt as exc:
        signame = getattr(exc, "signame", "SIGINT")
        where = {"notebook": entry["notebook"] if entry else None, "epoch": _epoch_reached(run_dir),
                 "signal": signame, "at": _now()}
        if entry is not None and "status" not in entry:
            entry["status"] = "interrupted"
        info.update(status="interrupted", interrupted=where, end=_now(), seconds=seconds())
        write_json(run_dir / "run.json", info)
        write_summary(run_dir, info, None)
        write_page(run_dir, log, render_notebooks=False)  # at once: a second signal may follow
        reached = f" after epoch {where['epoch']}" if where["epoch"] is not None else ""
        log(f"[{stage}] interrupted ({signame}) in {where['notebook']}{reached}; continue with: "
            f"maskdepth run --resume {run_dir}")
        raise StageInterrupted(signame, run_dir) from None
    except MaskdepthError as exc:
        info.update(status="failed", error=str(exc), end=_now(), seconds=seconds())
        write_json(run_dir / "run.json", info)
        write_summary(run_dir, info, None)
        write_page(run_dir, log)
        raise
    metrics_path = run_dir / METRICS_FILE
    metrics = run_metrics(run_dir, read_json(metrics_path) if metrics_path.is_file() else {})
    gate = evaluate_gate(stage, metrics)
    info.update(status="ok", gate=gate, end=_now(), seconds=seconds())
    write_json(run_dir / "run.json", info)
    write_summary(run_dir, info, metrics)
    write_page(run_dir, log)
    runs.point_latest(run_dir)
    verdict = "PASSED" if gate["passed"] else "did not pass"
    checks = ", ".join(describe_check(c) for c in gate["checks"])
    log(f"[gate] {stage} run {run_dir.name} {verdict}: {checks}")
    nxt = next((s for s in STAGES.values() if s.requires == stage), None)
    if gate["passed"] and nxt:
        log(f"[gate] next: maskdepth run --stage {nxt.name}")
    log(f"[{stage}] finished in {info['seconds']:.0f}s -> {run_dir}")
    return RunResult(run_dir, "ok", gate, info)


# -- resume --------------------------------------------------------------------------------
def _prepare_resume(run_dir: Path, stage: str | None, overrides: dict, nb_dir: Path, force: bool, log):
    """Check that `run_dir` can be continued; returns (run_dir, info, params, declared, steps to run)."""
    path = run_dir / "run.json"
    if not path.is_file():
        raise MaskdepthError(f"--resume {run_dir}: no run.json there (not the folder of a stage run)")
    try:
        info = read_json(path)
    except ValueError as exc:
        raise MaskdepthError(f"--resume {run_dir}: run.json is not valid JSON ({exc})") from None
    if stage is not None and stage != info.get("stage"):
        raise MaskdepthError(f"--resume {run_dir}: that is a {info.get('stage')} run, not {stage}")
    stage = info["stage"]
    _refuse_if_still_running(info, run_dir)
    old = dict(info.get("params") or {})
    if "stage" in overrides and overrides["stage"] != stage:
        raise MaskdepthError(f"--resume {run_dir}: the run is a {stage} run; a resumed run keeps its stage")
    if "data" in overrides and str(overrides["data"]) != str(old.get("data")):
        raise MaskdepthError(f"--resume {run_dir}: the run trains on {old.get('data')!r} and never switches data; "
                             f"start a new run for {overrides['data']!r}")
    declared = check_parameters(overrides, STAGE_STEPS, nb_dir)
    params = {**old, **overrides}
    _coerce_known(params)
    _check_training_values(params)
    changed = {k: [old.get(k), v] for k, v in params.items() if old.get(k) != v}
    done = {e.get("notebook") for e in info.get("notebooks", []) if e.get("status") == "ok"}
    skipped: list[str] = []
    steps: list[Step] = []
    for step in STAGE_STEPS:
        touched = any(k in declared[step.notebook] for k in changed)
        if not steps and step.output in done and not touched:
            skipped.append(step.output)
        else:
            steps.append(step)
    if not steps:
        raise MaskdepthError(f"--resume {run_dir}: every notebook of this run is done (status {info.get('status')}); "
                             "nothing to resume (to train longer, pass e.g. -p epochs N)")
    if not same_idea(old, params):
        info["prerequisite"] = check_prerequisite(stage, params, run_dir.parent.parent, force)
        log(f"[gate] {info['prerequisite']['decision']}")
    info.setdefault("resumes", []).append({
        "at": _now(),
        "previous_status": info.get("status"),
        "interrupted": info.get("interrupted"),
        "skipped": skipped,
        "changed": changed,
    })
    for key in ("interrupted", "error", "end", "gate"):
        info.pop(key, None)
    info["notebooks"] = [e for e in info.get("notebooks", []) if e.get("notebook") in skipped]
    info["params"] = params
    said = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
    log(f"[{stage}] resuming {run_dir} ({info['resumes'][-1]['previous_status']}): "
        + (f"skipping {', '.join(skipped)}" if skipped else "running every notebook again")
        + (f"; changed: {said}" if said else ""))
    return run_dir, info, params, declared, steps


UNFINISHED = ("interrupted", "running", "failed")  # run.json statuses a --resume can continue


def unfinished_run(stage: str, root: Path | None = None) -> Path | None:
    """The newest run of `stage` under `root` (default: the outputs root, Google Drive on Colab)
    that did not finish: interrupted, failed, or "running" with no live process (a VM gone)."""
    import socket

    folder = Path(root or runs.outputs_root()) / stage
    for run_json in sorted(runs.run_files(folder), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            info = read_json(run_json)
        except (OSError, ValueError):
            continue
        if info.get("status") not in UNFINISHED:
            continue
        if info.get("status") == "running" and info.get("host") == socket.gethostname():
            try:
                _refuse_if_still_running(info, run_json.parent)
            except MaskdepthError:
                continue  # alive: not ours to continue
        return run_json.parent
    return None


def run_or_resume(stage: str, overrides: dict | None = None, **kwargs) -> RunResult:
    """`maskdepth run --stage STAGE --resume`: continue the stage's newest unfinished run (after a
    disconnect, from Drive on Colab), else start a new one."""
    previous = unfinished_run(stage, kwargs.get("root"))
    if previous is None:
        return run_stage(stage, overrides, **kwargs)
    return run_stage(stage, overrides, resume=previous, **{k: v for k, v in kwargs.items() if k not in ("root", "name")})


def _refuse_if_still_running(info: dict, run_dir: Path) -> None:
    """status "running" is either a live process or one that died without a word (SIGKILL, a VM
    gone): only a live process on this machine is refused."""
    import os
    import socket

    pid = info.get("pid")
    if info.get("status") != "running" or not pid or os.name != "posix":
        return
    if info.get("host") != socket.gethostname() or pid == os.getpid():
        return
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    raise MaskdepthError(f"--resume {run_dir}: it is still running (pid {pid}); stop it first (kill -TERM {pid}), "
                         "then resume")


def _epoch_reached(run_dir: Path) -> int | None:
    """The last epoch the run's training finished (history.json), None before the first."""
    try:
        epochs = read_json(run_dir / "history.json").get("epochs") or []
    except (OSError, ValueError):
        return None
    return int(epochs[-1]["epoch"]) if epochs else None


def _check_training_values(params: dict) -> None:
    """Types and ranges of the training parameters (a one-line error before any notebook runs)."""
    from maskdepth.training.config import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    TrainConfig.from_mapping({k: v for k, v in params.items() if k in names}, strict=False)


def run_single_notebook(which: str, overrides: dict | None = None, *, name: str | None = None,
                        root: Path | None = None, timeout: int = 3600, log=print) -> Path:
    """`maskdepth run --notebook NAME` (a key of SINGLE_NOTEBOOKS): one notebook into outputs/<which>/<run>/."""
    if which not in SINGLE_NOTEBOOKS:
        raise MaskdepthError(f"--notebook {which!r}: choose one of {', '.join(SINGLE_NOTEBOOKS)}")
    nb_dir = notebooks_dir()
    step = Step(SINGLE_NOTEBOOKS[which], SINGLE_NOTEBOOKS[which])
    declared = check_parameters(dict(overrides or {}), [step], nb_dir)
    params = {k: v for k, v in (overrides or {}).items()}
    root = Path(root) if root else runs.outputs_root()
    run_dir = root / which / (runs.check_run_name(name) or runs.new_run_name(params))
    run_dir.mkdir(parents=True, exist_ok=True)
    nb_params = {k: v for k, v in params.items() if k in declared[step.notebook]} | {"run_dir": str(run_dir.resolve())}
    log(f"[{which}] {step.output} ...")
    seconds = execute(nb_dir / step.notebook, run_dir / step.output, nb_params, timeout)
    log(f"[{which}] done in {seconds:.1f}s -> {run_dir}")
    return run_dir


def _coerce_known(params: dict) -> None:
    """Give -p values the type of the training config's fields (e.g. epochs '3' -> 3)."""
    from maskdepth.core.params import coerce, field_defaults
    from maskdepth.training.config import TrainConfig

    defaults = field_defaults(TrainConfig)
    for k, v in params.items():
        if k in defaults:
            params[k] = coerce(k, v, defaults[k])


