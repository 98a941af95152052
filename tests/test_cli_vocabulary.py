"""One command-line vocabulary: --out for every output location, --data for a stage or dataset
folder, choices for enumerated options, help from TrainConfig's own comments, old spellings
kept as hidden aliases, and `maskdepth run -p` accepting every TrainConfig field (the
02_train parameters cell is written from TrainConfig and cannot drift)."""

from __future__ import annotations

import argparse
import ast

import nbformat
import pytest

from maskdepth.cli import build_parser, main
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.params import field_defaults, field_docs
from maskdepth.training.config import TrainConfig
from maskdepth.workflow.nbclean import stale_parameters, train_parameters_source, write_parameters
from maskdepth.workflow.notebooks import notebooks_dir
from maskdepth.workflow.pipeline import STAGE_STEPS, check_parameters


def _subparser(*names: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _parameters_cell() -> dict:
    nb = nbformat.read(notebooks_dir() / "02_train.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    values = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.unparse(node)
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_train_notebook_parameters_are_exactly_the_trainconfig_defaults():
    cell = _parameters_cell()
    assert cell.pop("run_dir") == ""  # set by the pipeline
    defaults = field_defaults(TrainConfig)
    assert list(cell) == list(defaults)  # every field, in the dataclass's order
    assert cell == defaults
    for name, value in cell.items():  # 1.0 is no 1, True is no 1
        assert type(value) is type(defaults[name]), name


def test_train_notebook_parameters_cell_is_what_trainconfig_writes(tmp_path):
    """The cell is generated (`make notebooks`): its text is exactly the generator's, help included,
    and the generator rewrites a drifted copy without touching the rest of the file."""
    path = notebooks_dir() / "02_train.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert not stale_parameters(nb, path), "02_train's parameters cell differs from TrainConfig: run 'make notebooks'"
    docs = field_docs(TrainConfig)
    source = train_parameters_source()
    assert f"grid_every = 5  # {docs['grid_every']}" in source.splitlines()
    drifted = tmp_path / "02_train.ipynb"
    drifted.write_text(path.read_text(encoding="utf-8").replace("epochs = 10", "epochs = 11"), encoding="utf-8")
    assert stale_parameters(nbformat.read(drifted, as_version=4), drifted)
    write_parameters(drifted)
    assert drifted.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_run_accepts_every_trainconfig_field(tmp_path):
    every = dict(field_defaults(TrainConfig))
    declared = check_parameters(every, STAGE_STEPS, notebooks_dir())  # no "unknown parameter"
    assert set(every) <= declared["02_train.ipynb"]
    from maskdepth.cli.run import _check_training_parameters

    _check_training_parameters("playground", {"weight_decay": 0.01, "val_batch_size": 16, "grid_every": 0})
    with pytest.raises(MaskdepthError, match="out_dir.*--out DIR"):
        from maskdepth.workflow.pipeline import run_stage

        run_stage("playground", {"out_dir": str(tmp_path / "x")}, root=tmp_path / "outputs")
    assert not (tmp_path / "outputs").exists()


def test_train_help_comes_from_trainconfig_comments_and_lists_choices():
    docs = field_docs(TrainConfig)
    assert docs["grid_every"] == "epochs between TensorBoard image grids (0: never)"
    assert docs["best_metric"].startswith("Checkpoint selection uses the `seen` split only")
    assert set(docs) == set(field_defaults(TrainConfig))  # every field documents itself: one source of help
    parser = _subparser("train")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS}
    for name in field_defaults(TrainConfig):
        action = actions[name]
        assert action.help, name
        text = action.help % {}
        assert not text.startswith("(default"), f"{name}: help says only its default"
        assert "(default: " in text, name
        assert docs[name] in text, name
    assert set(actions["optimizer"].choices) == {"sgd", "adam", "adamw"}
    assert "onecycle" in actions["schedule"].choices and "joint" in actions["task"].choices
    assert set(actions["input_mode"].choices) == {"fg_bg", "bg_fg_bg"}
    assert "joint" in actions["model"].choices and "l1" in actions["depth_loss"].choices
    assert actions["out_dir"].option_strings == ["--out"]
    with pytest.raises(SystemExit) as exc:
        main(["train", "--optimizer", "nope"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("argv", "dest", "value"),
    [
        (["train", "--out", "R"], "out_dir", "R"),
        (["train", "--out-dir", "R"], "out_dir", "R"),  # TrainConfig's field name, kept
        (["run", "--out", "O"], "outputs", "O"),
        (["run", "--outputs", "O"], "outputs", "O"),
        (["export", "-c", "C", "--out", "m.onnx"], "onnx", "m.onnx"),
        (["export", "-c", "C", "--onnx", "m.onnx"], "onnx", "m.onnx"),
        (["validate", "-c", "C", "--data", "1k"], "data", "1k"),
        (["validate", "-c", "C", "--stage", "1k"], "data", "1k"),
        (["data", "build", "--data", "1k"], "stage", "1k"),
        (["data", "build", "--stage", "1k"], "stage", "1k"),
        (["data", "materialize", "--stage", "1k", "--out", "D"], "stage", "1k"),
        (["data", "manifest", "--out", "m.csv"], "csv", "m.csv"),
        (["data", "manifest", "--csv", "m.csv"], "csv", "m.csv"),
        (["predict", "x.png", "-c", "C", "--out", "P"], "out", "P"),
    ],
)
def test_new_names_and_hidden_old_aliases_parse_alike(argv, dest, value):
    assert getattr(build_parser().parse_args(argv), dest) == value


@pytest.mark.parametrize(
    ("command", "hidden"),
    [(("train",), "--out-dir"), (("run",), "--outputs"), (("export",), "--onnx"), (("validate",), "--stage"),
     (("data", "build"), "--stage"), (("data", "materialize"), "--stage"), (("data", "manifest"), "--csv")],
)
def test_old_aliases_are_hidden_from_help(command, hidden):
    text = _subparser(*command).format_help()
    assert hidden not in text.replace("--no-", "")
    assert "--out" in text or "--data" in text


def test_every_output_location_is_called_out():
    """Each command that writes somewhere takes --out; none shows another output flag."""
    for command in (("train",), ("run",), ("export",), ("validate",), ("predict",), ("report",),
                    ("data", "materialize"), ("data", "import"), ("data", "compose"), ("data", "manifest")):
        shown = {s for a in _subparser(*command)._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
        assert "--out" in shown, command
        assert not shown & {"--out-dir", "--outputs", "--onnx", "--csv"}, command


def test_enumerated_options_have_choices():
    def choices(command, dest):
        return next(a for a in _subparser(*command)._actions if a.dest == dest).choices

    assert set(choices(("run",), "stage")) == {"playground", "1k", "full"}
    assert set(choices(("run",), "notebook")) == {"playground", "loss_lab", "ablation", "predict"}
    assert set(choices(("predict",), "depth_range")) == {"fixed", "auto"}
    assert set(choices(("data", "build"), "stage")) == {"playground", "1k", "full"}
    assert "unseen" in choices(("validate",), "split")
    for argv in (["run", "--stage", "10k"], ["run", "--notebook", "nope"], ["data", "build", "--data", "10k"]):
        with pytest.raises(SystemExit):
            main(argv)


def test_export_and_data_build_still_require_their_argument(capsys):
    assert main(["export", "-c", "missing.pt"]) == 2
    assert "--out FILE is required" in capsys.readouterr().err
    assert main(["data", "build"]) == 2
    assert "--data STAGE is required" in capsys.readouterr().err


def test_run_data_sets_the_data_and_a_stage_name_picks_the_stage(monkeypatch, tmp_path):
    import maskdepth.workflow.pipeline as pipeline

    calls = []

    def fake_run_stage(stage, overrides, **kwargs):
        calls.append((stage, dict(overrides), kwargs["root"]))
        return pipeline.RunResult(tmp_path, "ok", None, {})

    monkeypatch.setattr(pipeline, "run_stage", fake_run_stage)
    folder = str(tmp_path / "my_data")
    assert main(["run", "--data", folder, "--out", str(tmp_path)]) == 0
    assert main(["run", "--data", "1k", "--force"]) == 0
    assert main(["run", "--stage", "1k", "--data", folder, "-p", "epochs", "2"]) == 0
    assert main(["run", "--stage", "playground", "-p", "weight_decay", "0.01"]) == 0
    assert calls == [
        ("playground", {"data": folder}, tmp_path),
        ("1k", {"data": "1k"}, None),
        ("1k", {"data": folder, "epochs": 2}, None),
        ("playground", {"weight_decay": 0.01}, None),
    ]
    assert main(["run", "--data", folder, "-p", "data", "other"]) == 2
