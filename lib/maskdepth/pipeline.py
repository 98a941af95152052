"""The staged workflow: `maskdepth run --stage playground|1k|full` runs the notebooks with papermill.

00_setup → 01_create_data → 02_train → 03_validate (seen, then unseen, then ood), each
executed with the `maskdepth` kernel and a per-cell timeout into `outputs/<stage>/<run>/notebooks/`.
Parameters: the stage's defaults (`maskdepth.stages`) overridden by `-f params.yaml`
and then by `-p NAME VALUE`; a name no notebook declares is an error.

The gate carries the seed's rule "only the promising changes go on": a stage's run passes
when its validation metrics clear the stage's thresholds (a minimum for a metric where
higher is better, a maximum where lower is better, per the catalogue in
`maskdepth.metrics`); a threshold on a split the run had no samples in (e.g. `ood` of an
imported dataset folder) is skipped and says so. `1k` needs a passing playground run with
the same model/loss settings and `full` a passing 1k run, unless `--force`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from maskdepth import runs
from maskdepth.errors import MaskdepthError
from maskdepth.io import read_json, write_json, write_text
from maskdepth.metrics import finite_or_none, format_value, higher_is_better, parse_split_metric
from maskdepth.stages import STAGES, VAL_SPLITS, get_stage

KERNEL = "maskdepth"
NOTEBOOK_DIR_ENV = "MASKDEPTH_NOTEBOOKS"
RESERVED = {"run_dir"}  # set by the pipeline for every notebook
# The settings that make two runs "the same idea" for the gate.
GATE_KEYS = ("model", "model_kwargs", "task", "input_mode", "mask_loss", "depth_loss", "mask_weight",
             "depth_weight", "uncertainty", "size")


@dataclass
class Step:
    notebook: str  # file name in notebooks/
    output: str  # executed copy's name in RUN/notebooks/
    fixed: dict = field(default_factory=dict)  # parameters this step always gets


STAGE_STEPS = [
    Step("00_setup.ipynb", "00_setup.ipynb"),
    Step("01_create_data.ipynb", "01_create_data.ipynb"),
    Step("02_train.ipynb", "02_train.ipynb"),
    *(Step("03_validate.ipynb", f"03_validate_{split}.ipynb", {"split": split}) for split in VAL_SPLITS),
]
SINGLE_NOTEBOOKS = {"playground": "playground.ipynb", "loss_lab": "loss_lab.ipynb"}


def notebooks_dir() -> Path:
    """The notebooks shipped with the repo (or `$MASKDEPTH_NOTEBOOKS`)."""
    import os

    env = os.environ.get(NOTEBOOK_DIR_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "notebooks" / "02_train.ipynb").is_file():
            return parent / "notebooks"
    return Path("notebooks")


def stage_defaults(stage: str) -> dict:
    """The one place a stage's pipeline parameters come from."""
    st = get_stage(stage)
    return {"stage": st.name, "data": st.name, "size": 64, "seed": 0, **st.train_defaults}


def declared_parameters(path: Path) -> dict:
    import papermill as pm

    return pm.inspect_notebook(str(path))


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


# -- gate ----------------------------------------------------------------------------------
def evaluate_gate(stage: str, metrics: dict) -> dict:
    """Compare a run's validation metrics (its metrics.json) with the stage's thresholds.

    Each threshold is keyed 'split.metric'; it is a minimum ("min") for a metric where higher
    is better and a maximum ("max") where lower is better. A missing or undefined value fails,
    except on a split the run had no samples in (metrics["n_samples"][split] == 0): that
    check is skipped (ok, with "skipped": "no <split> samples")."""
    checks = []
    counts = metrics.get("n_samples") or {}
    for key, threshold in get_stage(stage).gate.items():
        split, name = parse_split_metric(key)
        value = finite_or_none((metrics.get(split) or {}).get(name))
        bound = "min" if higher_is_better(name) else "max"
        check = {"metric": key, "value": value, bound: threshold}
        if value is None and counts.get(split) == 0:
            check.update(ok=True, skipped=f"no {split} samples")
        else:
            ok = value is not None and (value >= threshold if bound == "min" else value <= threshold)
            check["ok"] = bool(ok)
        checks.append(check)
    return {"passed": all(c["ok"] for c in checks), "checks": checks}


def describe_check(check: dict, sep: str = " ") -> str:
    """"unseen.iou 0.912 (min 0.88)"; "ood.iou skipped (no ood samples)"."""
    if check.get("skipped"):
        return f"{check['metric']} skipped ({check['skipped']})"
    bound = "min" if "min" in check else "max"
    name = check["metric"].partition(".")[2]
    return f"{check['metric']}{sep}{format_value(name, check['value'])} ({bound} {check[bound]})"


def gate_settings(params: dict) -> dict:
    """The settings that define an idea, with the training defaults filled in."""
    from maskdepth.params import field_defaults
    from maskdepth.train import TrainConfig

    defaults = field_defaults(TrainConfig)
    return {k: params.get(k, defaults.get(k)) for k in GATE_KEYS}


def same_idea(a: dict, b: dict) -> bool:
    return gate_settings(a) == gate_settings(b)


def find_passing_run(stage: str, params: dict, root: Path) -> Path | None:
    folder = root / stage
    if not folder.is_dir():
        return None
    for run_json in sorted(folder.glob("*/run.json"), reverse=True):
        try:
            info = read_json(run_json)
        except (OSError, json.JSONDecodeError):
            continue
        if info.get("status") == "ok" and info.get("gate", {}).get("passed") and same_idea(info.get("params", {}), params):
            return run_json.parent
    return None


def check_prerequisite(stage: str, params: dict, root: Path, force: bool) -> dict:
    need = get_stage(stage).requires
    if need is None:
        return {"required": None, "decision": "no prerequisite"}
    found = find_passing_run(need, params, root)
    settings = ", ".join(f"{k}={v!r}" for k, v in gate_settings(params).items())
    if found:
        return {"required": need, "run": str(found), "decision": f"go: {need} run {found.name} passed with the same settings"}
    if force:
        return {"required": need, "run": None, "decision": f"forced: no passing {need} run with {settings}"}
    overrides = " ".join(f"-p {k} {json.dumps(params[k]) if not isinstance(params[k], str) else params[k]}"
                         for k in GATE_KEYS if k in params and params[k] != stage_defaults(need).get(k, params[k]))
    command = f"maskdepth run --stage {need} {overrides}".strip()
    raise MaskdepthError(
        f"stage {stage} needs a {need} run that passed its gate with the same settings ({settings}); none found "
        f"under {root / need}. Run `{command}` first, or pass --force."
    )


# -- provenance ----------------------------------------------------------------------------
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict:
    from importlib import metadata

    names = ["maskdepth", "torch", "torchvision", "numpy", "pillow", "papermill", "matplotlib", "tensorboard",
             "torchmetrics"]
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def _device_summary() -> dict:
    from maskdepth.device import cpu_has_fast_bf16, describe

    return {**describe(), "cpu_native_bf16": cpu_has_fast_bf16()}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- execution -----------------------------------------------------------------------------
def _kernel_manager_class():
    """Talk to the kernel over local IPC sockets where the OS has them: nothing listens on TCP,
    and ipykernel stops warning about unencrypted TCP in every papermill log. Shutdown sends
    no interrupt to a kernel that is shutting down anyway."""
    import os

    from jupyter_client.manager import AsyncKernelManager

    class QuietShutdownKernelManager(AsyncKernelManager):
        async def _async_interrupt_kernel(self) -> None:
            # shutdown_kernel interrupts first; an idle kernel would only log a spurious
            # "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel" on a successful run.
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

    if os.name != "posix":
        return QuietShutdownKernelManager

    class IPCKernelManager(QuietShutdownKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

    return IPCKernelManager


def execute(nb_in: Path, nb_out: Path, parameters: dict, timeout: int, cwd: Path | None = None) -> float:
    """Run one notebook with papermill; returns seconds. Raises MaskdepthError naming notebook and cell."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    nb_out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
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
    except PapermillExecutionError as exc:
        raise NotebookFailed(nb_in.name, exc.exec_count, exc.ename, exc.evalue, nb_out) from None
    except Exception as exc:  # kernel died, timeout, missing kernel
        if "No such kernel" in str(exc):
            raise MaskdepthError(
                f"{nb_in.name}: Jupyter kernel {KERNEL!r} is not installed; run `make setup` or "
                f"`python -m ipykernel install --sys-prefix --name {KERNEL}`"
            ) from None
        raise NotebookFailed(nb_in.name, None, type(exc).__name__, str(exc), nb_out) from None
    return time.perf_counter() - t0


class NotebookFailed(MaskdepthError):
    def __init__(self, notebook, cell, ename, evalue, output):
        self.notebook, self.cell, self.ename, self.evalue, self.output = notebook, cell, ename, evalue, output
        where = f"cell [{cell}]" if cell is not None else "a cell"
        first = str(evalue).strip().splitlines()[0] if str(evalue).strip() else ""
        super().__init__(f"{notebook} failed in {where}: {ename}: {first} (executed notebook kept at {output})")


@dataclass
class RunResult:
    run_dir: Path
    status: str
    gate: dict | None
    info: dict


def run_stage(
    stage: str,
    overrides: dict | None = None,
    *,
    name: str | None = None,
    root: Path | None = None,
    force: bool = False,
    timeout: int = 1800,
    log=print,
) -> RunResult:
    """Run a stage's notebooks end to end; returns the run folder and its gate decision."""
    get_stage(stage)  # fail early on an unknown stage
    nb_dir = notebooks_dir()
    root = Path(root) if root else runs.outputs_root()
    overrides = dict(overrides or {})
    if "stage" in overrides and overrides["stage"] != stage:
        raise MaskdepthError("parameter 'stage' is set by --stage; don't pass it with -p")
    if overrides.get("out_dir"):
        raise MaskdepthError("parameter 'out_dir' is the run folder, which the pipeline sets: choose it with "
                             "--out DIR (the outputs root) and --name NAME, not -p out_dir")
    declared = check_parameters(overrides, STAGE_STEPS, nb_dir)
    params = {**stage_defaults(stage), **overrides}
    _coerce_known(params)

    prereq = check_prerequisite(stage, params, root, force)
    log(f"[gate] {prereq['decision']}")

    # Runs live under their stage whatever the data (a stage or a dataset folder): the gate looks there.
    run_dir = root / stage / (name or runs.new_run_name(params))
    if (run_dir / "run.json").exists():
        raise MaskdepthError(f"run folder {run_dir} already exists; choose another --name")
    run_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "stage": stage,
        "run_dir": str(run_dir),
        "params": params,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "device": _device_summary(),
        "prerequisite": prereq,
        "start": _now(),
        "notebooks": [],
        "status": "running",
    }
    write_json(run_dir / "run.json", info)
    total0 = time.perf_counter()
    try:
        for step in STAGE_STEPS:
            nb_params = {k: v for k, v in params.items() if k in declared[step.notebook]}
            nb_params.update(step.fixed)
            nb_params["run_dir"] = str(run_dir.resolve())
            out = run_dir / "notebooks" / step.output
            log(f"[{stage}] {step.output} ...")
            entry = {"notebook": step.output, "start": _now()}
            info["notebooks"].append(entry)
            try:
                seconds = execute(nb_dir / step.notebook, out, nb_params, timeout)
            except NotebookFailed as exc:
                entry.update(status="failed", error=str(exc))
                raise
            entry.update(status="ok", seconds=round(seconds, 1))
            log(f"[{stage}] {step.output} done in {seconds:.1f}s")
            write_json(run_dir / "run.json", info)
    except MaskdepthError as exc:
        info.update(status="failed", error=str(exc), end=_now(), seconds=round(time.perf_counter() - total0, 1))
        write_json(run_dir / "run.json", info)
        write_summary(run_dir, info, None)
        raise
    metrics_path = run_dir / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.is_file() else {}
    gate = evaluate_gate(stage, metrics)
    info.update(status="ok", gate=gate, end=_now(), seconds=round(time.perf_counter() - total0, 1))
    write_json(run_dir / "run.json", info)
    write_summary(run_dir, info, metrics)
    verdict = "PASSED" if gate["passed"] else "did not pass"
    checks = ", ".join(describe_check(c) for c in gate["checks"])
    log(f"[gate] {stage} run {run_dir.name} {verdict}: {checks}")
    nxt = next((s for s in STAGES.values() if s.requires == stage), None)
    if gate["passed"] and nxt:
        log(f"[gate] next: maskdepth run --stage {nxt.name}")
    log(f"[{stage}] finished in {info['seconds']:.0f}s -> {run_dir}")
    return RunResult(run_dir, "ok", gate, info)


def run_single_notebook(which: str, overrides: dict | None = None, *, name: str | None = None,
                        root: Path | None = None, timeout: int = 3600, log=print) -> Path:
    """`maskdepth run --notebook playground|loss_lab`: one notebook into outputs/<which>/<run>/."""
    if which not in SINGLE_NOTEBOOKS:
        raise MaskdepthError(f"--notebook {which!r}: choose one of {', '.join(SINGLE_NOTEBOOKS)}")
    nb_dir = notebooks_dir()
    step = Step(SINGLE_NOTEBOOKS[which], SINGLE_NOTEBOOKS[which])
    declared = check_parameters(dict(overrides or {}), [step], nb_dir)
    params = {k: v for k, v in (overrides or {}).items()}
    root = Path(root) if root else runs.outputs_root()
    run_dir = root / which / (name or runs.new_run_name(params))
    run_dir.mkdir(parents=True, exist_ok=True)
    nb_params = {k: v for k, v in params.items() if k in declared[step.notebook]} | {"run_dir": str(run_dir.resolve())}
    log(f"[{which}] {step.output} ...")
    seconds = execute(nb_dir / step.notebook, run_dir / step.output, nb_params, timeout)
    log(f"[{which}] done in {seconds:.1f}s -> {run_dir}")
    return run_dir


def _coerce_known(params: dict) -> None:
    """Give -p values the type of the training config's fields (e.g. epochs '3' -> 3)."""
    from maskdepth.params import coerce, field_defaults
    from maskdepth.train import TrainConfig

    defaults = field_defaults(TrainConfig)
    for k, v in params.items():
        if k in defaults:
            params[k] = coerce(k, v, defaults[k])


def write_summary(run_dir: Path, info: dict, metrics: dict | None) -> None:
    """A few lines that say what ran and how it did."""
    p = info["params"]
    lines = [
        f"# {info['stage']} run `{run_dir.name}`",
        "",
        f"- status: **{info['status']}**, {info.get('seconds', 0):.0f} s, started {info['start']}",
        f"- model `{p.get('model', 'joint')}`, task {p.get('task', 'joint')}, data {p.get('data')}, "
        f"{p.get('size')} px, {p.get('epochs')} epochs, lr {p.get('lr')}",
        f"- gate prerequisite: {info['prerequisite']['decision']}",
    ]
    for nb in info["notebooks"]:
        lines.append(f"- {nb['notebook']}: {nb.get('status')} {nb.get('seconds', '')}{'s' if 'seconds' in nb else ''}")
    if info.get("error"):
        lines.append(f"- error: {info['error']}")
    if metrics:
        from maskdepth.report import split_table

        lines += ["", split_table(metrics).rstrip()]
    if info.get("gate"):
        g = info["gate"]
        lines += ["", f"Gate: **{'passed' if g['passed'] else 'not passed'}** — "
                  + ", ".join(describe_check(c) for c in g["checks"])]
    write_text(run_dir / "summary.md", "\n".join(lines) + "\n")
