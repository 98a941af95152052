"""amp=auto on a CPU: bf16 only when it times clearly faster; the choice is remembered and a
resumed run keeps its checkpoint's precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import maskdepth.core.device as device_mod
from maskdepth.models import create_model
from maskdepth.training import precision as P
from maskdepth.training.config import TrainConfig
from maskdepth.training.trainer import Trainer, train

TINY = dict(data="playground", size=32, batch_size=8, val_batch_size=16, epochs=1, lr=3e-3,
            progress_bar=False, tensorboard=False, model_kwargs={"encoder": "lean", "context": False, "base_channels": 8})


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDEPTH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "precision.json"


def fake_timing(monkeypatch, float32_ms: float, bf16_ms: float) -> list:
    calls = []

    def timed(*args, **kwargs):
        calls.append(1)
        return float32_ms, bf16_ms

    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(P, "time_precisions", timed)
    return calls


def test_bf16_needs_a_clear_speedup():
    assert P.prefers_bf16(115.0, 100.0)  # exactly MIN_SPEEDUP
    assert not P.prefers_bf16(114.9, 100.0)
    assert not P.prefers_bf16(100.0, 120.0)  # slower (what an Intel Xeon with AVX512-BF16 measured)
    assert not P.prefers_bf16(100.0, 0.0)


def test_no_native_bf16_means_float32_without_timing(monkeypatch, own_cache):
    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(P, "time_precisions", lambda *a, **k: pytest.fail("timed on a CPU without bf16"))
    choice = P.choose_cpu_precision(create_model("joint", encoder="lean", context=False, base_channels=4), 3, 32, 8,
                                    channels_last=False)
    assert choice.autocast == "off" and not choice.enabled and "no native bf16" in choice.reason


def test_the_timing_decides_and_is_remembered(monkeypatch, own_cache):
    model = create_model("joint", encoder="lean", context=False, base_channels=4)
    calls = fake_timing(monkeypatch, 200.0, 100.0)
    first = P.choose_cpu_precision(model, 3, 32, 8, channels_last=False)
    assert first.autocast == "bf16" and first.label == "bf16 autocast" and "2.00x faster" in first.reason
    assert len(calls) == 1 and own_cache.is_file()
    again = P.choose_cpu_precision(model, 3, 32, 8, channels_last=False)  # same machine, same setting
    assert again.autocast == "bf16" and len(calls) == 1 and "remembered" in again.reason
    other = P.choose_cpu_precision(model, 3, 64, 8, channels_last=False)  # another input size: timed anew
    assert len(calls) == 2 and other.autocast == "bf16"
    assert len(json.loads(own_cache.read_text())) == 2


def test_timing_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = create_model("joint", encoder="lean", context=False, base_channels=4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    f32, bf16 = P.time_precisions(model, 3, 32, 4, channels_last=True, steps=1)
    assert f32 > 0 and bf16 > 0
    for key, value in model.state_dict().items():  # BatchNorm running statistics included
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())


def test_a_run_records_its_precision_and_resume_keeps_it(tmp_path, monkeypatch, own_cache):
    fake_timing(monkeypatch, 200.0, 100.0)  # bf16 clearly faster at the start
    cfg = TrainConfig.from_mapping({**TINY, "out_dir": str(tmp_path / "run")})
    metrics = train(cfg)
    assert metrics["precision"]["autocast"] == "bf16"
    run = Path(cfg.out_dir)
    assert json.loads((run / "metrics.json").read_text())["precision"]["autocast"] == "bf16"
    assert "(bf16 autocast)" in (run / "train.log").read_text()

    own_cache.unlink()
    calls = fake_timing(monkeypatch, 100.0, 200.0)  # a new timing would now say float32
    resumed = Trainer(TrainConfig.from_mapping({**TINY, "out_dir": str(run), "resume": True, "epochs": 2}))
    resumed.load_for_resume()
    assert resumed.dev.amp and resumed.precision.autocast == "bf16" and "checkpoint" in resumed.precision.reason
    assert not calls  # the checkpoint decided, nothing was timed

    fresh = Trainer(TrainConfig.from_mapping({**TINY, "out_dir": str(tmp_path / "fresh")}))
    assert not fresh.dev.amp and fresh.precision.autocast == "off" and calls


def test_explicit_amp_skips_the_timing(tmp_path, monkeypatch, own_cache):
    monkeypatch.setattr(P, "time_precisions", lambda *a, **k: pytest.fail("amp=off must not time"))
    trainer = Trainer(TrainConfig.from_mapping({**TINY, "out_dir": str(tmp_path / "r"), "amp": "off"}))
    assert not trainer.dev.amp and trainer.precision.reason == "amp=off on cpu"
    trainer = Trainer(TrainConfig.from_mapping({**TINY, "out_dir": str(tmp_path / "s"), "amp": "on"}))
    assert trainer.dev.amp and trainer.precision.autocast == "bf16"
