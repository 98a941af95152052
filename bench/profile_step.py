"""Where a training step's CPU time goes: torch.profiler over the default model's step, by op and by
the spatial resolution the op works at (figure 3's profile summary).

Ops are grouped by the resolution of the activations they read: a 4-D input whose first
dimension is the batch. The profiled batch is the figure's batch + 1 (an odd number no layer
width equals), so a weight [out, in, k, k] is never mistaken for an activation. Ops reading no
activation (the optimizer's update, the loss's reductions, autograd bookkeeping) are "other".
Times are self CPU time (each op's own, without the ops it calls), summed over the profiled
steps and divided by their number. With `with_flops`, the profiler counts the FLOP of forward
convolutions and matmuls, which gives each resolution's achieved forward-conv GFLOP/s: low
where a layer is memory-bound (few channels, many pixels).
"""

from __future__ import annotations

from collections import defaultdict

import torch

from bench.report import fmt_percent

TOP = 12


def _shapes(shapes):
    """The tensor shapes among an op's inputs (a list input such as cat's is opened)."""
    for s in shapes or ():
        if isinstance(s, (list, tuple)) and s and all(isinstance(v, int) for v in s):
            yield s
        elif isinstance(s, (list, tuple)):
            yield from _shapes(s)


def _resolution(shapes, batch: int) -> int | None:
    sizes = [s[2] for s in _shapes(shapes) if len(s) == 4 and s[0] == batch]
    return max(sizes) if sizes else None


def bucket_name(h: int | None, size: int) -> str:
    if h is None:
        return "other (no activation: optimizer, loss, autograd)"
    if h >= size:
        return f"full resolution ({size}x{size})"
    if 2 * h >= size:
        return f"half resolution ({h}x{h})"
    return f"low resolution (<= {size // 4}x{size // 4})"


def profile_steps(rig, batch: dict, *, steps: int, size: int) -> dict:
    """One warm-up step, then `steps` profiled steps of `rig` on `batch` (the first dimension is
    what identifies activations, see the module doc)."""
    from torch.profiler import ProfilerActivity, profile

    n = int(batch["image"].shape[0])
    rig.step(batch)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        for _ in range(steps):
            rig.step(batch)
    by_op: dict[str, dict] = defaultdict(lambda: {"self_ms": 0.0, "calls": 0})
    by_res: dict[str, dict] = defaultdict(lambda: {"self_ms": 0.0, "fwd_conv_mm_gflop": 0.0, "fwd_conv_mm_ms": 0.0})
    by_op_res: dict[tuple, float] = defaultdict(float)
    total = 0.0
    for event in prof.key_averages(group_by_input_shape=True):
        ms = event.self_cpu_time_total / 1000.0 / steps
        if ms <= 0:
            continue
        total += ms
        res = bucket_name(_resolution(event.input_shapes, n), size)
        by_op[event.key]["self_ms"] += ms
        by_op[event.key]["calls"] += event.count / steps
        by_res[res]["self_ms"] += ms
        by_op_res[(event.key, res)] += ms
        flops = getattr(event, "flops", 0) or 0
        if flops:
            by_res[res]["fwd_conv_mm_gflop"] += flops / 1e9 / steps
            # the op's whole time (the kernels it calls), as its FLOP are done there
            by_res[res]["fwd_conv_mm_ms"] += event.cpu_time_total / 1000.0 / steps
    for info in by_res.values():
        info["share"] = info["self_ms"] / total if total else float("nan")
        info["fwd_conv_mm_gflop_per_s"] = (info["fwd_conv_mm_gflop"] / (info["fwd_conv_mm_ms"] / 1000.0)
                                           if info["fwd_conv_mm_ms"] else None)
    top = sorted(by_op.items(), key=lambda kv: -kv[1]["self_ms"])[:TOP]
    top_pairs = sorted(by_op_res.items(), key=lambda kv: -kv[1])[:TOP]
    return {
        "batch_size": n,
        "steps": steps,
        "step_self_cpu_ms": total,
        "top_ops": [{"op": k, **v, "share": v["self_ms"] / total} for k, v in top],
        "by_resolution": dict(sorted(by_res.items(), key=lambda kv: -kv[1]["self_ms"])),
        "top_op_resolution": [{"op": k, "resolution": r, "self_ms": ms, "share": ms / total}
                              for (k, r), ms in top_pairs],
    }


def markdown(profiles: dict[str, dict], title: str) -> str:
    """The profile summary as markdown: per precision, time by resolution and the top ops."""
    lines = [f"# {title}", ""]
    for name, p in profiles.items():
        lines += [f"## {name}: {p['step_self_cpu_ms']:.1f} ms of self CPU time per step "
                  f"(batch {p['batch_size']}, mean of {p['steps']} profiled steps)", "",
                  "| resolution | self CPU ms/step | share | forward conv/matmul GFLOP/s |", "|---|---|---|---|"]
        for res, info in p["by_resolution"].items():
            rate = info["fwd_conv_mm_gflop_per_s"]
            lines.append(f"| {res} | {info['self_ms']:.1f} | {fmt_percent(info['share'])} | "
                         f"{'' if rate is None else f'{rate:.1f}'} |")
        lines += ["", "| op | self CPU ms/step | share | calls/step |", "|---|---|---|---|"]
        for op in p["top_ops"]:
            lines.append(f"| `{op['op']}` | {op['self_ms']:.1f} | {fmt_percent(op['share'])} | {op['calls']:.0f} |")
        lines += ["", "| op at resolution | self CPU ms/step | share |", "|---|---|---|"]
        for row in p["top_op_resolution"]:
            lines.append(f"| `{row['op']}`, {row['resolution']} | {row['self_ms']:.1f} | {fmt_percent(row['share'])} |")
        lines.append("")
    return "\n".join(lines)


def summary_line(p: dict, size: int) -> str:
    """'full res 48 %, half 20 %, low 12 %, other 20 %; top: op (share), ...'"""
    parts = [f"{res.split(' (')[0]} {fmt_percent(info['share'])}" for res, info in p["by_resolution"].items()]
    top = ", ".join(f"{op['op'].replace('aten::', '')} {fmt_percent(op['share'])}" for op in p["top_ops"][:3])
    return "; ".join(parts) + f"; top ops: {top}"


def batch_for_profile(batch: dict, n: int) -> dict:
    """`batch` grown or cut to `n` samples (repeating it), keeping each tensor's memory format."""
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() >= 1:
            reps = -(-n // value.shape[0])
            grown = value.repeat(reps, *([1] * (value.dim() - 1)))[:n]
            if value.dim() == 4 and value.is_contiguous(memory_format=torch.channels_last):
                grown = grown.contiguous(memory_format=torch.channels_last)
            out[key] = grown
        else:
            out[key] = value
    return out
