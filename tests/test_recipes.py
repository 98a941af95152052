"""The recipe tools: the structure depth losses, mask-conditioned depth, the ablation table and
the error breakdown by what a sample is made of."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.core.errors import MaskdepthError
from maskdepth.evaluation.losses import l1_depth_loss, l1_msgrad_depth_loss, l1_ssi_depth_loss

SPAN = math.log(DEPTH_MAX) - math.log(DEPTH_MIN)


@pytest.fixture
def scene_depth():
    """A receding floor (depth grows towards the top) with a near box on it, well inside the range."""
    rows = torch.linspace(8.0, 1.0, 32).view(1, 1, 32, 1).expand(2, 1, 32, 32).clone()
    rows[:, :, 12:24, 10:20] = 1.5
    return rows


def test_structure_terms_ignore_a_global_scale(scene_depth):
    # A pure scale error (one log shift) costs the metric L1 only: structure terms read 0.
    for scale in (0.7, 1.3):
        pred = scene_depth * scale
        assert l1_ssi_depth_loss(pred, scene_depth).item() == pytest.approx(l1_depth_loss(pred, scene_depth).item(), abs=1e-6)
        assert l1_msgrad_depth_loss(pred, scene_depth).item() == pytest.approx(l1_depth_loss(pred, scene_depth).item(), abs=1e-6)
        assert l1_depth_loss(pred, scene_depth).item() == pytest.approx(abs(math.log(scale)) / SPAN, rel=1e-4)


def test_structure_terms_charge_a_wrong_layout(scene_depth):
    flat = torch.full_like(scene_depth, float(scene_depth.median()))  # right scale, no structure
    for loss in (l1_ssi_depth_loss, l1_msgrad_depth_loss):
        assert loss(flat, scene_depth).item() > 1.3 * l1_depth_loss(flat, scene_depth).item()


def test_shift_free_term_is_the_error_left_after_median_scaling(scene_depth):
    # Per image: mean |e - median(e)| of the normalised log error, by hand in numpy.
    g = torch.Generator().manual_seed(0)
    pred = scene_depth * torch.exp(0.3 * torch.randn(scene_depth.shape, generator=g))
    e = (np.log(pred.numpy()) - np.log(scene_depth.numpy())).reshape(2, -1) / SPAN
    by_hand = np.mean([np.abs(row - np.median(row)).mean() for row in e]) + np.abs(e).mean()
    # torch.nanmedian picks the lower middle value of an even count; numpy averages the two.
    assert l1_ssi_depth_loss(pred, scene_depth).item() == pytest.approx(by_hand, rel=2e-3)


def test_structure_losses_skip_invalid_pixels_and_send_gradients(scene_depth):
    gt = scene_depth.clone()
    gt[:, :, :4] = float("nan")
    gt[:, :, 4:6] = 0.0
    pred = (scene_depth * 1.1).requires_grad_()
    for loss in (l1_ssi_depth_loss, l1_msgrad_depth_loss):
        value = loss(pred, gt)
        assert torch.isfinite(value)
        (grad,) = torch.autograd.grad(value, pred)
        assert torch.isfinite(grad).all() and grad[:, :, 6:].abs().sum() > 0
        assert grad[:, :, :6].abs().sum() == 0


def test_mask_conditioned_depth_reads_the_mask_head():
    from maskdepth.models import create_model

    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    for conditioned in (True, False):
        model = create_model("joint", 3, encoder="lean", context=False, base_channels=8, mask_to_depth=conditioned).eval()
        before = model(x)["depth"].detach().clone()
        with torch.no_grad():
            model.heads["mask"][-1].bias.add_(3.0)  # move only the mask logits
        changed = not torch.allclose(model(x)["depth"], before)
        assert changed == conditioned


# --------------------------------------------------------------------------- the ablation


def test_recipe_config_merges_overrides_on_the_stage_defaults(tmp_path):
    from maskdepth.plan.stages import get_stage
    from maskdepth.workflow.ablation import recipe_config

    cfg = recipe_config("m2d", {"model_kwargs": {"mask_to_depth": True}, "lr": 1e-3}, tmp_path,
                        data="1k", epochs=3, seed=1)
    stage_kwargs = get_stage("1k").train_defaults.get("model_kwargs", {})  # the stages keep the model's defaults
    assert cfg.model_kwargs == {**stage_kwargs, "mask_to_depth": True}
    assert (cfg.lr, cfg.epochs, cfg.seed, cfg.batch_size) == (1e-3, 3, 1, get_stage("1k").train_defaults["batch_size"])
    assert cfg.out_dir == str(tmp_path / "m2d")
    with pytest.raises(MaskdepthError, match="recipe 'typo'.*lrr"):
        recipe_config("typo", {"lrr": 1}, tmp_path, data="1k", epochs=3, seed=0)


def test_ablation_trains_each_recipe_once_and_tabulates_all_splits(tmp_path):
    from maskdepth.workflow.ablation import COLUMNS, run_ablation

    small = {"size": 32, "batch_size": 8, "val_batch_size": 16, "model_kwargs": {"encoder": "lean", "context": False, "base_channels": 4, "max_channels": 16}}
    recipes = {"plain": dict(small), "ssi": {**small, "depth_loss": "l1_ssi"}}
    first = run_ablation(recipes, tmp_path, data="playground", epochs=1)
    assert set(first["results"]) == {"plain", "ssi"}
    table = (tmp_path / "ablation.md").read_text()
    assert table.rstrip("\n").count("\n") == 3 and "| ssi |" in table and "seen / unseen / ood" in table
    for name, row in first["results"].items():
        metrics = __import__("json").loads((tmp_path / name / "metrics.json").read_text())
        for split in ("seen", "unseen", "ood"):
            assert row[split] == {k: metrics[split].get(k) for k in COLUMNS}
    stamp = (tmp_path / "plain" / "metrics.json").stat().st_mtime_ns
    again = run_ablation(recipes, tmp_path, data="playground", epochs=1)  # finished: read back, not retrained
    assert (tmp_path / "plain" / "metrics.json").stat().st_mtime_ns == stamp
    assert again["results"] == first["results"]


# --------------------------------------------------------------------------- the breakdown


def _perfect_predictions(stage, split):
    from maskdepth.datasets.dataset import build_dataset

    ds = build_dataset(stage, split, size=32)
    items = [ds[i] for i in range(len(ds))]
    mask = np.stack([it["mask"].numpy() for it in items])
    depth = np.stack([it["depth"].numpy() for it in items])
    return {"index": np.array([it["index"] for it in items]), "gt_mask": mask.astype(np.uint8),
            "mask_logits": np.where(mask > 0.5, 20.0, -20.0).astype(np.float32), "depth": depth, "gt_depth": depth}


def test_breakdown_groups_every_sample_by_what_it_is_made_of():
    from maskdepth.evaluation.breakdown import FACTORS, breakdown, sample_factors
    from maskdepth.world.backgrounds import OOD_FAMILIES
    from maskdepth.world.foregrounds import OOD_FAMILIES as OOD_OBJECTS

    arrays = _perfect_predictions("playground", "ood")
    n = len(arrays["index"])
    factors = sample_factors("playground", "ood", arrays)
    # Every ood sample carries a held-out object family, and a held-out scene family or textures.
    assert all(f["object"] in OOD_OBJECTS for f in factors)
    assert all(f["scene"] in OOD_FAMILIES or f["scene"].endswith("(held-out textures)") for f in factors)
    result = breakdown(arrays, "playground", "ood")
    assert set(result) == set(FACTORS)
    for groups in result.values():
        assert sum(g["n"] for g in groups.values()) == n
        for value, g in groups.items():
            if value not in ("empty", "none"):  # a sample with an object: perfect scores
                assert g["iou"] == pytest.approx(1.0) and g["sa_delta1"] == pytest.approx(1.0)


def test_breakdown_refuses_predictions_of_another_split():
    from maskdepth.evaluation.breakdown import sample_factors

    arrays = _perfect_predictions("playground", "seen")
    arrays["index"] = arrays["index"] + 100
    with pytest.raises(MaskdepthError, match="playground seen split has"):
        sample_factors("playground", "seen", arrays)


def test_validate_writes_the_breakdown_for_a_stage(tmp_path):
    from maskdepth.evaluation.breakdown import FACTORS
    from maskdepth.training.config import TrainConfig
    from maskdepth.training.trainer import train
    from maskdepth.validation.readout import breakdown_markdown
    from maskdepth.validation.validate import validate

    cfg = TrainConfig.from_mapping({"data": "playground", "out_dir": str(tmp_path / "run"), "size": 32, "epochs": 1,
                                    "batch_size": 8, "model_kwargs": {"encoder": "lean", "context": False, "base_channels": 4}, "tensorboard": False,
                                    "progress_bar": False, "grid_every": 0})
    train(cfg)
    metrics = validate(tmp_path / "run", split="ood", out_dir=tmp_path / "val", figures=False, progress_bar=False)
    table = breakdown_markdown(metrics)
    assert metrics["breakdown"] == "breakdown.md" and table is not None
    assert all(f"| {factor} |" in table for factor in FACTORS)
    groups = __import__("json").loads((tmp_path / "val" / "breakdown.json").read_text())["groups"]
    assert sum(g["n"] for g in groups["object"].values()) == metrics["n_samples"]


def test_ablation_refuses_a_folder_holding_another_recipe(tmp_path):
    from maskdepth.workflow.ablation import run_ablation

    small = {"size": 32, "batch_size": 8, "model_kwargs": {"encoder": "lean", "context": False, "base_channels": 4, "max_channels": 16}}
    run_ablation({"r": small}, tmp_path, data="playground", epochs=1)
    before = (tmp_path / "r" / "metrics.json").read_bytes()
    with pytest.raises(MaskdepthError, match="recipe 'r'.*other settings.*depth_loss"):
        run_ablation({"r": {**small, "depth_loss": "l1_msgrad"}}, tmp_path, data="playground", epochs=1)
    assert (tmp_path / "r" / "metrics.json").read_bytes() == before


def test_every_entry_point_trains_the_same_network(monkeypatch):
    """maskdepth train (a stage or a folder), papermill on 02_train with no parameters, maskdepth run
    --stage 1k and playground.ipynb build one model spec: the recipe lives in TrainConfig's defaults
    and the registry's `joint`, and a stage changes only size, epochs, batch, lr and workers."""
    import ast
    import json as _json

    from maskdepth.cli import build_parser
    from maskdepth.cli.train import run as train_command
    from maskdepth.models import model_info
    from maskdepth.plan.stages import STAGES, stage_defaults
    from maskdepth.training.builders import build_model
    from maskdepth.training.config import TrainConfig
    from maskdepth.workflow.notebooks import notebooks_dir

    built = {}

    def capture(cfg):
        built["cli"] = cfg

    monkeypatch.setattr("maskdepth.training.trainer.train", capture)
    monkeypatch.setattr("maskdepth.cli.train._write_page", lambda _: None)
    train_command(build_parser().parse_args(["train", "--data", "1k", "--epochs", "1"]))
    names = {f for f in TrainConfig.__dataclass_fields__}
    configs = {
        "maskdepth train --data 1k": built["cli"],
        "02_train, no parameters": TrainConfig(),
        "maskdepth run --stage 1k": TrainConfig.from_mapping(
            {k: v for k, v in stage_defaults("1k").items() if k in names}),
        "maskdepth train --data DIR": TrainConfig(data="/some/folder"),
    }
    nb = _json.loads((notebooks_dir() / "playground.ipynb").read_text())
    params = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse("".join(params["source"])).body}
    configs["playground.ipynb"] = TrainConfig(model=values["model"], task=values["task"],
                                              depth_loss=values["depth_loss"], mask_loss=values["mask_loss"])
    specs = {name: build_model(cfg).maskdepth_spec for name, cfg in configs.items()}
    assert len({_json.dumps(s, sort_keys=True) for s in specs.values()}) == 1, specs
    losses = {(cfg.depth_loss, cfg.mask_loss, cfg.encoder_lr, cfg.weights) for cfg in configs.values()}
    assert losses == {("l1_ssi_ssid", "bce_dice", 0.3, "")}
    assert specs["02_train, no parameters"]["kwargs"]["encoder"] == "efficientnet_lite0"
    for stage in STAGES.values():
        assert set(stage.train_defaults) <= {"size", "epochs", "batch_size", "lr", "workers"}
    shown = model_info("joint")  # what `maskdepth models` prints for the default
    assert shown["kwargs"] == specs["02_train, no parameters"]["kwargs"]
