"""The GPU profile (issue 26): precision, workers, batch and lr from the machine's properties,
checked with fake devices (no GPU here), and `maskdepth doctor` on this machine."""

from __future__ import annotations

import pytest
import torch

from maskdepth.cli import main
from maskdepth.core.device import DeviceInfo, cuda_autocast_dtype, resolve_device
from maskdepth.models.budget import Footprint
from maskdepth.plan import machine as M
from maskdepth.plan.stages import STAGES, stage_defaults
from maskdepth.workflow import profile as P

T4 = M.Machine("cuda", "Tesla T4", 2, (7, 5), 14.7)  # Colab's free GPU: 2 vCPUs
A100 = M.Machine("cuda", "NVIDIA A100-SXM4-40GB", 12, (8, 0), 39.4)
H100 = M.Machine("cuda", "NVIDIA H100 80GB HBM3", 16, (9, 0), 79.1)
L4 = M.Machine("cuda", "NVIDIA L4", 8, (8, 9), 22.0)
V100 = M.Machine("cuda", "Tesla V100-SXM2-16GB", 8, (7, 0), 15.8)
CPU = M.Machine("cpu", "some CPU", 2)
CPU_BF16 = M.Machine("cpu", "a CPU with AMX", 32, cpu_bf16=True)


@pytest.mark.parametrize("machine, expected", [(T4, "float16"), (V100, "float16"), (A100, "bf16"), (L4, "bf16"),
                                               (H100, "bf16"), (CPU, "float32"), (CPU_BF16, "float32 or bf16")])
def test_precision_rule(machine, expected):
    precision, why = M.precision_for(machine)
    assert precision == expected
    if expected == "float16":
        assert "GradScaler" in why
    if machine.device == "cuda":
        assert cuda_autocast_dtype(machine.capability) == (torch.bfloat16 if expected == "bf16" else torch.float16)


def test_cuda_autocast_uses_bf16_from_ampere_and_a_grad_scaler_only_for_float16(monkeypatch):
    ampere = DeviceInfo(torch.device("cuda"), amp=True, pin_memory=True, cuda_bf16=True)
    turing = DeviceInfo(torch.device("cuda"), amp=True, pin_memory=True, cuda_bf16=False)
    assert ampere.amp_dtype == torch.bfloat16 and not ampere.grad_scaler and ampere.amp_name == "bf16"
    assert turing.amp_dtype == torch.float16 and turing.grad_scaler and turing.amp_name == "float16"
    assert DeviceInfo(torch.device("cpu"), amp=False, pin_memory=False).amp_name == "off"
    # resolve_device reads the capability of the device it picks
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for capability, bf16 in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        dev = resolve_device("cuda")
        assert dev.amp and dev.pin_memory and dev.cuda_bf16 is bf16
        assert dev.amp_dtype == (torch.bfloat16 if bf16 else torch.float16)


def test_workers_come_from_the_cpu_count_capped():
    assert [M.workers_for(n) for n in (1, 2, 4, 9, 16, 96)] == [0, 1, 3, 8, 8, 8]


def test_batch_and_lr_scale_together():
    assert M.scale_batch(256, 3e-3, 128) == (128, pytest.approx(1.5e-3))
    small = Footprint(params=1_000_000, activation_bytes=4_000_000)  # 4 MB per image
    roomy = M.Machine("cuda", "big", 8, (8, 0), 40.0)
    tight = M.Machine("cuda", "small", 8, (7, 5), 2.0)  # 2 GB * 0.6 = 1.2 GB: 8 MB/image in training -> 128
    assert M.fit_batch(256, 3e-3, small, roomy) == (256, 3e-3)
    batch, lr = M.fit_batch(256, 3e-3, small, tight)
    assert batch == 128 and lr == pytest.approx(3e-3 * 128 / 256)
    assert small.bytes(batch, training=True) <= M.memory_bytes(tight) < small.bytes(2 * batch, training=True)


def test_the_full_stage_adapts_to_the_machine_and_the_small_stages_do_not():
    tiny_gpu = M.Machine("cuda", "tiny", 4, (7, 5), 0.5)
    for machine in (T4, A100, H100, CPU):
        full = stage_defaults("full", machine=machine)
        assert full["workers"] == M.workers_for(machine.cpu_count)
        assert full["lr"] == pytest.approx(3e-3 * full["batch_size"] / 256)  # batch and lr move together
    # at the 128 px working size the default model fits at 256 on an 80 GB card; on a 40 GB A100 its
    # estimate is just over the share training may plan to use, so the batch halves once, and only once
    assert stage_defaults("full", machine=H100)["batch_size"] == 256
    assert stage_defaults("full", machine=A100)["batch_size"] == 128
    squeezed = stage_defaults("full", machine=tiny_gpu)
    assert squeezed["batch_size"] < 256 and squeezed["lr"] == pytest.approx(3e-3 * squeezed["batch_size"] / 256)
    for name in ("playground", "1k"):
        assert stage_defaults(name, machine=tiny_gpu) == stage_defaults(name, machine=H100)
        assert "workers" not in stage_defaults(name, machine=H100)
    assert STAGES["full"].adapts and not STAGES["1k"].adapts


def test_profile_line_says_device_precision_workers_and_batch():
    line = P.machine_profile(T4).line()
    assert "GPU Tesla T4" in line and "precision float16" in line and "2 CPUs -> 1 loader workers" in line
    assert "full stage batch " in line and " at lr " in line
    assert "precision bf16" in P.machine_profile(H100).line()
    assert P.machine_profile(CPU).line().startswith("no GPU: cpu some CPU")


def test_doctor_prints_what_this_machine_will_do(capsys):
    assert main(["doctor", "--no-timing"]) == 0
    out = capsys.readouterr().out
    for head in ("device ", "precision ", "workers ", "batch      full: ", "pin memory "):
        assert head in out
    if not torch.cuda.is_available():
        assert "pin memory no" in out and "device     cpu:" in out


def test_doctor_estimates_an_epoch_of_each_stage_from_a_timing(capsys, monkeypatch):
    monkeypatch.setattr(P, "time_steps", lambda params, batch, steps, device: 0.5)  # s per step
    assert main(["doctor", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    batch = 256 if torch.cuda.is_available() else 32
    per_sample = 0.5 / batch
    assert f"{1 / per_sample:.0f} samples/s" in out
    assert f"epoch      full: ~{P.describe_seconds(400_000 * per_sample)}" in out
    assert "epoch      playground: " in out and "epoch      1k: " in out


def test_the_timing_runs_the_stages_model_for_real():
    params = stage_defaults("1k") | {"size": 32}
    seconds = P.time_steps(params, batch=2, steps=1, device="cpu")
    assert 0 < seconds < 60
