"""ONNX export: dynamic batch, onnxruntime agrees with torch, failures write nothing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from maskdepth.cli import main
from maskdepth.core.errors import MaskdepthError
from maskdepth.models import create_model
from maskdepth.models.checkpoint import load_model, save_checkpoint
from maskdepth.prediction.export import export_onnx

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt")
    joint6 = folder / "joint6.pt"
    save_checkpoint(joint6, create_model("joint", in_channels=6, encoder="lean", context=False, base_channels=8),
                    info={"task": "joint", "input_mode": "bg_fg_bg", "input_size": [48, 64]})
    mask = folder / "mask.pt"
    save_checkpoint(mask, create_model("lean_unet", task="mask"),
                    info={"task": "mask", "input_mode": "fg_bg", "input_size": [64, 64]})
    return {"joint6": joint6, "mask": mask}


def test_round_trip_with_dynamic_batch(checkpoints, tmp_path):
    path = tmp_path / "models" / "joint6.onnx"
    result = export_onnx(checkpoints["joint6"], path)
    assert path.is_file() and result.path == path
    assert result.output_names == ["mask_logits", "depth"]
    assert result.input_shape == ["batch", 6, 48, 64]
    assert 0.0 <= result.max_abs_diff < 1e-4

    # Independently of export_onnx's own check: other inputs, batch 1 and 3, against torch.
    model, _ = load_model(checkpoints["joint6"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    for batch in (1, 3):
        x = torch.rand(batch, 6, 48, 64, generator=torch.Generator().manual_seed(100 + batch))
        mask_logits, depth = session.run(["mask_logits", "depth"], {"image": x.numpy()})
        with torch.no_grad():
            expected = model(x)
        assert mask_logits.shape == depth.shape == (batch, 1, 48, 64)
        assert np.abs(mask_logits - expected["mask"].numpy()).max() < 1e-4
        assert np.abs(depth - expected["depth"].numpy()).max() < 1e-4

    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert metadata["maskdepth.input_mode"] == "bg_fg_bg"
    assert metadata["maskdepth.input_size"] == "[48, 64]"
    assert sorted(p.name for p in path.parent.iterdir()) == ["joint6.onnx"]  # one file, no temp/external data


def test_single_task_model_exports_only_its_output_via_cli(checkpoints, tmp_path, capsys):
    path = tmp_path / "mask.onnx"
    assert main(["export", "--checkpoint", str(checkpoints["mask"]), "--onnx", str(path)]) == 0
    out = capsys.readouterr().out
    assert "max abs diff" in out and str(path) in out
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["mask_logits"]
    (logits,) = session.run(None, {"image": np.zeros((2, 3, 64, 64), np.float32)})
    assert logits.shape == (2, 1, 64, 64)


def test_disagreement_above_tolerance_fails_and_writes_nothing(checkpoints, tmp_path, monkeypatch):
    real_run = ort.InferenceSession.run

    def off_by_a_little(self, names, feeds, *args, **kwargs):
        return [o + np.float32(2e-4) for o in real_run(self, names, feeds, *args, **kwargs)]

    monkeypatch.setattr(ort.InferenceSession, "run", off_by_a_little)
    path = tmp_path / "bad.onnx"
    with pytest.raises(MaskdepthError, match=r"differs from torch by 0.0002.*not written"):
        export_onnx(checkpoints["mask"], path)
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_is_a_clear_error(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MaskdepthError, match=r"onnxruntime.*pip install 'maskdepth\[onnx\]'"):
        export_onnx(checkpoints["mask"], tmp_path / "x.onnx")


def test_missing_checkpoint_is_named(tmp_path, capsys):
    assert main(["export", "-c", str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "missing.pt: no such file" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
