"""Import an existing fg_bg / mask / depth dataset (a folder or a zip) as a packed dataset.

Many course students hold the capstone's 400k dataset in that layout. The files are found and paired
by `import_source`, decoded and checked by `import_decode`; any problem fails the import with the
list (nothing is written as valid), unless `skip_bad`: then the samples with a problem are left
out, counted and listed in problems.txt. A dataset without any foreground pixel is an error.
Splits: `datadir.assign_splits` (backgrounds held out for `unseen` when names carry `bg{N}` ids).
"""

from __future__ import annotations

import math
import time
from pathlib import Path, PurePosixPath

from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.core.fileio import check_output, folder_lock, write_text
from maskdepth.datasets.datadir import already_complete, assign_splits, bg_id_from_name, claim_output
from maskdepth.datasets.import_decode import stage_samples
from maskdepth.datasets.import_source import SourceTree, scan
from maskdepth.datasets.packed import PackedSample, write_packed
from maskdepth.plan.stages import SPLITS

FLIP_SUFFIX = "_flip"  # `maskdepth data materialize --format folders`: the sample shows its bg mirrored
LISTED = 20  # problems shown in an error message (all of them go to problems.txt)


class ImportProblems(MaskdepthError):
    """Files that cannot be imported; `.problems` lists them as BadInputErrors."""

    def __init__(self, src, problems: list[BadInputError], good: int):
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:LISTED])
        more = f"\n  ... and {len(problems) - LISTED} more" if len(problems) > LISTED else ""
        super().__init__(
            f"import of {src}: {len(problems)} problem file(s):\n{shown}{more}\n"
            f"Fix or remove them, or rerun with --skip-bad to import the {good} good samples without them."
        )


def import_dataset(src, out, *, size: int = 64, skip_bad: bool = False, depth_scale: float | None = None,
                   depth_bright: str = "far") -> dict:
    """Import `src` into a packed dataset directory at `out`; returns counts, skipped, seconds, samples/s.

    A sample whose name ends in `_flip` (as `materialize --format folders` writes them) shows its
    background mirrored; samples without a known background use the image itself as `bg`."""
    from maskdepth.world.sources import check_size

    size = check_size(size)
    if depth_bright not in ("far", "near"):
        raise MaskdepthError(f"depth_bright={depth_bright!r}: choose far or near")
    if depth_scale is not None and not (math.isfinite(depth_scale) and depth_scale > 0):
        raise MaskdepthError(f"--depth-scale {depth_scale}: must be a positive number (metres per stored unit)")
    check_output(out, reads=[src], folder=True)
    with folder_lock(out, "data import"):
        return _import(src, out, size, skip_bad, depth_scale, depth_bright)


def _import(src, out, size: int, skip_bad: bool, depth_scale, depth_bright: str) -> dict:
    start = time.perf_counter()
    tree = SourceTree(src)
    found = scan(tree)
    identity = {"kind": "imported", "src": str(Path(src).resolve()), "fingerprint": tree.fingerprint(),
                "size": size, "skip_bad": skip_bad, "depth_scale": depth_scale, "depth_bright": depth_bright}
    if already_complete(out, identity):
        return {"out": str(out), "complete_already": True, "seconds": 0.0, "samples_per_s": None}
    partial = claim_output(out, {"identity": identity, "size": size})
    staged = stage_samples(tree, found, size, depth_scale, depth_bright, partial)
    problems = found.problems + staged.problems
    if problems and not skip_bad:
        import shutil

        shutil.rmtree(partial, ignore_errors=True)  # nothing valid was written; a rerun starts clean
        raise ImportProblems(src, problems, len(staged.good))
    skipped = len(found.candidates) - len(staged.good) + found.unusable
    if not staged.good:
        raise MaskdepthError(f"import of {src}: no usable samples")
    if staged.mask_rule is not None and staged.mask_rule.top == 0:
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
        raise MaskdepthError(f"import of {src}: every mask is empty (all values 0), no foreground anywhere; masks "
                             "must mark the foreground with non-zero values (255, or 1)")
    good = staged.good
    names = [found.candidates[k].name for k in good]
    groups = [bg_id_from_name(PurePosixPath(n).name) for n in names]
    splits, split_method = assign_splits(names, groups)
    order = {s: [k for k, sp in zip(good, splits) if sp == s] for s in SPLITS}
    counts = {s: len(order[s]) for s in SPLITS}
    arrays = staged.arrays

    def samples(split: str, start_at: int):
        for k in order[split][start_at:]:
            yield PackedSample(arrays["image"][k], arrays["mask"][k], arrays["depth"][k],
                               int(arrays["bg"][k]), found.candidates[k].name.endswith(FLIP_SUFFIX))

    def rows():
        out_rows = []
        for s in SPLITS:
            for i, k in enumerate(order[s]):
                c = found.candidates[k]
                out_rows.append({"split": s, "index": i, "name": c.name, "fg_bg": c.files["fg_bg"],
                                 "mask": c.files["mask"], "depth": c.files["depth"], "bg": c.bg or ""})
        return out_rows

    if problems:
        write_text(Path(out) / "problems.txt", "".join(f"{p}\n" for p in problems))
    meta = {
        "source": {"kind": "imported", "from": identity["src"], "files": len(tree.files),
                   "skipped_samples": skipped, "problem_files": len(problems),
                   "clamped_depth_fraction": staged.clamped / max(1, len(good) * size * size),
                   "all_zero_depth_maps": staged.zero_depth},
        "depth": staged.rule.describe() if staged.rule else {},
        "masks": staged.mask_rule.describe() if staged.mask_rule else {},
        "splits": split_method,
        "backgrounds": staged.bg_names,
    }
    result = write_packed(out, size=size, counts=counts, identity=identity, backgrounds=staged.backgrounds,
                          samples=samples, rows=rows, meta=meta, desc="import")
    seconds = time.perf_counter() - start
    return {**result, "out": str(out), "counts": counts, "samples": len(good), "skipped": skipped,
            "unpaired_or_duplicate": len(found.problems), "problems": [str(p) for p in problems],
            "depth_units": meta["depth"].get("units"), "masks": meta["masks"], "zero_depth": staged.zero_depth,
            "seconds": seconds,
            "samples_per_s": len(good) / seconds if seconds > 0 else None}
