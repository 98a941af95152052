"""The Predictor's fast path: BatchNorm folded and channels_last give the checkpoint's outputs,
and the bf16 path (where the CPU has native bf16) stays close to float32 on a trained model."""

import pytest
import torch

from maskdepth.core.device import cpu_has_fast_bf16
from maskdepth.core.errors import MaskdepthError
from maskdepth.datasets.dataset import build_dataset
from maskdepth.evaluation.losses import build_loss
from maskdepth.models import create_model
from maskdepth.models.checkpoint import save_checkpoint
from maskdepth.prediction.predictor import Predictor
from maskdepth.prediction.speed import fold_batchnorm, outputs_agree

SIZE = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small joint model fitted to the playground train samples, saved as a checkpoint; and
    those images (where it is as sure of itself as a trained model on its own domain: on images
    it is unsure of, bf16 flips more mask pixels, and the Predictor then stays float32)."""
    torch.manual_seed(0)
    ds = build_dataset("playground", "train", size=SIZE)
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    model = create_model("joint", encoder="lean", context=False, base_channels=8)
    loss = build_loss(task="joint", mask_loss="bce_dice", depth_loss="l1", weights={"mask": 1.0, "depth": 1.0})
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(100):
        out = loss(model(batch["image"]), batch)["loss"]
        opt.zero_grad()
        out.backward()
        opt.step()
    model.eval()
    path = tmp_path_factory.mktemp("ckpt") / "joint.pt"
    save_checkpoint(path, model, info={"task": "joint", "tasks": ["mask", "depth"], "input_mode": "fg_bg",
                                       "input_size": [SIZE, SIZE]})
    return path, model, batch["image"]


def _stacked(outputs: list[dict]) -> dict:
    """Predictor.run's per-image outputs as one batch."""
    return {key: torch.cat([o[key] for o in outputs]) for key in outputs[0]}


def test_folded_channels_last_network_gives_the_checkpoints_outputs(trained):
    path, model, images = trained
    predictor = Predictor(path, device="cpu", precision="float32")
    assert predictor.precision == "float32"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in predictor.model.modules())
    with torch.inference_mode():
        expected = model(images)
    got = _stacked(predictor.run(list(images)))
    for key in ("mask", "depth"):
        assert torch.allclose(got[key], expected[key], rtol=1e-4, atol=1e-4), key
    folded = fold_batchnorm(create_model("joint", encoder="lean", context=False, base_channels=8).eval())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with pytest.raises(MaskdepthError, match="precision"):
        Predictor(path, device="cpu", precision="half")


@pytest.mark.hardware
@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")
def test_bf16_path_is_close_to_float32(trained):
    path, _, images = trained
    reference = _stacked(Predictor(path, device="cpu", precision="float32").run(list(images)))
    predictor = Predictor(path, device="cpu", precision="bf16")
    assert predictor.precision == "bf16 (pending)"
    first = _stacked(predictor.run(list(images)))  # the check batch: float32 outputs, bf16 compared with them
    assert torch.equal(first["mask"], reference["mask"])
    assert predictor.precision == "bf16", predictor.bf16_check
    low = _stacked(predictor.run(list(images)))
    assert not torch.equal(low["depth"], reference["depth"])  # bf16 really ran
    a, b = reference["mask"] > 0, low["mask"] > 0
    iou = float((a & b).sum() / (a | b).sum())
    rel = float(((low["depth"] - reference["depth"]).abs() / reference["depth"]).mean())
    assert iou > 0.99 and rel < 0.02, (iou, rel)
    assert outputs_agree(reference, low)[0]


def test_bf16_is_refused_when_its_outputs_differ():
    ref = {"mask": torch.ones(1, 1, 4, 4), "depth": torch.full((1, 1, 4, 4), 2.0)}
    assert outputs_agree(ref, ref) == (True, {"mask_iou": 1.0, "depth_rel": 0.0})
    ok, found = outputs_agree(ref, {"mask": -ref["mask"], "depth": ref["depth"]})
    assert not ok and found["mask_iou"] == 0.0
    assert not outputs_agree(ref, {"mask": ref["mask"], "depth": ref["depth"] * 1.05})[0]
