"""Networks: a registry of U-Nets that predict the foreground mask and/or the depth map.

`create_model(name, in_channels=3, **options)` builds ``joint`` (default, both outputs),
``lean_unet`` or ``resnet_unet`` (the capstone's two single-task U-Nets); `forward(x)` returns
{"mask": logits, "depth": metres}, single-task models only their key. What each model predicts
and takes: `model_entry(name)` / `model_meta(name, ...)` (see `registry`). Encoders, weights and
checkpoints: docs/models.md.

Modules: blocks, budget, checkpoint, encoders, joint, lean_unet, pretrained, registry, resnet_unet, tta."""

from maskdepth.models import joint, lean_unet, resnet_unet  # noqa: F401  (registers the models)
from maskdepth.models.encoders import get_encoder, list_encoders
from maskdepth.models.registry import (
    DEFAULT_MODEL,
    IN_CHANNELS,
    MaskdepthModel,
    ModelEntry,
    count_parameters,
    create_model,
    forward_gflops,
    list_models,
    model_entry,
    model_info,
    model_meta,
    model_options,
    register,
    single_task_models,
)

__all__ = [
    "DEFAULT_MODEL",
    "IN_CHANNELS",
    "MaskdepthModel",
    "ModelEntry",
    "count_parameters",
    "create_model",
    "forward_gflops",
    "get_encoder",
    "list_encoders",
    "list_models",
    "model_entry",
    "model_info",
    "model_meta",
    "model_options",
    "register",
    "single_task_models",
]
