"""Checkpoints are data, never code: weights_only loading, refused payloads, damaged files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from maskdepth.cli import main
from maskdepth.core.errors import MaskdepthError
from maskdepth.models import create_model
from maskdepth.models.checkpoint import MAX_INPUT_SIDE, load_checkpoint, load_model, save_checkpoint

INFO = {"task": "joint", "tasks": ["mask", "depth"], "input_mode": "fg_bg", "input_size": [32, 32]}


def _model():
    torch.manual_seed(0)
    return create_model("joint", encoder="lean", context=False, base_channels=8).eval()


@pytest.fixture()
def checkpoint(tmp_path):
    """A checkpoint as training writes it: optimizer and scheduler states, RNG states, metrics."""
    from maskdepth.training.rng import rng_state

    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 32, 32))["mask"].mean().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10)
    path = tmp_path / "ck.pt"
    save_checkpoint(path, model, info=INFO, config={"model": "joint"}, epoch=1, step=3, optimizer=optimizer,
                    scheduler=scheduler, rng=rng_state(), metrics={"best_value": 0.5}, history=[{"epoch": 1}])
    return path


def _image(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    return path


class Payload:
    """Unpickling this would create `marker`: the stand-in for any code a hostile file runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_what_training_saves_loads_with_weights_only(checkpoint):
    raw = torch.load(checkpoint, weights_only=True)  # plain torch, no allow-list: tensors and plain data only
    assert raw["epoch"] == 1 and raw["history"] == [{"epoch": 1}]
    assert load_checkpoint(checkpoint)["rng"]["numpy"][0] == "MT19937"


def test_a_checkpoint_carrying_a_pickle_payload_is_refused_and_the_payload_never_runs(checkpoint, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["metrics"]["extra"] = Payload(marker)
    evil = tmp_path / "evil.pt"
    torch.save(ckpt, evil)
    with pytest.raises(MaskdepthError, match=r"evil.pt: refused: it holds io.open") as info:
        load_model(evil)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    image = _image(tmp_path / "x.png")
    for argv in (["predict", "-c", str(evil), str(image), "--out", str(tmp_path / "out")],
                 ["export", "-c", str(evil), "--onnx", str(tmp_path / "m.onnx")],
                 ["validate", "-c", str(evil), "--data", "playground", "--split", "unseen"]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "refused" in err and "evil.pt" in err, (argv, err)
        assert not marker.exists(), argv
    assert not (tmp_path / "out").exists()


def test_older_checkpoints_are_refused_in_one_line_naming_the_file(checkpoint, tmp_path):
    """Before weights_only, the numpy RNG state was a numpy array: such a checkpoint is refused
    with one line that names the file and says to retrain; an array of Python objects too."""
    from maskdepth.training.config import resume_config

    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["rng"]["numpy"] = np.random.get_state()
    del ckpt["history"]
    old = tmp_path / "old.pt"
    torch.save(ckpt, old)
    with pytest.raises(MaskdepthError, match=r"old\.pt: refused: .*written by an older maskdepth do; retrain it$"):
        load_checkpoint(old)
    ckpt["rng"]["numpy"] = np.array([Payload(tmp_path / "m")], dtype=object)
    torch.save(ckpt, old)
    with pytest.raises(MaskdepthError, match="refused"):
        load_checkpoint(old)
    assert not (tmp_path / "m").exists()
    # a run folder with checkpoints/last.pt but no config.json (written before runs kept one)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"")
    with pytest.raises(MaskdepthError, match=r"last\.pt has no config\.json beside it: written by an older maskdepth"):
        resume_config(tmp_path / "run")


def test_missing_keys_wrong_shapes_and_absurd_input_size_are_one_line_errors(checkpoint, tmp_path, capsys):
    ckpt = torch.load(checkpoint, weights_only=True)
    first = next(iter(ckpt["state_dict"]))
    cases = {}
    missing = {**ckpt, "state_dict": {k: v for k, v in ckpt["state_dict"].items() if k != first}}
    cases["missing"] = (missing, f"missing {first}")
    shape = {**ckpt, "state_dict": {**ckpt["state_dict"], first: torch.zeros(3, 3)}}
    cases["shape"] = (shape, f"wrong shape {first} (3, 3)")
    huge = {**ckpt, "info": {**ckpt["info"], "input_size": [200_000, 200_000]}}
    cases["huge"] = (huge, f"outside 1..{MAX_INPUT_SIDE} px")
    cases["spec"] = ({**ckpt, "model_spec": {"name": "joint", "in_channels": 3, "kwargs": {"nope": 1}}}, "unknown option")
    image = _image(tmp_path / "x.png")
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(content, path)
        with pytest.raises(MaskdepthError, match="weights do not fit|input_size|unknown option") as info:
            load_model(path)
        assert message in str(info.value) and str(path) in str(info.value), name
        capsys.readouterr()
        assert main(["predict", "-c", str(path), str(image), "--out", str(tmp_path / "o")]) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (name, err)
