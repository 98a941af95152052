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


def relief_by_focal(models: dict, band: tuple[float, float], n: int, cache: str) -> dict[str, dict]:
    """{run: median relief, mean sa δ1, images} over the unseen split rendered with focals in `band`:
    each sample composed once and read by every model, scored as the real-photo check scores."""
    from maskdepth.datasets.dataset import build_dataset
    from maskdepth.validation.realcheck import depth_scores
    from maskdepth.world import camera

    camera.FOCAL_MIN, camera.FOCAL_MAX = band
    ds = build_dataset("1k", "unseen", size=128, seed=0, cache_dir=cache)
    scores = {run: [] for run in models}
    for i in range(min(n, len(ds))):
        sample = ds.composer.compose(i)
        image = (sample["image"].transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        for run, model in models.items():
            (result,) = model.predict(image, show_progress=False)
            scores[run].append(depth_scores(result["depth"], sample["depth"][0]))
    return {run: {"relief": float(np.nanmedian([s["relief"] for s in rows])),
                  "sa_delta1": float(np.mean([s["sa_delta1"] for s in rows])), "n": len(rows)}
            for run, rows in scores.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (or checkpoints) to read")
    parser.add_argument("--bands", default="0.6-0.8,0.42-1.59,1.3-1.5,1.9-2.1", help="focal bands, image widths")
    parser.add_argument("--n", type=int, default=100, help="images per band (at most the split's 200)")
    args = parser.parse_args(argv)
    bands = [tuple(float(x) for x in b.split("-")) for b in args.bands.split(",")]

    import maskdepth
    from maskdepth.world import manifest

    manifest.verify_manifest = lambda *a, **k: True  # the bands change the cameras the spec records
    models = {run: maskdepth.load(run) for run in args.runs}
    print("| run | focal band (image widths) | images | relief (median) | sa δ1 (mean) |")
    print("|---|---|---|---|---|")
    for band in bands:
        with tempfile.TemporaryDirectory() as cache:
            for run, r in relief_by_focal(models, band, args.n, cache).items():
                print(f"| {run} | {band[0]:g}–{band[1]:g} | {r['n']} | {r['relief']:.2f} | {r['sa_delta1']:.3f} |",
                      flush=True)


if __name__ == "__main__":
    main()
