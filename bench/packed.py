"""The packed (materialized, memory-mapped) dataset, when this maskdepth has it.

`maskdepth data materialize` writes a stage's composed samples as packed arrays
(`maskdepth.datasets.materialize.materialize`) that `maskdepth.datasets.packed.PackedDataset`
memory-maps. The benchmark times writing them (figure 5) and their loader (figure 2) only
where that API exists; otherwise those entries say "not available" and why, so the
benchmark also runs against a maskdepth without it.
"""

from __future__ import annotations

from pathlib import Path


def packed_unavailable() -> str:
    """"" when the packed API can be used, else why not."""
    try:
        from maskdepth.datasets.materialize import materialize  # noqa: F401
        from maskdepth.datasets.packed import PackedDataset  # noqa: F401
    except ImportError as exc:
        return f"not available: this maskdepth has no materialize / packed-dataset API ({exc})"
    return ""


def materialize_packed(stage: str, out: Path, size: int) -> dict:
    """Write `stage` (all splits) as a packed dataset in `out`; the library's report (seconds, samples/s)."""
    from maskdepth.datasets.materialize import materialize

    return materialize(stage, out, fmt="packed", size=size)


def packed_dataset(folder: Path, split: str, augment: bool = False):
    from maskdepth.datasets.packed import PackedDataset

    return PackedDataset(folder, split, augment=augment)
