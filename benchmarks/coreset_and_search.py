"""Coreset selection and bank search speed, and what the fast selection costs in quality.

    python benchmarks/coreset_and_search.py [--data ../shared/data/mtd --layout mtd] [--n-train 400]
                                            [--n-test 200] [--seed 0] [--quick]

Uses real patch features (default backbone, 256 px) of ``--n-train`` training normals: 400 MTD images
give 409,600 x 152 features, the size the targets are stated for. Prints: selection seconds for a
1% and a 10% coreset (two-stage greedy), the textbook greedy on a 100-image subset for comparison
(seconds and coverage radius), and the time to query ``--n-test`` test images against the 1% bank.

    python benchmarks/coreset_and_search.py --compare exact,default,two-stage:16:2:128 --seeds 0,1,2 [--split differnet]

compares 1% selections over the whole split (all training and test images): selection seconds and
image AUROC by seed -- the table "the exact greedy's quality at the backbone's speed" in README.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from exdd_lab.bank.coreset import StreamingCoreset, coreset_size, coverage_radius, greedy_coreset
from exdd_lab.data import load_dataset
from exdd_lab.features import PatchFeatureExtractor, extract_features
from exdd_lab.bank.memory import MemoryBank
from exdd_lab.evaluation.metrics import auroc
from exdd_lab.bank.scoring import anomaly_maps, max_score
from exdd_lab.seeding import seed_everything

SHARED_MTD = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtd"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def image_auroc_with_bank(bank_items: torch.Tensor, test: torch.Tensor, labels: np.ndarray) -> float:
    """PatchCore's image AUROC (max of the smoothed map) for a given bank: the quality a selection buys."""
    n, h, w, c = test.shape
    dist, _ = MemoryBank(c).add(bank_items).search(test.reshape(-1, c))
    return auroc(labels, max_score(anomaly_maps(dist[:, 0].reshape(n, h, w), 256)))


def select(flat: torch.Tensor, k: int, name: str, seed: int) -> np.ndarray:
    """Indices of a 1% selection by name: ``exact`` (textbook greedy on a 128-d projection, as the reference
    code), ``default`` (the kit's two-stage defaults), or ``two-stage:PIECE_IMAGES:OVERSAMPLE:PROJ``
    (e.g. ``two-stage:16:2:128``, the defaults before issue 14; PROJ ``none`` = full features)."""
    if name == "exact":
        return greedy_coreset(flat, k, 128, seed, method="exact")
    if name == "default":
        stream = StreamingCoreset(len(flat), k, flat.shape[1], seed=seed)
    else:
        _, images, oversample, proj = name.split(":")
        stream = StreamingCoreset(len(flat), k, flat.shape[1], None if proj == "none" else int(proj), seed,
                                  oversample=float(oversample), chunk_patches=int(images) * 1024)
    for start in range(0, len(flat), 16 * 1024):  # 16-image groups arrive, as in PatchCore.fit
        stream.add(flat[start : start + 16 * 1024])
    return stream.finish_indices()


def compare_selections(flat: torch.Tensor, test: torch.Tensor, labels: np.ndarray, names: list[str],
                       seeds: list[int]) -> None:
    """Seconds and image AUROC (max of the smoothed map; largest patch score) of each selection and seed."""
    k = coreset_size(len(flat), 0.01)
    n, h, w, c = test.shape
    print(f"\n{'selection':24s} {'seed':>4s} {'seconds':>8s} {'AUROC map':>10s} {'AUROC patch':>12s}")
    for name in names:
        for seed in seeds:
            chosen, secs = timed(lambda: select(flat, k, name, seed))
            dist, _ = MemoryBank(c).add(flat[torch.from_numpy(np.sort(chosen))]).search(test.reshape(-1, c))
            grid = dist[:, 0].reshape(n, h, w)
            by_map, by_patch = auroc(labels, max_score(anomaly_maps(grid, 256))), auroc(labels, grid.reshape(n, -1).max(1))
            print(f"{name:24s} {seed:4d} {secs:8.1f} {by_map:10.4f} {by_patch:12.4f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED_MTD) if SHARED_MTD.is_dir() else "procedural")
    ap.add_argument("--layout", default="mtd" if SHARED_MTD.is_dir() else "procedural")
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="100 training images, skip the 10%% coreset")
    ap.add_argument("--split", default=None, help="a named split (mtd: differnet)")
    ap.add_argument("--compare", default="", metavar="NAMES",
                    help="instead: seconds and image AUROC of 1%% selections over the whole split, e.g. "
                         "exact,default,two-stage:16:2:128 (see select())")
    ap.add_argument("--seeds", default="0", help="coreset seeds for --compare, e.g. 0,1,2")
    args = ap.parse_args()
    seed_everything(args.seed)
    if args.quick:
        args.n_train = min(args.n_train, 100)
    ds = load_dataset(args.data, args.layout, seed=args.seed, split=args.split)
    if not args.compare:
        ds = ds.subset(n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    fx = PatchFeatureExtractor()
    print(f"data: {ds!r}\nbackbone: {fx.weights_source.description}\nthreads: {torch.get_num_threads()}")
    train, t_train = timed(lambda: extract_features(fx, [s.image_path for s in ds.train], progress=False))
    test, t_test = timed(lambda: extract_features(fx, [s.image_path for s in ds.test], progress=False))
    flat = train.reshape(-1, train.shape[-1])
    print(f"features: train {tuple(flat.shape)} ({t_train:.1f} s incl. cache), test {tuple(test.shape)} ({t_test:.1f} s)")
    if args.compare:
        compare_selections(flat, test, np.array([s.label for s in ds.test]), args.compare.split(","),
                           [int(x) for x in args.seeds.split(",")])
        return
    rows = []
    for ratio in (0.01,) if args.quick else (0.01, 0.10):
        k = coreset_size(len(flat), ratio)
        chosen, secs = timed(lambda: greedy_coreset(flat, k, seed=args.seed))
        rows.append((f"two-stage greedy {ratio:.0%} of {len(flat):,}", secs, coverage_radius(flat, chosen)))
    sub = flat[: 100 * train.shape[1] * train.shape[2]]
    k = coreset_size(len(sub), 0.01)
    labels = np.array([s.label for s in ds.test])
    aurocs = {}
    for method in ("exact", "two-stage"):
        chosen, secs = timed(lambda: greedy_coreset(sub, k, 128 if method == "exact" else None, args.seed, method=method))
        name = f"{method} greedy 1% of {len(sub):,}"
        rows.append((name, secs, coverage_radius(sub, chosen)))
        aurocs[name] = image_auroc_with_bank(sub[torch.from_numpy(chosen)], test, labels)
    print(f"\n{'selection':45s} {'seconds':>8s} {'coverage radius':>16s}")
    for name, secs, radius in rows:
        print(f"{name:45s} {secs:8.1f} {radius:16.2f}")
    print("\nimage AUROC on the test subset with a bank from 100 training images:")
    for name, value in aurocs.items():
        print(f"  {name:43s} {value:.4f}")
    bank = MemoryBank(flat.shape[1]).add(flat[torch.from_numpy(greedy_coreset(flat, coreset_size(len(flat), 0.01), seed=args.seed))])
    _, secs = timed(lambda: bank.search(test.reshape(-1, test.shape[-1]), k=1))
    print(f"\nquery {len(test)} test images ({test.shape[1] * test.shape[2] * len(test):,} patches) "
          f"against the 1% bank ({len(bank):,} patches, {bank.size_mb:.1f} MB): {secs:.2f} s")


if __name__ == "__main__":
    main()
