"""The layer order of the package, written once: each sub-package may import only from itself and
the packages before it (checked by tests/test_layers.py). The top-level modules (`maskdepth`,
`__main__`, `bootstrap`, this one) are entry points above every layer; any module may read the
bare `maskdepth` package (its `__version__`)."""

LAYERS = (
    "core",  # errors, files, devices, images, run folders: what everything depends on
    "models",  # networks, their registry, budgets and checkpoints
    "plan",  # the stage table and the machine rules
    "world",  # the synthetic world: scenes, objects, cameras, manifests, composition
    "augment",  # per-sample and batched augmentation
    "datasets",  # Datasets and dataset folders
    "evaluation",  # losses, the metric catalogue, meters, the scoring loop
    "figures",  # pictures of data, predictions and curves
    "training",  # the trainer and its parts
    "prediction",  # predicting any image from a checkpoint, ONNX export
    "validation",  # a checkpoint scored per split, the real-photo check, the gate
    "pages",  # HTML run pages and run comparison
    "workflow",  # stages run as notebooks, experiments, the machine report
    "cli",  # the maskdepth command
)
WIDE_LAYERS = ("workflow", "cli")  # may import many project modules; the others at most MAX_IMPORTS
MAX_IMPORTS = 10
