"""Models: the registry contract, the capstone's exact parameter counts, encoders' local weights,
and one base test class that every registered model (and single-task variant) must pass."""

from __future__ import annotations

import io
import json
import warnings
from contextlib import redirect_stdout

import pytest
import torch

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.core.errors import MaskdepthError
from maskdepth.models import (
    IN_CHANNELS,
    MaskdepthModel,
    count_parameters,
    create_model,
    list_models,
    model_entry,
    model_info,
    model_meta,
    register,
    single_task_models,
)

# Every registered model with each of its output variants; test_cases_cover_registry keeps
# this list in step with the registry.
CASES = [
    ("joint", {}),
    ("joint", {"encoder": "resnet18", "base_channels": 8, "weights": "none"}),
    ("joint", {"encoder": "lean", "num_stages": 5, "max_channels": 64, "context": True}),
    ("joint", {"encoder": "lean", "num_stages": 3, "base_channels": 8, "space_to_depth": 2, "mask_to_depth": True}),
    ("joint", {"encoder": "efficientnet_lite0", "context": True}),
    ("joint", {"encoder": "mobilenet_v3_large", "base_channels": 8, "weights": "none"}),
    ("lean_unet", {"task": "mask"}),
    ("lean_unet", {"task": "depth"}),
    ("lean_unet", {"task": "depth", "bn_relu_head": True}),
    ("resnet_unet", {"task": "mask"}),
    ("resnet_unet", {"task": "depth"}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in kw.items()) for name, kw in CASES]

# The capstone's printed summaries (shared/seed/000_87a9362742540d82.txt).
CAPSTONE_LEAN_PARAMS = 507_203
CAPSTONE_RESNET_SUMMARY_PARAMS = 28_976_321  # the backbone listed twice by the summary tool
RESNET_UNET_PARAMS = 17_799_809


def _fresh(name):
    """Rebuild without initial weights, as a checkpoint does (its state_dict replaces them)."""
    from maskdepth.models import model_options

    return {"weights": "none"} if "weights" in model_options(name) else {}


def _expected_tasks(name, kwargs):
    return ("mask", "depth") if name == "joint" else (kwargs.get("task", "mask"),)


def _batch(model, in_channels, size, batch=2):
    torch.manual_seed(1)
    return torch.rand(batch, in_channels, size, size)


def test_cases_cover_registry():
    assert sorted({name for name, _ in CASES}) == sorted(list_models())


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    return request.param


class TestEveryModel:
    """The contract the trainer, validator, predictor and exporter rely on."""

    @pytest.mark.parametrize("in_channels", [3, 6])
    def test_forward_keys_shapes_and_depth_range(self, case, in_channels):
        name, kwargs = case
        torch.manual_seed(0)
        model = create_model(name, in_channels=in_channels, **kwargs)
        out = model(_batch(model, in_channels, 64))
        tasks = _expected_tasks(name, kwargs)
        assert tuple(model.tasks) == tasks
        assert set(out) == set(tasks)
        for value in out.values():
            assert value.shape == (2, 1, 64, 64) and value.dtype == torch.float32
            assert torch.isfinite(value).all()
        if "depth" in out:
            d = out["depth"]
            assert d.min() >= DEPTH_MIN * (1 - 1e-5) and d.max() <= DEPTH_MAX * (1 + 1e-5)
            assert d.std() > 0  # a real map, not a constant

    def test_backward_reaches_every_parameter(self, case):
        name, kwargs = case
        torch.manual_seed(0)
        model = create_model(name, **kwargs).train()
        out = model(_batch(model, 3, 64))
        loss = sum(v.float().mean() for v in out.values())
        loss.backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None, f"{pname} gets no gradient"
            assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
        assert any(p.grad.abs().sum() > 0 for p in model.parameters())

    def test_other_size_and_clear_error_for_impossible_size(self, case):
        name, kwargs = case
        model = create_model(name, **kwargs).eval()
        assert 96 % model.size_multiple == 0
        with torch.no_grad():
            out = model(_batch(model, 3, 96, batch=1))
        assert all(v.shape == (1, 1, 96, 96) for v in out.values())
        with pytest.raises(MaskdepthError, match=rf"65x65.*multiples of {model.size_multiple}"):
            model(torch.rand(1, 3, 65, 65))
        with pytest.raises(MaskdepthError, match="6 channels.*built for 3"):
            model(torch.rand(1, 6, 64, 64))

    def test_state_dict_round_trip_rebuilds_from_spec(self, case, tmp_path):
        name, kwargs = case
        torch.manual_seed(0)
        model = create_model(name, in_channels=6, **kwargs)
        model.train()
        with torch.no_grad():  # move BatchNorm running stats away from their init
            model(_batch(model, 6, 64) * 3)
        path = tmp_path / "model.pt"
        torch.save({"spec": json.loads(json.dumps(model.maskdepth_spec)), "state": model.state_dict()}, path)

        saved = torch.load(path, weights_only=True)
        spec = saved["spec"]
        assert spec["name"] == name and spec["in_channels"] == 6
        rebuilt = create_model(spec["name"], in_channels=spec["in_channels"], **spec["kwargs"], **_fresh(spec["name"]))
        rebuilt.load_state_dict(saved["state"])
        x = _batch(model, 6, 64)
        with torch.no_grad():
            a, b = model.eval()(x), rebuilt.eval()(x)
        for key in a:
            assert torch.equal(a[key], b[key])

    def test_torchscript_trace_matches_eager(self, case):
        name, kwargs = case
        torch.manual_seed(0)
        model = create_model(name, **kwargs).eval()
        x = _batch(model, 3, 64)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's own deprecation notices
            traced = torch.jit.trace(model, x, strict=False)
            eager, scripted = model(x), traced(x)
            other = _batch(model, 3, 96, batch=1)  # traced graphs must not bake the size in
            eager96, scripted96 = model(other), traced(other)
        for key in eager:
            torch.testing.assert_close(scripted[key], eager[key], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(scripted96[key], eager96[key], rtol=1e-5, atol=1e-5)

    def test_the_registry_says_what_the_net_is(self, case):
        """Trainer, validator and CLI learn a model's outputs, input channels and size multiple
        from the registry (no model names outside maskdepth.models); it must match the net."""
        name, kwargs = case
        entry = model_entry(name)
        for in_channels in IN_CHANNELS:
            model = create_model(name, in_channels=in_channels, **kwargs)
            assert isinstance(model, MaskdepthModel) and in_channels in entry.in_channels
            assert entry.outputs(kwargs) == tuple(model.tasks) == _expected_tasks(name, kwargs)
            assert entry.single_task == (len(model.tasks) == 1)
            assert model_meta(name, in_channels, **kwargs) == {
                "tasks": tuple(model.tasks), "size_multiple": model.size_multiple, "in_channels": in_channels}


# ---- parameter counts: the capstone's numbers -------------------------------------------------


def test_lean_unet_has_the_capstone_parameter_count():
    assert count_parameters(create_model("lean_unet", bn_relu_head=True)) == CAPSTONE_LEAN_PARAMS
    # Dropping the head's BatchNorm(1) removes exactly its weight and bias.
    assert count_parameters(create_model("lean_unet", bn_relu_head=False)) == CAPSTONE_LEAN_PARAMS - 2
    # Only the first conv sees the input: 3 more channels x 3x3 x 16 filters.
    assert (
        count_parameters(create_model("lean_unet", in_channels=6, bn_relu_head=True))
        == CAPSTONE_LEAN_PARAMS + 3 * 9 * 16
    )


def test_lean_unet_bn_relu_head_ends_in_relu():
    model = create_model("lean_unet", bn_relu_head=True).train()
    logits = model(torch.rand(4, 3, 32, 32))["mask"]
    assert logits.min() >= 0 and (logits == 0).any()


def test_resnet_unet_parameter_count_and_the_capstone_double_count():
    import torchvision

    model = create_model("resnet_unet")
    assert count_parameters(model) == RESNET_UNET_PARAMS
    assert not any(k.startswith(("fc.", "encoder.fc.")) or ".fc." in k for k in model.state_dict())
    backbone = torchvision.models.resnet18(weights=None)
    backbone_without_fc = sum(p.numel() for n, p in backbone.named_parameters() if not n.startswith("fc."))
    assert count_parameters(model.encoder) == backbone_without_fc
    # The capstone's summary printed the backbone twice.
    assert RESNET_UNET_PARAMS + backbone_without_fc == CAPSTONE_RESNET_SUMMARY_PARAMS
    # 6 channels: conv1 (7x7x64) and conv_original_size0 (3x3x64) see 3 more channels.
    six = create_model("resnet_unet", in_channels=6)
    assert count_parameters(six) == RESNET_UNET_PARAMS + 3 * 49 * 64 + 3 * 9 * 64


def test_resnet34_option_uses_the_deeper_backbone():
    import torchvision

    r18, r34 = create_model("resnet_unet"), create_model("resnet_unet", encoder="resnet34")
    extra = sum(p.numel() for p in torchvision.models.resnet34(weights=None).parameters()) - sum(
        p.numel() for p in torchvision.models.resnet18(weights=None).parameters()
    )
    assert count_parameters(r34) - count_parameters(r18) == extra
    out = r34.eval()(torch.rand(1, 3, 64, 64))
    assert out["mask"].shape == (1, 1, 64, 64)


def test_lean_unet_gflops_match_its_layer_table():
    # (H*W, c_in, kernel^2, c_out) of every conv in the capstone's summary at 64x64.
    convs = [
        (64 * 64, 3, 9, 16), (32 * 32, 16, 9, 32), (16 * 16, 32, 9, 64), (16 * 16, 64, 9, 128),
        (8 * 8, 128, 1, 128), (16 * 16, 256, 9, 128), (16 * 16, 128, 9, 32), (32 * 32, 64, 9, 64),
        (32 * 32, 64, 9, 32), (64 * 64, 32, 9, 16), (64 * 64, 16, 1, 1),
    ]  # fmt: skip
    expected = sum(2 * hw * cin * k * cout for hw, cin, k, cout in convs) / 1e9
    assert model_info("lean_unet")["gflops"] == pytest.approx(expected, abs=1e-4)


# ---- registry contract ------------------------------------------------------------------


def test_unknown_model_lists_the_choices():
    with pytest.raises(MaskdepthError, match="unet_9000.*joint.*lean_unet.*resnet_unet"):
        create_model("unet_9000")


@pytest.mark.parametrize("bad", [1, 4, 0, True])
def test_bad_in_channels_names_the_allowed_values(bad):
    with pytest.raises(MaskdepthError, match=r"in_channels must be 3 .* or 6"):
        create_model("joint", in_channels=bad)


def test_single_task_models_are_those_with_a_task_option_and_every_net_meets_the_protocol():
    from maskdepth.models import registry

    assert single_task_models() == ["lean_unet", "resnet_unet"]
    assert model_entry("lean_unet").task_option == "task" and model_entry("joint").task_option is None

    class Bare(torch.nn.Module):  # no tasks / size_multiple / in_channels
        def forward(self, x):
            return {"mask": x[:, :1]}

    register("bare_for_test", description="a net that forgets the protocol")(lambda in_channels: Bare())
    try:
        with pytest.raises(TypeError, match="bare_for_test: the built net has no tasks, size_multiple, in_channels"):
            create_model("bare_for_test")
    finally:
        del registry._MODELS["bare_for_test"]
    assert "bare_for_test" not in list_models()


def test_bad_options_are_named():
    with pytest.raises(MaskdepthError, match="depth_scale.*allowed: encoder"):
        create_model("joint", depth_scale=2)
    with pytest.raises(MaskdepthError, match="task must be one of mask, depth"):
        create_model("lean_unet", task="edges")
    with pytest.raises(MaskdepthError, match="unknown encoder 'vgg'.*lean, resnet18, resnet34"):
        create_model("joint", encoder="vgg")


def test_spec_holds_every_option_and_not_the_weights_file():
    model = create_model("joint", in_channels=6, encoder="lean", context=False, base_channels=8)
    assert model.maskdepth_spec == {
        "name": "joint",
        "in_channels": 6,
        "kwargs": {"encoder": "lean", "base_channels": 8, "refine": True, "num_stages": 3, "max_channels": 0,
                   "context": False, "mask_to_depth": False, "space_to_depth": 1},
    }
    assert tuple(model.tasks) == ("mask", "depth")


def test_joint_base_channels_scales_width():
    small, big = create_model("joint", encoder="lean", context=False, base_channels=8), create_model("joint", encoder="lean", context=False, base_channels=16)
    # Conv weights grow with width squared, so doubling width nearly quadruples parameters.
    assert 3.5 < count_parameters(big) / count_parameters(small) < 4.0


# ---- local pretrained weights -------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    import torchvision

    torch.manual_seed(7)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("name", ["resnet_unet", "joint"])
def test_weights_load_into_the_encoder_for_3_channels(resnet18_file, name):
    path, state = resnet18_file
    kwargs = {"encoder": "resnet18"} if name == "joint" else {}
    model = create_model(name, weights=str(path), **kwargs)
    loaded = model.encoder.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    assert "weights" not in model.maskdepth_spec["kwargs"]
    rebuilt = create_model(name, **model.maskdepth_spec["kwargs"], **_fresh(name))  # no weights file needed
    rebuilt.load_state_dict(model.state_dict())


def test_weights_for_6_channels_copy_rgb_filters_halved(resnet18_file):
    path, state = resnet18_file
    model = create_model("resnet_unet", in_channels=6, weights=path)
    conv1 = model.encoder.conv1.weight.detach()
    assert conv1.shape == (64, 6, 7, 7)
    assert torch.equal(conv1[:, :3], state["conv1.weight"] / 2)
    assert torch.equal(conv1[:, 3:], state["conv1.weight"] / 2)
    assert torch.equal(model.encoder.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    # The same image as bg and fg_bg gives the pretrained response to that image.
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(
        torch.nn.functional.conv2d(torch.cat([x, x], 1), conv1, stride=2, padding=3),
        torch.nn.functional.conv2d(x, state["conv1.weight"], stride=2, padding=3),
    )


def test_weights_file_errors_name_the_file(tmp_path, resnet18_file):
    import torchvision

    missing = tmp_path / "nope.pth"
    with pytest.raises(MaskdepthError, match="nope.pth: no such file"):
        create_model("resnet_unet", weights=missing)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(MaskdepthError, match="garbage.pth: cannot be read"):
        create_model("resnet_unet", weights=garbage)
    r34 = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), r34)
    with pytest.raises(MaskdepthError, match="resnet34.pth: does not fit the encoder"):
        create_model("resnet_unet", weights=r34)
    path, _ = resnet18_file
    with pytest.raises(MaskdepthError, match="encoder lean has no pretrained weights"):
        create_model("joint", encoder="lean", weights=path)


# ---- CLI ------------------------------------------------------------------------------------


def test_cli_models_json_lists_every_model():
    from maskdepth.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(buf.getvalue())["models"]}
    assert list(rows) == list_models()
    assert rows["joint"]["default"] and rows["joint"]["outputs"] == ["mask", "depth"]
    assert rows["resnet_unet"]["params"] == RESNET_UNET_PARAMS
    assert rows["lean_unet"]["params"] == CAPSTONE_LEAN_PARAMS - 2  # default: logits head
    assert all(r["in_channels"] == 3 and r["gflops"] > 0 for r in rows.values())
    assert rows["resnet_unet"]["gflops"] > rows["lean_unet"]["gflops"] > rows["joint"]["gflops"]


def test_cli_models_table_and_bad_size(capsys):
    from maskdepth.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "joint (default)" in out and "17,799,809" in out
    assert main(["models", "--size", "65"]) == 2
    assert "65x65" in capsys.readouterr().err


def test_space_to_depth_has_no_full_resolution_layer_and_predicts_every_pixel():
    """space_to_depth=2: every conv works at stride >= 2, yet each output pixel has its own
    value (PixelShuffle of s*s channels), and every input pixel reaches the output."""
    model = create_model("joint", encoder="lean", context=False, num_stages=3, base_channels=8, space_to_depth=2).eval()
    assert model.size_multiple == 16 and model.encoder.strides == (2, 4, 8, 16)
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-1]))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = model(x)
    for h in hooks:
        h.remove()
    assert max(seen) == 16  # no conv reads a 32x32 (full-resolution) activation
    assert out["mask"].shape == out["depth"].shape == (1, 1, 32, 32)
    # the four pixels of one 2x2 block are predicted separately, not copied
    block = out["mask"][0, 0, 10:12, 10:12]
    assert block.unique().numel() == 4
    out["mask"][0, 0, 10, 11].backward()
    assert x.grad[0, :, 10, 11].abs().sum() > 0  # the pixel itself reaches its own prediction
    with pytest.raises(MaskdepthError, match="space_to_depth=2 needs the lean encoder"):
        create_model("joint", encoder="resnet18", space_to_depth=2)
    with pytest.raises(MaskdepthError, match="space_to_depth must be 1 or 2"):
        create_model("joint", encoder="lean", space_to_depth=3)

