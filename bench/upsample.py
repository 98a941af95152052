"""Edge-aware (guided) vs bilinear upsampling of a low-resolution model's outputs, at object edges.

Renders samples of the synthetic world at --size (256 px: exact mask and depth labels at that
size), runs a checkpoint trained at its own working size (64 px) on each image brought to that
size exactly as `maskdepth predict` does, brings the outputs back to --size with each method
through `Predictor.at_size` (the code predict runs), and scores them near the objects' edges:

* boundary IoU: IoU of the masks restricted to the pixels within --band px (Chebyshev) of the
  ground-truth object edge, pooled over the split (and the mean over images with an edge);
* boundary depth abs-rel: mean |pred - gt| / gt over the same pixels;
* whole-image IoU and abs-rel, to show nothing got worse elsewhere;
* milliseconds per image for the upsampling (both outputs).

`--sweep` adds guided radii and eps for mask / depth (working pixels / squared guide units)
through `maskdepth.prediction.upsample.guided_upsample`; choose parameters on one split (seen) and read
the others.

    .venv/bin/python -m bench.upsample --checkpoint /tmp/px_deep/checkpoints/best.pt [--sweep]

Writes bench/results/<YYYY-MM-DD>-upsample.json (atomically) and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = "/tmp/px_deep/checkpoints/best.pt"
SWEEP = [(2, 1e-4, 1e-3), (4, 1e-4, 1e-4), (4, 1e-3, 1e-3), (4, 1e-4, 1e-2), (6, 1e-4, 1e-3), (8, 1e-4, 1e-3)]


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.upsample", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="a joint checkpoint (mask and depth)")
    parser.add_argument("--data", default="1k", help="stage whose splits are rendered (default 1k)")
    parser.add_argument("--splits", default="seen,unseen,ood", help="comma-separated (default seen,unseen,ood)")
    parser.add_argument("--size", type=int, default=256, help="render size, px (default 256)")
    parser.add_argument("--n", type=int, default=200, help="samples per split at most (default 200)")
    parser.add_argument("--band", type=int, default=2, help="px from the object edge that count (default 2)")
    parser.add_argument("--sweep", action="store_true", help="also guided radius/eps variants")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results folder")
    return parser.parse_args(argv)


def edge_band(mask: np.ndarray, band: int) -> np.ndarray:
    """bool [H,W]: pixels within `band` px (Chebyshev) of a pixel whose 8-neighbourhood holds both labels."""
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    edge = (F.max_pool2d(m, 3, 1, 1) != -F.max_pool2d(-m, 3, 1, 1)).float()
    return (F.max_pool2d(edge, 2 * band + 1, 1, band) > 0)[0, 0].numpy()


class Scores:
    """Sums over a split, so that pooled values are over pixels, not means of means."""

    def __init__(self):
        self.b_inter = self.b_union = self.inter = self.union = 0
        self.b_are = self.b_n = self.are = self.n = 0.0
        self.per_image_biou: list[float] = []
        self.seconds = 0.0
        self.images = 0

    def add(self, mask, depth, gt_mask, gt_depth, band) -> None:
        gt = gt_mask > 0.5
        are = np.abs(depth - gt_depth) / gt_depth
        self.inter += int((mask & gt).sum())
        self.union += int((mask | gt).sum())
        self.are += float(are.sum())
        self.n += are.size
        self.images += 1
        if band.any():
            inter, union = int((mask & gt & band).sum()), int(((mask | gt) & band).sum())
            self.b_inter += inter
            self.b_union += union
            self.per_image_biou.append(inter / union if union else 1.0)
            self.b_are += float(are[band].sum())
            self.b_n += int(band.sum())

    def result(self) -> dict:
        return {
            "boundary_iou": self.b_inter / max(self.b_union, 1),
            "boundary_iou_mean": float(np.mean(self.per_image_biou)) if self.per_image_biou else None,
            "boundary_abs_rel": self.b_are / max(self.b_n, 1),
            "iou": self.inter / max(self.union, 1),
            "abs_rel": self.are / max(self.n, 1),
            "ms_per_image": 1000.0 * self.seconds / max(self.images, 1),
            "images": self.images,
            "images_with_edge": len(self.per_image_biou),
        }


def measure_split(predictor, data: str, split: str, size: int, n: int, band_px: int, sweep: bool) -> dict:
    import torch

    from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
    from maskdepth.datasets.dataset import build_dataset
    from maskdepth.prediction.upsample import guided_upsample

    dataset = build_dataset(data, split, size=size)
    count = min(n, len(dataset))
    methods = {"bilinear": None, "guided": None}
    if sweep:
        methods.update({f"guided r={r} eps={em:g}/{ed:g}": (r, (em, ed)) for r, em, ed in SWEEP})
    scores = {name: Scores() for name in methods}
    for start in range(0, count, 32):
        samples = [dataset[i] for i in range(start, min(start + 32, count))]
        pixels = [s["image"].permute(1, 2, 0).numpy() for s in samples]
        outputs = predictor.run([predictor.prepare(p) for p in pixels])
        for i, (sample, image) in enumerate(zip(samples, pixels, strict=True)):
            gt_mask, gt_depth = sample["mask"][0].numpy(), sample["depth"][0].numpy()
            band = edge_band(gt_mask > 0.5, band_px)
            for name, params in methods.items():
                t0 = time.perf_counter()
                if params is None:
                    predictor.upsample = name
                    result = predictor.at_size(outputs, i, image.shape[:2], guide=image)
                    mask, depth = result["mask"], result["depth"]
                else:  # the same filter as predict's, other parameters
                    src = torch.cat([outputs["mask"][i : i + 1], torch.log(outputs["depth"][i : i + 1])], dim=1)
                    guide = torch.from_numpy(image).permute(2, 0, 1)[None]
                    out = guided_upsample(src, guide, radius=params[0], eps=params[1])
                    mask = (torch.sigmoid(out[0, 0]) > predictor.threshold).numpy()
                    depth = torch.exp(out[0, 1]).clamp(DEPTH_MIN, DEPTH_MAX).numpy()
                scores[name].seconds += time.perf_counter() - t0
                scores[name].add(mask, depth, gt_mask, gt_depth, band)
    predictor.upsample = "guided"
    return {name: s.result() for name, s in scores.items()}


def table(results: dict) -> str:
    lines = ["| split | method | boundary IoU (pooled / mean) | boundary abs-rel | IoU | abs-rel | ms/img |",
             "|---|---|---|---|---|---|---|"]
    for split, methods in results.items():
        for name, r in methods.items():
            mean = "-" if r["boundary_iou_mean"] is None else f"{r['boundary_iou_mean']:.3f}"
            lines.append(f"| {split} | {name} | {r['boundary_iou']:.3f} / {mean} | {r['boundary_abs_rel']:.3f} | "
                         f"{r['iou']:.3f} | {r['abs_rel']:.3f} | {r['ms_per_image']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if str(ROOT / "lib") not in sys.path:
        sys.path.insert(0, str(ROOT / "lib"))
    import torch

    from maskdepth.core.fileio import write_json
    from maskdepth.prediction.predictor import Predictor
    from maskdepth.prediction.upsample import GUIDED_EPS_DEPTH, GUIDED_EPS_MASK, GUIDED_RADIUS

    torch.set_num_threads(args.threads)
    predictor = Predictor(args.checkpoint, device="cpu")
    if set(predictor.tasks) != {"mask", "depth"}:
        raise SystemExit(f"{args.checkpoint}: a joint (mask and depth) checkpoint is needed")
    t0 = time.perf_counter()
    results = {split: measure_split(predictor, args.data, split, args.size, args.n, args.band, args.sweep)
               for split in args.splits.split(",")}
    record = {
        "what": "guided vs bilinear upsampling of a low-resolution model's outputs, scored near object edges",
        "date": datetime.date.today().isoformat(),
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "checkpoint_input_size": list(predictor.input_size),
        "data": args.data,
        "render_size": args.size,
        "samples_per_split": args.n,
        "band_px": args.band,
        "guided_default": {"radius": GUIDED_RADIUS, "eps_mask": GUIDED_EPS_MASK, "eps_depth": GUIDED_EPS_DEPTH,
                           "guide": "rgb"},
        "threads": args.threads,
        "seconds": round(time.perf_counter() - t0, 1),
        "results": results,
    }
    path = Path(args.out) / f"{record['date']}-upsample.json"
    write_json(path, record)
    print(table(results))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
