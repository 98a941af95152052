"""Test-time augmentation (`maskdepth.models.tta`): what the views are, how they are averaged, and
that validate, predict and the real-photo check read a checkpoint the way its recipe says."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from maskdepth.cli import main
from maskdepth.cli.predict import TTA_CHOICES
from maskdepth.core.errors import MaskdepthError
from maskdepth.models import create_model
from maskdepth.models.checkpoint import save_checkpoint
from maskdepth.models.tta import TTA_MODES, scaled_size, with_tta
from maskdepth.prediction.predictor import Predictor
from maskdepth.training.config import TrainConfig


class Stepped(nn.Module):
    """Not mirror-symmetric on purpose: mask logits 4 where the first channel is bright, else -2,
    plus a left-to-right ramp 0..1; depth 1 m on the left half of the picture, 10 m on the right."""

    tasks = ("mask", "depth")
    size_multiple = 8

    def forward(self, x):
        bright = (x[:, :1] > 0.5).float()
        width = x.shape[-1]
        ramp = torch.linspace(0, 1, width).view(1, 1, 1, -1)
        right = (torch.arange(width) >= width // 2).float().view(1, 1, 1, -1)
        return {"mask": -2.0 + 6.0 * bright + ramp, "depth": (1.0 + 9.0 * right).expand_as(bright)}


def _half_bright(height=16, width=24) -> torch.Tensor:
    x = torch.zeros(1, 3, height, width)
    x[..., width // 2:] = 1.0
    return x


def test_the_cli_lists_every_mode():
    assert TTA_CHOICES == tuple(TTA_MODES)


def test_none_is_the_model_itself():
    model = Stepped()
    assert with_tta(model, "none") is model


@pytest.mark.parametrize("mode", ["flip", "flip_scale"])
def test_outputs_are_mirror_symmetric_whatever_the_model(mode):
    """The views of a mode are closed under mirroring, so reading a mirrored image gives the
    mirrored outputs, even for a model (Stepped, the random net) that is not symmetric itself."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 48)
    for model in (Stepped(), create_model("joint", encoder="lean", context=False, base_channels=8).eval()):
        plain = model(x)["mask"]
        assert not torch.allclose(plain, model(x.flip(-1))["mask"].flip(-1), atol=1e-3)
        tta = with_tta(model, mode)
        with torch.no_grad():
            out, mirrored = tta(x), tta(x.flip(-1))
        for key in ("mask", "depth"):
            assert out[key].shape == (2, 1, 32, 48)
            torch.testing.assert_close(out[key], mirrored[key].flip(-1), rtol=1e-5, atol=1e-5)


def test_logits_are_averaged_as_they_are_and_depth_in_log_space():
    """Mirrored back, the second view puts Stepped's ramp and depth halves the other way round:
    each pixel's logit gets ramp + its mirror = 1 (half each), its depth one view at 1 m and one at
    10 m: averaged in log space that is sqrt(10) m (5.5 m would be the arithmetic mean)."""
    x = _half_bright()
    out = with_tta(Stepped(), "flip")(x)
    bright = (torch.arange(24) >= 12).float()
    torch.testing.assert_close(out["mask"][0, 0, 0], -2.0 + 6.0 * bright + 0.5)
    torch.testing.assert_close(out["depth"], torch.full_like(out["depth"], math.sqrt(10.0)))
    assert not torch.allclose(Stepped()(x)["depth"], out["depth"])


def test_flip_scale_adds_the_enlarged_views_brought_back_to_the_input_size():
    """flip_scale = the mean over the flip views at 1x and at 4/3 (each side to the model's
    multiple), the enlarged outputs resized back bilinearly: written out here step by step."""
    torch.manual_seed(1)
    model = create_model("joint", encoder="lean", context=False, base_channels=8).eval()
    x = torch.rand(1, 3, 64, 96)
    assert scaled_size(64, 96, 4 / 3, 32) == (96, 128)
    big = F.interpolate(x, size=scaled_size(64, 96, 4 / 3, model.size_multiple), mode="bilinear", align_corners=False)

    def views(image):  # logits and log depth of the image and its mirror, at the input's size
        a, b = model(image), model(image.flip(-1))
        back = {"mask": (a["mask"], b["mask"].flip(-1)), "depth": (a["depth"].log(), b["depth"].log().flip(-1))}
        return {k: [F.interpolate(t, size=(64, 96), mode="bilinear", align_corners=False) for t in pair]
                for k, pair in back.items()}

    with torch.no_grad():
        small, large = views(x), views(big)
        out = with_tta(model, "flip_scale")(x)
    mask = torch.stack(small["mask"] + large["mask"]).mean(0)
    depth = torch.stack(small["depth"] + large["depth"]).mean(0).exp()
    torch.testing.assert_close(out["mask"], mask, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["depth"], depth, rtol=1e-5, atol=1e-5)
    # and it is not the plain network's output
    assert not torch.allclose(out["mask"], model(x)["mask"], atol=1e-3)


def test_a_mode_not_known_is_one_clear_error():
    with pytest.raises(MaskdepthError, match="tta='mirror': choose one of none, flip, flip_scale"):
        with_tta(Stepped(), "mirror")
    with pytest.raises(MaskdepthError, match="tta="):
        TrainConfig(tta="mirror").validate()


def _checkpoint(path, config: dict | None):
    torch.manual_seed(0)
    model = create_model("joint", encoder="lean", context=False, base_channels=8)
    save_checkpoint(path, model, info={"task": "joint", "input_mode": "fg_bg", "input_size": [64, 64]}, config=config)
    return path


def test_predict_reads_a_checkpoint_the_way_its_recipe_says(tmp_path):
    recipe = _checkpoint(tmp_path / "recipe.pt", {**TrainConfig().to_dict(), "tta": "flip"})
    older = _checkpoint(tmp_path / "older.pt", {"data": "playground"})  # saved before the setting existed
    assert TrainConfig().tta == "flip_scale"  # the default recipe
    assert Predictor(recipe, device="cpu").tta == "flip"
    assert Predictor(older, device="cpu").tta == "none"
    assert Predictor(recipe, device="cpu", tta="none").tta == "none"
    image = np.random.default_rng(0).random((40, 72, 3)).astype(np.float32)
    (as_recipe,) = Predictor(recipe, device="cpu", upsample="bilinear").predict(image, show_progress=False)
    (plain,) = Predictor(recipe, device="cpu", upsample="bilinear", tta="none").predict(image, show_progress=False)
    (older_out,) = Predictor(older, device="cpu", upsample="bilinear").predict(image, show_progress=False)
    np.testing.assert_allclose(plain["depth"], older_out["depth"], rtol=1e-6)  # same weights, both plain
    assert not np.allclose(as_recipe["depth"], plain["depth"], rtol=1e-4)
    (mirrored,) = Predictor(recipe, device="cpu", upsample="bilinear").predict(image[:, ::-1].copy(), show_progress=False)
    np.testing.assert_allclose(mirrored["mask_prob"][:, ::-1], as_recipe["mask_prob"], atol=1e-5)


def test_the_command_lines_record_and_override_the_mode(tmp_path, capsys):
    recipe = _checkpoint(tmp_path / "recipe.pt", {**TrainConfig().to_dict(), "tta": "flip"})
    image = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray((np.random.default_rng(1).random((30, 50, 3)) * 255).astype(np.uint8)).save(image)
    assert main(["predict", str(image), "-c", str(recipe), "--out", str(tmp_path / "a"), "--no-preview"]) == 0
    assert json.loads((tmp_path / "a" / "predictions.json").read_text())["tta"] == "flip"
    assert main(["predict", str(image), "-c", str(recipe), "--out", str(tmp_path / "b"), "--no-preview",
                 "--tta", "none"]) == 0
    assert json.loads((tmp_path / "b" / "predictions.json").read_text())["tta"] == "none"
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(image), "-c", str(recipe), "--tta", "mirror"])
    assert exc.value.code == 2
    assert "--tta: invalid choice: 'mirror'" in capsys.readouterr().err
    assert main(["validate", "-c", str(recipe), "--real", "--tta", "flip_scale", "--out", str(tmp_path / "r"),
                 "--no-figures", "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "r" / "real.json").read_text())["tta"] == "flip_scale"


def _run_with_validation(tmp_path, *, epoch=3, n=8, name="best.pt", tta="flip_scale"):
    run = tmp_path / "run"
    (run / "validation" / "ood").mkdir(parents=True)
    metrics = {"best_epoch": 3, "n_samples": {"seen": 8, "ood": 8},
               "seen": {"iou": 0.40, "loss": 0.9}, "ood": {"iou": 0.30, "sa_delta1": 0.5, "loss": 1.1}}
    validated = {"checkpoint": str(run / "checkpoints" / name), "epoch": epoch, "n_samples": n, "tta": tta,
                 "overall": {"iou": 0.33, "sa_delta1": 0.55, "ordering": None}}
    (run / "validation" / "ood" / "metrics.json").write_text(json.dumps(validated))
    return run, metrics


def test_a_runs_metrics_are_the_recipes_reading_where_validate_scored_its_checkpoint(tmp_path):
    from maskdepth.core.runs import run_metrics

    run, metrics = _run_with_validation(tmp_path)
    read = run_metrics(run, metrics)
    assert read["read_as"] == {"seen": "plain", "ood": "flip_scale"}
    assert read["ood"] == {"iou": 0.33, "sa_delta1": 0.55, "loss": 1.1}  # training's loss kept, a null not laid over
    assert read["seen"] == metrics["seen"] and metrics["ood"]["iou"] == 0.30  # the input is not changed
    for stale in ({"epoch": 2}, {"n": 4}, {"name": "last.pt"}):  # another epoch, part of the split, another file
        run, metrics = _run_with_validation(tmp_path / str(stale), **stale)
        read = run_metrics(run, metrics)
        assert read["ood"] == metrics["ood"] and read["read_as"]["ood"] == "plain"


def test_the_gate_judges_the_recipes_reading(tmp_path):
    from maskdepth.core.runs import run_metrics
    from maskdepth.plan.stages import STAGES
    from maskdepth.validation.gate import evaluate_gate

    bounds = STAGES["1k"].gate
    assert "ood.iou" in bounds
    run, metrics = _run_with_validation(tmp_path)
    for key, bound in bounds.items():  # every check passed with room to spare ...
        split, name = key.split(".")
        metrics["n_samples"][split] = 8
        metrics.setdefault(split, {})[name] = bound + 0.1
    metrics["ood"]["iou"] = bounds["ood.iou"] - 0.05  # ... but ood masks, as trained
    validated = json.loads((run / "validation" / "ood" / "metrics.json").read_text())
    validated["overall"] = {k.split(".")[1]: v + 0.1 for k, v in bounds.items() if k.startswith("ood.")}
    validated["overall"]["iou"] = bounds["ood.iou"] + 0.05  # above it as the recipe reads the model
    (run / "validation" / "ood" / "metrics.json").write_text(json.dumps(validated))
    assert not evaluate_gate("1k", metrics)["passed"]
    assert evaluate_gate("1k", run_metrics(run, metrics))["passed"]
