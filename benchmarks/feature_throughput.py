"""Feature throughput of the default backbone: images per second at a given size, on this machine.

    python benchmarks/feature_throughput.py [--image-size 256] [--n 96] [--batch-size 8] [--seed 0]

Prints three numbers: the backbone forward alone (random pixels already in memory), the full
extraction from image files without cache (decode + resize + forward), and a second, cached pass.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from exdd_lab.data import procedural_dataset
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor, extract_features
from exdd_lab.seeding import seed_everything


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    seed_everything(args.seed)
    os.environ["EXDD_LAB_CACHE"] = tempfile.mkdtemp(prefix="exdd-bench-")  # a cold cache every time
    fx = PatchFeatureExtractor(FeatureConfig(image_size=args.image_size))
    print(f"backbone: {fx.weights_source.description}")
    print(f"threads: {torch.get_num_threads()}  image size: {args.image_size}  batch: {args.batch_size}  n: {args.n}")
    rng = np.random.default_rng(args.seed)
    batch = rng.integers(0, 255, (args.batch_size, args.image_size, args.image_size, 3), dtype=np.uint8)
    fx(batch)  # warm-up
    start = time.perf_counter()
    for _ in range(max(1, args.n // args.batch_size)):
        fx(batch)
    forward = max(1, args.n // args.batch_size) * args.batch_size / (time.perf_counter() - start)
    ds = procedural_dataset(n_train=args.n, n_test_good=1, n_test_defect=1, image_size=args.image_size, seed=args.seed)
    paths = [s.image_path for s in ds.train]
    start = time.perf_counter()
    extract_features(fx, paths, batch_size=args.batch_size, cache=True)
    cold = len(paths) / (time.perf_counter() - start)
    start = time.perf_counter()
    extract_features(fx, paths, batch_size=args.batch_size, cache=True)
    warm = len(paths) / (time.perf_counter() - start)
    print(f"forward only:             {forward:8.1f} images/s")
    print(f"extract from files, cold: {cold:8.1f} images/s (decode + resize + forward + cache write)")
    print(f"extract from files, warm: {warm:8.1f} images/s (cache hits)")


if __name__ == "__main__":
    main()
