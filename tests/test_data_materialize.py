"""Materialized stages: packed arrays and folders equal on-the-fly composition; kill + rerun; training on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskdepth.core.errors import MaskdepthError
from maskdepth.datasets.datadir import read_dataset_json
from maskdepth.datasets.dataset import build_dataset, open_dataset_dir
from maskdepth.datasets.materialize import materialize
from maskdepth.plan.stages import SPLITS

SIZE = 32


@pytest.fixture(scope="module")
def packed_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mat") / "packed"
    materialize("playground", out, fmt="packed", size=SIZE)
    return out


@pytest.fixture(scope="module")
def folders_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mat") / "folders"
    materialize("playground", out, fmt="folders", size=SIZE)
    return out


def test_packed_samples_equal_on_the_fly_composition(packed_dir):
    meta = read_dataset_json(packed_dir)
    assert meta["layout"] == "packed" and meta["counts"] == {"train": 24, "seen": 8, "unseen": 8, "ood": 8}
    assert meta["source"]["kind"] == "synthetic" and meta["depth"]["units"] == "metres"
    for split in SPLITS:
        stored = build_dataset(str(packed_dir), split, size=SIZE)  # the trainer's entry point
        reference = build_dataset("playground", split, size=SIZE)
        assert len(stored) == len(reference)
        for i in range(len(stored)):
            got, want = stored[i], reference.compose(i)
            assert got["index"] == i
            assert np.array_equal(got["mask"].numpy(), want["mask"]), (split, i)
            assert np.array_equal(got["bg"].numpy(), want["bg"]), (split, i)  # uint8 sources: exact
            assert np.abs(got["depth"].numpy() - want["depth"]).max() <= 0.5 / 256 + 1e-6
            assert np.abs(got["image"].numpy() - want["image"]).max() <= 0.5 / 255 + 1e-6
    image = np.load(packed_dir / "train.image.npy", mmap_mode="r")
    assert isinstance(image, np.memmap) and image.dtype == np.uint8 and image.shape == (24, 3, SIZE, SIZE)
    assert np.load(packed_dir / "train.depth.npy", mmap_mode="r").dtype == np.uint16


def test_folders_layout_is_the_capstone_layout(folders_dir):
    meta = read_dataset_json(folders_dir)
    names = [p.stem for p in sorted((folders_dir / "fg_bg").glob("*.jpg"))]
    assert len(names) == 48 and meta["counts"]["unseen"] == 8 and meta["counts"]["ood"] == 8
    depth_png = Image.open(folders_dir / "depth" / f"{names[0]}.png")
    assert depth_png.mode in ("I;16", "I") and depth_png.size == (SIZE, SIZE)
    views = {(n.split("_")[0], n.split("_")[2]) for n in names}  # one background view per (bg, placement)
    assert len(list((folders_dir / "bg").glob("*.png"))) == len(views)
    stored = open_dataset_dir(folders_dir, "train", SIZE)
    reference = build_dataset("playground", "train", size=SIZE)
    for i in range(len(stored)):
        got, want = stored[i], reference.compose(i)
        assert np.array_equal(got["mask"].numpy(), want["mask"])
        assert np.array_equal(got["bg"].numpy(), want["bg"])  # lossless PNG, mirrored for flipped rows
        assert np.abs(got["depth"].numpy() - want["depth"]).max() <= 0.5 / 256 + 1e-6
        assert np.abs(got["image"].numpy() - want["image"]).mean() < 0.02  # JPEG, as the capstone


def test_describe_dataset_dir_reports_the_depth_units_the_writers_store(packed_dir, tmp_path):
    """01_create_data printed `depth None` for every folder: the writers store dataset.json's
    depth {"units": ...}, the report read a key "depth_units" that no writer writes."""
    from maskdepth.datasets.datadir import write_dataset_json
    from maskdepth.datasets.prepare import describe_dataset_dir

    report = describe_dataset_dir(packed_dir)
    assert report["depth_units"] == "metres" and report["counts"]["train"] == 24 and report["size"] == SIZE
    other = tmp_path / "teacher"
    other.mkdir()
    write_dataset_json(other, {"layout": "packed", "size": SIZE, "counts": {}, "depth": {"units": "teacher"}})
    assert describe_dataset_dir(other)["depth_units"] == "teacher"


KILL_SCRIPT = """
import os, signal, sys
import maskdepth.datasets.materialize as mat
import maskdepth.datasets.packed as packed
fmt, out, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
packed.CHECKPOINT_EVERY = 5
calls = {{"n": 0}}
def killing(original):
    def wrapper(*args, **kwargs):
        if calls["n"] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        calls["n"] += 1
        return original(*args, **kwargs)
    return wrapper
if fmt == "packed":
    packed._put = killing(packed._put)
else:
    mat.write_folder_sample = killing(mat.write_folder_sample)
mat.materialize("playground", out, fmt=fmt, size={size})
"""


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["packed", "folders"])
def test_killed_run_is_never_read_and_rerun_equals_uninterrupted(tmp_path, fmt, packed_dir, folders_dir):
    out = tmp_path / fmt
    script = KILL_SCRIPT.format(size=SIZE)
    proc = subprocess.run([sys.executable, "-c", script, fmt, str(out), "13"], env=os.environ.copy(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert not (out / "dataset.json").exists()
    with pytest.raises(MaskdepthError, match="not a complete maskdepth dataset.*rerun"):
        build_dataset(str(out), "train", size=SIZE)
    if fmt == "packed":  # the half-written arrays exist only under temporary names
        assert not list(out.glob("train.*.npy")) and list((out / ".partial").glob("train.*.npy"))
    result = materialize("playground", out, fmt=fmt, size=SIZE)
    if fmt == "packed":
        assert result["resumed"]["train"] == 10  # last checkpoint: 2 x CHECKPOINT_EVERY before the kill at 13
        assert result["written"] == 48 - 10
    else:
        assert result["kept"] == 13 and result["written"] == 48 - 13
    assert _tree(out) == _tree(packed_dir if fmt == "packed" else folders_dir)
    again = materialize("playground", out, fmt=fmt, size=SIZE)
    assert again["complete_already"] and again["written"] == 0


def test_damaged_or_mismatched_directory_is_refused(tmp_path, packed_dir):
    with pytest.raises(MaskdepthError, match="holds 32px samples but size=64"):
        build_dataset(str(packed_dir), "train", size=64)
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in packed_dir.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    depth = copy / "seen.depth.npy"
    depth.write_bytes(depth.read_bytes()[: depth.stat().st_size // 2])  # a half-written shard
    with pytest.raises(MaskdepthError, match="seen.depth.npy"):
        open_dataset_dir(copy, "seen", SIZE)
    with pytest.raises(MaskdepthError, match="already holds a different dataset"):
        materialize("playground", packed_dir, fmt="folders", size=SIZE)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(MaskdepthError, match="not empty"):
        materialize("playground", tmp_path / "busy", fmt="packed", size=SIZE)


def test_one_epoch_of_training_on_a_materialized_directory(tmp_path, packed_dir):
    from maskdepth.training.config import TrainConfig
    from maskdepth.training.trainer import train

    cfg = TrainConfig.from_mapping(dict(
        data=str(packed_dir), size=SIZE, batch_size=8, val_batch_size=16, epochs=1, progress_bar=False,
        tensorboard=False, model_kwargs={"encoder": "lean", "context": False, "base_channels": 8}, out_dir=str(tmp_path / "run"), workers=0,
    ))
    metrics = train(cfg)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["epochs"] if isinstance(history, dict) else history) == 1
    assert metrics and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_dataloader_workers_reopen_the_memory_maps(packed_dir):
    ds = open_dataset_dir(packed_dir, "train", SIZE)
    loader = torch.utils.data.DataLoader(ds, batch_size=6, num_workers=2)
    batches = list(loader)
    assert [b["index"].tolist() for b in batches][0] == list(range(6))
    assert torch.equal(torch.cat([b["mask"] for b in batches]), torch.stack([ds[i]["mask"] for i in range(24)]))
