"""Does the field of view change how far a model spreads depth? A quality diagnostic.

Renders the 1k stage's `unseen` split again with every camera's focal length drawn from one band
(in image widths; the world draws 0.42-1.59, `maskdepth.world.camera`), each band in its own
temporary view cache, predicts each image with a run's model as `maskdepth predict` does, and
reports per band the median relief (`maskdepth.evaluation.metrics.depth_relief`: 1 is the true
spread of depths, above 1 stretched) and the mean scale-aligned δ1. The motorcycle photo of the
real-photo check has a focal of 1.34 image widths, 2.0 image heights.

    python -m bench.focal_relief RUN [RUN ...] [--bands 0.6-0.8,1.3-1.5,1.9-2.1] [--n 100]

The bands other than the world's own are outside what the manifests in data_manifests/ describe,
so the manifest check is switched off in this process only. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch


def relief_by_focal(run: str, band: tuple[float, float], n: int, cache: str) -> dict:
    import maskdepth
    from maskdepth.datasets.dataset import build_dataset
    from maskdepth.evaluation.metrics import compute_depth_errors, depth_relief, scale_aligned
    from maskdepth.world import camera

    camera.FOCAL_MIN, camera.FOCAL_MAX = band
    ds = build_dataset("1k", "unseen", size=128, seed=0, cache_dir=cache)
    model = maskdepth.load(run)
    relief, sa = [], []
    for i in range(min(n, len(ds))):
        sample = ds.composer.compose(i)
        image = (sample["image"].transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        (result,) = model.predict(image, show_progress=False)
        pred, gt = torch.from_numpy(result["depth"])[None, None], torch.from_numpy(sample["depth"])[None]
        valid = gt > 0
        relief.append(depth_relief(pred, gt, valid))
        sa.append(compute_depth_errors(scale_aligned(pred, gt, valid).float(), gt, valid)["delta1"])
    return {"relief": float(np.nanmedian(relief)), "sa_delta1": float(np.mean(sa)), "n": len(sa)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (or checkpoints) to read")
    parser.add_argument("--bands", default="0.6-0.8,0.42-1.59,1.3-1.5,1.9-2.1", help="focal bands, image widths")
    parser.add_argument("--n", type=int, default=100, help="images per band (at most the split's 200)")
    args = parser.parse_args(argv)
    bands = [tuple(float(x) for x in b.split("-")) for b in args.bands.split(",")]

    from maskdepth.world import manifest

    manifest.verify_manifest = lambda *a, **k: True  # the bands change the cameras the spec records
    print("| run | focal band (image widths) | images | relief (median) | sa δ1 (mean) |")
    print("|---|---|---|---|---|")
    for band in bands:
        with tempfile.TemporaryDirectory() as cache:
            for run in args.runs:
                r = relief_by_focal(run, band, args.n, cache)
                print(f"| {run} | {band[0]:g}–{band[1]:g} | {r['n']} | {r['relief']:.2f} | {r['sa_delta1']:.3f} |",
                      flush=True)


if __name__ == "__main__":
    main()
