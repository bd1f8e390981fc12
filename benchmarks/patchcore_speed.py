"""PatchCore's fit + predict time against the backbone's forward floor, measured in the same process.

    python benchmarks/patchcore_speed.py [--data ../shared/data/mtd --layout mtd] [--split differnet] [--seed 0]
                                         [--coreset-method two-stage|exact]

The floor is the backbone forward alone (pixels already in memory, batch 8) for as many images as the
split holds (train + test): no implementation can fit and predict faster. It is measured before and
after the run and the faster of the two is used. Then ``exdd-lab evaluate``'s
path (``run_evaluation``) with a cold feature cache: fit (decode, resize, forward, coreset) and predict
(forward, search, maps). Prints both and their ratio (targets: default <= 1.5x, at most 2x), plus the
image AUROC so that speed is never read without the quality it buys.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from exdd_lab.data import load_dataset
from exdd_lab.evaluation.run import run_evaluation
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
from exdd_lab.seeding import seed_everything

SHARED_MTD = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtd"


def forward_floor(extractor: PatchFeatureExtractor, n_images: int, batch: int, seed: int) -> float:
    """Seconds the backbone forward alone takes for ``n_images`` (random pixels in memory)."""
    size = extractor.config.image_size
    pixels = np.random.default_rng(seed).integers(0, 255, (batch, size, size, 3), dtype=np.uint8)
    extractor(pixels)  # warm-up
    start = time.perf_counter()
    for _ in range(int(np.ceil(n_images / batch))):
        extractor(pixels)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED_MTD) if SHARED_MTD.is_dir() else "procedural")
    ap.add_argument("--layout", default="mtd" if SHARED_MTD.is_dir() else None)
    ap.add_argument("--split", default=None, help="a named split (mtd: seeded or differnet)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--coreset-method", default="two-stage", choices=("two-stage", "exact"))
    args = ap.parse_args()
    seed_everything(args.seed)
    os.environ["EXDD_LAB_CACHE"] = tempfile.mkdtemp(prefix="exdd-speed-")  # cold cache: what a first run pays
    data = None if args.data == "procedural" else args.data
    ds = load_dataset(data, args.layout, seed=args.seed, split=args.split)
    settings = PatchCoreSettings(seed=args.seed, coreset_method=args.coreset_method)
    method = PatchCore(FeatureConfig(), settings)
    n_images = len(ds.train) + len(ds.test)
    before = forward_floor(method.extractor, n_images, settings.batch_size, args.seed)
    m = run_evaluation(method, ds, seed=args.seed)
    after = forward_floor(method.extractor, n_images, settings.batch_size, args.seed)
    floor = min(before, after)  # the machine's speed drifts (shared cores): the faster floor is the stricter one
    total = m["fit_s"] + m["predict_s"]
    print(f"data: {ds.name} ({ds.split_info.get('protocol')}), {len(ds.train)} train + {len(ds.test)} test images")
    print(f"backbone forward floor: {floor:.1f} s ({n_images / floor:.1f} images/s; measured before {before:.1f} s "
          f"and after {after:.1f} s)")
    print(f"fit {m['fit_s']:.1f} s + predict {m['predict_s']:.1f} s = {total:.1f} s = {total / floor:.2f}x the floor "
          f"(coreset {args.coreset_method}, {m['bank_patches']} patches)")
    print(f"image AUROC {m['image_auroc']:.4f}  pixel AUROC {m['pixel_auroc']:.4f}  AUPRO {m['aupro']:.4f}")


if __name__ == "__main__":
    main()
