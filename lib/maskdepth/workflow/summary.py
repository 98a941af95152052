"""summary.md of a run folder: the stage, its parameters, its gate and its metrics, for a reader.
"""

from __future__ import annotations

from pathlib import Path

from maskdepth.core.fileio import write_text
from maskdepth.validation.gate import describe_check


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
    if info.get("interrupted"):
        where = info["interrupted"]
        reached = f" after epoch {where['epoch']}" if where.get("epoch") is not None else ""
        lines.append(f"- interrupted ({where.get('signal')}) in {where.get('notebook')}{reached}; continue with "
                     f"`maskdepth run --resume {run_dir}`")
    for r in info.get("resumes", []):
        lines.append(f"- resumed {r['at']} (was {r['previous_status']}), skipped {', '.join(r['skipped']) or 'nothing'}"
                     + (f", changed {', '.join(r['changed'])}" if r.get("changed") else ""))
    if metrics:
        from maskdepth.pages.report import split_table

        lines += ["", split_table(metrics).rstrip()]
    if info.get("gate"):
        g = info["gate"]
        lines += ["", f"Gate: **{'passed' if g['passed'] else 'not passed'}** — "
                  + ", ".join(describe_check(c) for c in g["checks"])]
    write_text(run_dir / "summary.md", "\n".join(lines) + "\n")
