"""The network's fastest equivalent for inference: BatchNorm folded into the convolution before it,
and the check that bf16 outputs agree with float32 before bf16 is used (docs/predict.md).
"""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "float32", "bf16")
AUTO_BF16 = False  # "auto" stays float32: bf16 inference measured slower on an AVX512-BF16 CPU (module doc)
BF16_MIN_MASK_IOU = 0.99  # outputs_agree: bf16 against float32 on the first batch
BF16_MAX_DEPTH_REL = 0.02


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d in an nn.Sequential (the
    ConvBNReLU unit of every maskdepth network) into that convolution, in place; the BatchNorm
    becomes an Identity. Inference only: the model must stay in eval mode."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in list(model.modules()):
        if not isinstance(module, torch.nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            # a plain BatchNorm2d only: subclasses (timm's BatchNormAct2d) also apply an activation
            if (isinstance(conv, torch.nn.Conv2d) and type(bn) is torch.nn.BatchNorm2d
                    and bn.track_running_stats and bn.running_mean is not None):
                module[i] = fuse_conv_bn_eval(conv.eval(), bn.eval())
                module[i + 1] = torch.nn.Identity()
    return model


def inference_network(model, config: dict | None, device, tta: str | None = None):
    """(the fastest equivalent network for inference: BatchNorm folded, channels_last, on `device`,
    read over the views of test-time augmentation `tta`, default its recipe's: `maskdepth.models.tta`;
    that mode)."""
    from maskdepth.models.tta import as_recipe_reads

    return as_recipe_reads(fold_batchnorm(model.eval()).to(device, memory_format=torch.channels_last), config, tta)


def outputs_agree(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> tuple[bool, dict]:
    """Whether `other` (e.g. bf16) outputs match `reference` (float32) closely enough: mask IoU
    (logits > 0) above BF16_MIN_MASK_IOU and mean depth relative error below BF16_MAX_DEPTH_REL;
    with the measured values."""
    found: dict[str, float] = {}
    if "mask" in reference:
        a, b = reference["mask"] > 0, other["mask"] > 0
        union = int((a | b).sum())
        found["mask_iou"] = 1.0 if union == 0 else int((a & b).sum()) / union
    if "depth" in reference:
        ref = reference["depth"].float()
        found["depth_rel"] = float(((other["depth"].float() - ref).abs() / ref.clamp_min(1e-6)).mean())
    ok = found.get("mask_iou", 1.0) > BF16_MIN_MASK_IOU and found.get("depth_rel", 0.0) < BF16_MAX_DEPTH_REL
    return ok, found
