"""Figure 3: compute efficiency, training FLOP/s as a fraction of this machine's float32 matmul peak.

peak     a large float32 torch.mm loop (2 n^3 FLOP each) and a large 3x3 convolution, in the
         same threads and interleaved with the models' repeats; fractions use the higher
         (MKL's sgemm runs its AVX2 path on AMD CPUs, oneDNN's convolutions use AVX-512),
         and the JSON also holds them against the torch.mm peak alone
models   lean_unet, resnet_unet and the default model (`joint` with the 1k stage's model_kwargs),
         float32, contiguous: one training step on a fixed batch; training FLOP = 3 x forward
         FLOP (torch.utils.flop_counter: the backward costs about twice the forward); the JSON
         also holds the forward + backward FLOP the counter sees in one real step, and the
         fraction of peak from those
variants the default model with channels_last memory format (float32), and channels_last with
         bf16 autocast (what the trainer picks where it times clearly faster on this CPU:
         `maskdepth.training.precision`): which one helps? If a variant wins by more than
         `HELPS` the figure says so. Also the `space_to_depth` recipe's model (float32,
         channels_last): the same widths without the full-resolution layers the profile
         shows to be memory-bound (its quality: docs/recipes.md).
profile  torch.profiler over the default model's channels_last step in float32 and in bf16:
         self CPU time by op and by the resolution the op works at (`bench.profile_step`),
         written beside the results as <name>-profile.md and summarised in the table.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.profile_step import batch_for_profile, markdown, profile_steps, summary_line
from bench.report import fmt_percent, fmt_rate, fmt_ratio
from bench.settings import Settings
from bench.steps import LEAN, RESNET, default_config, default_rig, describe_default, fixed_batch, make_rig
from bench.timing import compare_rates
from maskdepth.plan.stages import LEAN_RECIPE

HELPS = 1.05  # a variant must be 5 % faster to count as helping (noise on a shared CPU is that large)


def matmul_chunk(n: int, calls: int, device: str = "cpu"):
    """A case for `compare_rates`: `calls` float32 n x n torch.mm, returning the FLOP done (2 n^3 each)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)

    def chunk() -> int:
        for _ in range(calls):
            torch.mm(a, b, out=out)
        return 2 * n**3 * calls

    return chunk


def conv3x3_chunk(calls: int, channels: int = 256, size: int = 32, batch: int = 8):
    """A case for `compare_rates`: `calls` float32 3x3 convolutions (oneDNN), returning their FLOP.

    Why beside torch.mm: MKL's sgemm may not use a CPU's widest vectors (AMD CPUs get its
    AVX2 path), while oneDNN's convolutions do; the machine's peak is the higher of the two."""
    x = torch.randn(batch, channels, size, size)
    w = torch.randn(channels, channels, 3, 3)

    def chunk() -> int:
        for _ in range(calls):
            torch.nn.functional.conv2d(x, w, padding=1)
        return 2 * channels * channels * 9 * size * size * batch * calls

    return chunk


def counted_step_gflops(rig, batch: dict, samples: int = 2) -> float:
    """Forward + backward GFLOP per sample of one training step, as FlopCounterMode counts them.

    A check on the 3 x forward rule: the first layer needs no input gradient, so the true
    factor is a little under 3. (The step updates the weights once; timing does not care.)"""
    from torch.utils.flop_counter import FlopCounterMode

    small = {k: v[:samples] if torch.is_tensor(v) else v for k, v in batch.items()}
    with FlopCounterMode(display=False) as counter:
        rig.step(small)
    return counter.get_total_flops() / samples / 1e9


def run(settings: Settings, workdir: Path) -> dict:
    from maskdepth.datasets.dataset import build_dataset
    from maskdepth.models import forward_gflops

    torch.set_num_threads(settings.threads)
    dataset = build_dataset("1k", "train", size=settings.size)
    batch = fixed_batch(dataset, settings.batch)
    batch_cl = fixed_batch(dataset, settings.batch, channels_last=True)
    default = default_config("1k")
    configs = {  # name -> (model, task, channels_last, autocast dtype, steps per repeat)
        "lean_unet": (*LEAN, False, None, settings.steps),
        "resnet_unet": (*RESNET, False, None, settings.seed_steps),
        "default": (default.model, default.task, False, None, settings.steps),
        "default_channels_last": (default.model, default.task, True, None, settings.steps),
        "default_channels_last_bf16": (default.model, default.task, True, torch.bfloat16, settings.steps),
        "previous_default_channels_last": (default.model, default.task, True, None, settings.steps),
        "space_to_depth_channels_last": (default.model, default.task, True, None, settings.steps),
    }
    # The peak runs interleaved with the models, so both see the same load from neighbours.
    gflops, counted = {}, {}
    cases = {"matmul_peak": matmul_chunk(settings.matmul_n, settings.matmul_calls),
             "conv3x3_peak": conv3x3_chunk(settings.matmul_calls)}
    for name, (model, task, channels_last, dtype, steps) in configs.items():
        kwargs = (default.model_kwargs if name.startswith("default") else
                  LEAN_RECIPE["model_kwargs"] if name.startswith("previous_default") else
                  space_to_depth_kwargs() if name.startswith("space_to_depth") else None)
        rig = make_rig(model, task, channels_last=channels_last, autocast_dtype=dtype, model_kwargs=kwargs)
        gflops[name] = forward_gflops(rig.model, settings.size)
        data = batch_cl if channels_last else batch
        counted[name] = counted_step_gflops(rig, data)
        cases[name] = (lambda rig=rig, data=data, steps=steps: sum(rig.step(data) for _ in range(steps)))
    rates = compare_rates(cases, repeats=settings.repeats, warmup=settings.warmup)
    peak, conv_peak = rates.pop("matmul_peak"), rates.pop("conv3x3_peak")
    peak_flops = max(peak.median, conv_peak.median)
    per_model = {}
    for name, rate in rates.items():
        train_flops = 3.0 * gflops[name] * 1e9 * rate.median
        per_model[name] = {
            "forward_gflops_per_sample": gflops[name],
            "train_gflops_per_sample_counted": counted[name],
            "fraction_of_peak_counted": counted[name] * 1e9 * rate.median / peak_flops,
            "samples_per_s": rate.to_dict(),
            "train_gflop_per_s": train_flops / 1e9,
            "fraction_of_peak": train_flops / peak_flops,
            "fraction_of_matmul_peak": train_flops / peak.median,
        }
    base = rates["default"].median
    speedups = {name: rates[name].median / base for name in ("default_channels_last", "default_channels_last_bf16")}
    best = max(speedups, key=speedups.get)
    helps = [name for name, s in speedups.items() if s >= HELPS]
    verdict = (f"helps: {', '.join(helps)} (best {best}, {fmt_ratio(speedups[best])}); the trainer uses "
               "channels_last by default and bf16 autocast where it times clearly faster" if helps
               else "neither helps here: the trainer's timing keeps float32 (amp=auto); --no-channels-last")
    trainer_default = describe_default()
    table = [["float32 peak: torch.mm, 3x3 conv",
              f"{fmt_rate(peak.median / 1e9, 'GFLOP/s')}, {fmt_rate(conv_peak.median / 1e9, 'GFLOP/s')}",
              f"mm {settings.matmul_n}^2, conv 256ch 32x32; {settings.threads} threads; "
              "fractions below use the higher"]]
    for name, info in per_model.items():
        table.append([f"{name} training", f"{fmt_rate(info['train_gflop_per_s'], 'GFLOP/s')} "
                      f"= {fmt_percent(info['fraction_of_peak'])} of peak",
                      f"{fmt_rate(info['samples_per_s']['median'])}, {info['forward_gflops_per_sample']:.3g} "
                      "GFLOP fwd/sample"])
    table.append(["default model: channels_last, + bf16 vs float32",
                  f"{fmt_ratio(speedups['default_channels_last'])}, {fmt_ratio(speedups['default_channels_last_bf16'])}",
                  verdict])
    previous = rates["default_channels_last"].median / rates["previous_default_channels_last"].median
    table.append(["default (Lite0 encoder) vs previous default (lean encoder), both float32 channels_last",
                  fmt_ratio(previous), f"{per_model['default']['forward_gflops_per_sample']:.3g} vs "
                  f"{per_model['previous_default_channels_last']['forward_gflops_per_sample']:.3g} GFLOP fwd/sample"])
    s2d_speedup = rates["space_to_depth_channels_last"].median / rates["previous_default_channels_last"].median
    table.append(["space_to_depth recipe vs previous default (both float32 channels_last)", fmt_ratio(s2d_speedup),
                  f"{fmt_percent(per_model['space_to_depth_channels_last']['fraction_of_peak'])} of peak: no "
                  "full-resolution layer; quality: docs/recipes.md (same IoU, lower ordering at 20 epochs)"])
    profiles = profile_default(settings, dataset)
    for name, prof in profiles.items():
        table.append([f"profile, default model {name} (channels_last)", f"{prof['step_self_cpu_ms']:.0f} ms/step",
                      summary_line(prof, settings.size)])
    return {
        "batch_size": settings.batch,
        "threads": settings.threads,
        "matmul_peak": {"n": settings.matmul_n, "gflop_per_s": peak.median / 1e9,
                        "best_gflop_per_s": max(peak.rates) / 1e9, "flop_per_s": peak.to_dict()},
        "conv3x3_peak": {"gflop_per_s": conv_peak.median / 1e9, "flop_per_s": conv_peak.to_dict()},
        "peak_gflop_per_s": peak_flops / 1e9,
        "models": per_model,
        "variant_speedup_vs_default": speedups,
        "space_to_depth_speedup_vs_default_channels_last": s2d_speedup,
        "variants_that_help": helps,
        "verdict": verdict,
        "trainer_default": trainer_default,
        "profile": profiles,
        "attachments": {"profile.md": markdown(
            profiles, f"Profile of the default model's channels_last training step, float32 and bf16 "
            f"(the trainer here: {describe_default()}), {settings.threads} threads")},
        "table": table,
    }


def space_to_depth_kwargs() -> dict:
    """The lean model without full-resolution layers (`maskdepth.workflow.ablation`'s space_to_depth recipe)."""
    from maskdepth.workflow.ablation import DEFAULT_RECIPES

    return {**LEAN_RECIPE["model_kwargs"], **DEFAULT_RECIPES["space_to_depth"]["model_kwargs"]}


def profile_default(settings: Settings, dataset) -> dict:
    """torch.profiler summaries of the default model's channels_last step, float32 and bf16."""
    batch = batch_for_profile(fixed_batch(dataset, settings.batch, channels_last=True), settings.batch + 1)
    return {name: profile_steps(default_rig(autocast=autocast, channels_last=True), batch,
                                steps=settings.profile_steps, size=settings.size)
            for name, autocast in (("float32", "off"), ("bf16", "bf16"))}
