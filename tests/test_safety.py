"""Issue 28: never destroy an input, one writer per folder, bounded resources, options checked."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_runpage import _fake_run

from maskdepth.cli import build_parser, main
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import atomic_path, write_text
from maskdepth.models import create_model
from maskdepth.models.checkpoint import load_model, save_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    torch.manual_seed(0)
    save_checkpoint(path, create_model("joint", encoder="lean", context=False, base_channels=8),
                    info={"task": "joint", "input_mode": "fg_bg", "input_size": [32, 32], "tasks": ["mask", "depth"]},
                    config={"data": "playground", "size": 32})
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _image(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


# --- 1. never destroy an input --------------------------------------------------------------------


def _hostile_out_cases(tmp: Path, ckpt: Path) -> dict[str, tuple[list[str], Path]]:
    """Per command taking --out: a command line whose --out is one of its own inputs, and that input."""
    copy = tmp / "best.pt"
    copy.write_bytes(ckpt.read_bytes())
    params = tmp / "params.yaml"
    params.write_text("epochs: 1\n")
    image = _image(tmp / "cat.png")
    src = tmp / "src"
    (src / "fg_bg").mkdir(parents=True)
    file_out = tmp / "a_file.txt"
    file_out.write_text("not a folder")
    _fake_run(tmp / "runs" / "r")
    return {
        "export": (["export", "-c", str(copy), "--out", str(copy)], copy),
        "validate": (["validate", "-c", str(copy), "--out", str(copy)], copy),
        "predict": (["predict", str(image), "-c", str(copy), "--out", str(copy)], copy),
        "train": (["train", "-f", str(params), "--out", str(params)], params),
        "run": (["run", "-f", str(params), "--out", str(params)], params),
        "report": (["report", str(tmp / "runs"), "--out", str(file_out)], file_out),
        "data manifest": (["data", "manifest", "--data", "playground", "--out", str(tmp)], tmp / "cat.png"),
        "data materialize": (["data", "materialize", "--data", "playground", "--out", str(file_out)], file_out),
        "data import": (["data", "import", str(src), "--out", str(src)], src / "fg_bg"),
        "data compose": (["data", "compose", "--bg", str(src), "--fg", str(tmp), "--teacher", str(copy),
                          "--out", str(src)], copy),
    }


def _commands_with_out() -> set[str]:
    found = set()

    def walk(parser, prefix):
        for action in parser._actions:
            if "--out" in getattr(action, "option_strings", ()):
                found.add(prefix)
            for name, sub in (getattr(action, "choices", None) or {}).items() if hasattr(action, "choices") and \
                    isinstance(getattr(action, "choices", None), dict) else ():
                walk(sub, f"{prefix} {name}".strip())

    walk(build_parser(), "")
    return found


def test_every_command_taking_out_refuses_to_write_over_its_input(tmp_path, ckpt, capsys):
    pytest.importorskip("onnxruntime")
    cases = _hostile_out_cases(tmp_path, ckpt)
    assert _commands_with_out() == set(cases), "a command taking --out has no hostile case here"
    for command, (argv, kept) in cases.items():
        before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
        assert main(argv) == 2, command
        err = _one_line_error(capsys)
        assert "--out" in err or "--data" in err, (command, err)
        assert kept.exists(), command
        after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
        assert after == before, f"{command} changed or removed a file"


def _read_fifo(path: Path, into: list) -> threading.Thread:
    def read():
        with open(path, "rb") as fh:
            into.append(fh.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_a_fifo_is_written_in_place_never_replaced(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    write_text(fifo, "hello\n")
    reader.join(10)
    assert got == [b"hello\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    reader = _read_fifo(fifo, got)
    assert main(["data", "manifest", "--data", "playground", "--out", str(fifo)]) == 0
    reader.join(10)
    assert got[1].startswith(b"id,") and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert list(tmp_path.iterdir()) == [fifo]  # no temporary file beside it


def test_a_folder_or_socket_is_refused_not_replaced(tmp_path):
    import socket

    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(MaskdepthError, match="is a folder"), atomic_path(folder) as tmp:
        tmp.write_text("x")
    sock_path = tmp_path / "s"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(sock_path))
        with pytest.raises(MaskdepthError, match="is a socket"):
            write_text(sock_path, "x")
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
    finally:
        sock.close()


def test_export_refuses_an_existing_file_a_folder_and_bad_numbers(tmp_path, ckpt, capsys):
    pytest.importorskip("onnxruntime")
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    cases = [
        (["--out", str(other)], "already exists; pass --overwrite"),
        (["--out", str(tmp_path)], "is a folder"),
        (["--out", str(tmp_path / "m.onnx"), "--opset", "99999"], "--opset 99999: choose 18.."),
        (["--out", str(tmp_path / "m.onnx"), "--opset", "1"], "--opset 1: choose 18.."),
        (["--out", str(tmp_path / "m.onnx"), "--atol", "nan"], "--atol nan"),
        (["--out", str(tmp_path / "m.onnx"), "--atol", "0"], "--atol 0"),
    ]
    for extra, message in cases:
        assert main(["export", "-c", str(ckpt), *extra]) == 2, extra
        assert message in _one_line_error(capsys)
    assert other.read_text() == "mine" and not (tmp_path / "m.onnx").exists()


# --- 2. one writer per folder ---------------------------------------------------------------------


def _holder(folder: Path) -> subprocess.Popen:
    """Another process holding `folder`'s lock until its stdin closes."""
    code = ("import sys; from maskdepth.core.fileio import folder_lock\n"
            f"with folder_lock({str(folder)!r}, 'train'):\n    print('held', flush=True); sys.stdin.read()")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("argv", [
    ["train", "--data", "playground", "--epochs", "1", "--max-steps", "1", "--out", "{out}"],
    ["data", "materialize", "--data", "playground", "--out", "{out}"],
    ["data", "import", "{src}", "--out", "{out}"],
    ["predict", "{image}", "-c", "{ckpt}", "--out", "{out}"],
    ["run", "--data", "playground", "-p", "epochs", "1", "--out", "{root}", "--name", "x", "--force"],
])
def test_a_second_writer_stops_naming_the_holder(tmp_path, ckpt, capsys, argv, monkeypatch):
    from test_data_import import make_tree

    from maskdepth.core.fileio import LOCK_NAME

    make_tree(tmp_path / "src")
    out = tmp_path / "root" / "playground" / "x" if argv[0] == "run" else tmp_path / "out"
    monkeypatch.setattr("maskdepth.cli.run._confirm_full_on_cpu", lambda force: True)
    monkeypatch.setattr("maskdepth.workflow.pipeline.check_prerequisite", lambda *a, **k: {"decision": "none needed"})
    values = {"out": out, "src": tmp_path / "src", "image": _image(tmp_path / "cat.png"), "ckpt": ckpt,
              "root": tmp_path / "root"}
    proc = _holder(out)
    try:
        assert main([a.format(**values) for a in argv]) == 2
        err = _one_line_error(capsys)
        assert f"in use by `maskdepth train` (pid {proc.pid}" in err
    finally:
        proc.stdin.close()
        proc.wait(30)
    assert not (out / LOCK_NAME).exists()


def test_a_stale_lock_is_taken_over_and_a_nested_one_passes(tmp_path):
    from maskdepth.core.fileio import LOCK_NAME, folder_lock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "command": "train"}))
    with folder_lock(tmp_path, "predict") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with folder_lock(tmp_path, "train"):  # the same process again (a notebook's kernel: its child)
            pass
        assert lock.exists()
    assert not lock.exists()


# --- 3. bounded resources -------------------------------------------------------------------------


def _edited(ckpt: Path, tmp: Path, edit) -> Path:
    data = torch.load(ckpt, weights_only=True)
    edit(data)
    path = tmp / "edited.pt"
    torch.save(data, path)
    return path


def test_a_checkpoint_too_large_for_memory_is_refused_before_it_is_built(tmp_path, ckpt, monkeypatch):
    monkeypatch.setenv("MASKDEPTH_MEMORY_LIMIT", "0.01")  # 10 MB: base_channels 64 needs more
    path = _edited(ckpt, tmp_path, lambda d: d["model_spec"]["kwargs"].update(base_channels=64))
    with pytest.raises(MaskdepthError, match=r"edited.pt: model joint .* needs about .* GB.*MASKDEPTH_MEMORY_LIMIT"):
        load_model(path)
    monkeypatch.setenv("MASKDEPTH_MEMORY_LIMIT", "4")
    path = _edited(ckpt, tmp_path, lambda d: d["info"].update(input_size=[4096, 4096]))  # ~11 GB for one image
    with pytest.raises(MaskdepthError, match=r"at 4096x4096 px needs about"):
        load_model(path)


def test_a_checkpoint_never_chooses_a_file_to_read(tmp_path, ckpt):
    path = _edited(ckpt, tmp_path, lambda d: d["model_spec"]["kwargs"].update(weights="/etc/hostname"))
    with pytest.raises(MaskdepthError, match="never chooses a file to read"):
        load_model(path)


def test_models_and_train_refuse_what_does_not_fit(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MASKDEPTH_MEMORY_LIMIT", "0.05")
    assert main(["models", "--size", "512"]) == 2
    assert "--size 512: model" in _one_line_error(capsys)
    assert main(["train", "--data", "playground", "--model-kwargs", '{"encoder": "lean", "context": False, "base_channels": 64}', "--epochs", "1",
                 "--max-steps", "1", "--out", str(tmp_path / "run")]) == 2
    assert "needs about" in _one_line_error(capsys)
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_reduced_input_is_said_and_recorded(tmp_path, ckpt, capsys, monkeypatch):
    monkeypatch.setattr("maskdepth.prediction.files.MAX_PIXELS", 100_000)
    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)).save(big)
    assert main(["predict", str(big), "-c", str(ckpt), "--out", str(tmp_path / "out"), "--no-preview"]) == 0
    assert "big.jpg: 600x400 decoded at 300x200" in capsys.readouterr().err
    record = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert record["predictions"][0]["reduced_from"] == [400, 600] and record["predictions"][0]["size"] == [200, 300]


# --- 5. options checked where parsed --------------------------------------------------------------


def test_yaml_numbers_like_1e_3_are_numbers(tmp_path):
    from maskdepth.core.params import read_params_file
    from maskdepth.training.config import TrainConfig

    (tmp_path / "p.yaml").write_text("lr: 1e-3\nweight_decay: 5E-4\n")
    values = read_params_file(tmp_path / "p.yaml")
    assert values == {"lr": 0.001, "weight_decay": 0.0005}
    assert TrainConfig.from_mapping(values).lr == 0.001


def test_bad_options_are_one_line_errors(tmp_path, ckpt, capsys, monkeypatch):
    started = []
    monkeypatch.setattr("maskdepth.workflow.pipeline.run_stage", lambda *a, **k: started.append(k))
    monkeypatch.setattr("maskdepth.cli.run._confirm_full_on_cpu", lambda force: True)
    cases = [
        (["train", "--momentum", "5", "--epochs", "1", "--max-steps", "1", "--out", str(tmp_path / "t")],
         "momentum=5"),
        (["run", "--name", "../../escape", "--out", str(tmp_path / "o")], "--name '../../escape'"),
        (["validate", "-c", str(ckpt), "--size", "0"], "--size 0"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in _one_line_error(capsys)
    assert not started and not (tmp_path / "t").exists()


# --- 6. predict --overwrite -----------------------------------------------------------------------


def test_an_interrupted_overwrite_leaves_whole_sets_and_a_true_record(tmp_path, ckpt, monkeypatch):
    from maskdepth.core.errors import DiskFullError
    from maskdepth.prediction import files as inference

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b", "c"):
        _image(inputs / f"{name}.png")
    out = tmp_path / "out"
    assert main(["predict", str(inputs), "-c", str(ckpt), "--out", str(out), "--threshold", "0.5"]) == 0
    real_save = inference.save_png
    calls = []

    def fails_on_b_depth(path, array):
        calls.append(path)
        if str(path).endswith("b_depth.png"):
            raise DiskFullError(path)
        real_save(path, array)

    monkeypatch.setattr(inference, "save_png", fails_on_b_depth)
    assert main(["predict", str(inputs), "-c", str(ckpt), "--out", str(out), "--threshold", "0.95",
                 "--overwrite"]) == 2
    record = json.loads((out / "predictions.json").read_text())
    assert record["threshold"] == 0.95 and record["status"] == "interrupted"
    assert [e["name"] for e in record["predictions"]] == ["a"]
    assert not list(out.glob("b_*")), "no partial (or earlier) set of b stays"
    assert sorted(p.name for p in out.glob("a_*")) == ["a_depth.png", "a_depth_color.png", "a_mask.png",
                                                       "a_preview.png"]
