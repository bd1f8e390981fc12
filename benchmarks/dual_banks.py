"""ExDD against the negative-only baseline on one split, and what the positive bank costs at scoring time.

    python benchmarks/dual_banks.py [--data ../shared/data/mtd --layout mtd] [--generator ddpm] [--n 100]
                                    [--sweep 0,10,25,50,100,200] [--seeds 1] [--seed 0] [--quick]

Fits ExDD once (negative bank 1%, positive bank 10% of the masked patches of ``--n`` synthetic defects,
made from the training normals and cached) and prints, from that one run: image AUROC, pixel AUROC,
AUPRO and F1 of the negative-only score (PatchCore on the same bank), positive-only, ratio,
neighbourhood-aware ratio, and ExDD's published image score. Then the scoring time of 200 test images
with both banks against the negative bank alone (warm feature cache, and including a cold feature
extraction), and with ``--sweep`` the synthetic-count ablation for perlin and ddpm.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path


from exdd_lab.experiments.count_sweep import synthetic_count_sweep
from exdd_lab.data import load_dataset
from exdd_lab.evaluation.run import compare_variants, evaluate_prediction
from exdd_lab.features import PatchFeatureExtractor, extract_features
from exdd_lab.methods import PatchCore, PatchCoreSettings
from exdd_lab.methods.exdd.detector import ExDD, ExddSettings, variant_grid
from exdd_lab.seeding import seed_everything
from exdd_lab.synthesis import cached_defect_set

SHARED_MTD = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtd"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED_MTD) if SHARED_MTD.is_dir() else "procedural")
    ap.add_argument("--layout", default="mtd" if SHARED_MTD.is_dir() else "procedural")
    ap.add_argument("--generator", default="ddpm")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--sweep", default="", help="comma-separated counts for the ablation (empty: skip it)")
    ap.add_argument("--sweep-generators", default="perlin,ddpm")
    ap.add_argument("--seeds", type=int, default=1, help="seeds for the sweep")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="100 training, ~100 test images, 20 synthetic defects")
    args = ap.parse_args()
    seed_everything(args.seed)
    ds = load_dataset(args.data, args.layout, seed=args.seed)
    if args.quick:
        ds = ds.subset(n_train=100, n_test=100, seed=args.seed)
        args.n = min(args.n, 20)
    extractor = PatchFeatureExtractor()
    print(f"data: {ds!r}\nbackbone: {extractor.weights_source.description}")
    start = time.perf_counter()
    synthetic = cached_defect_set(ds.train, args.generator, args.n, seed=args.seed, progress=True).test
    print(f"{len(synthetic)} {args.generator} defects ready in {time.perf_counter() - start:.1f} s (cached after the first run)")
    detector = ExDD(settings=ExddSettings(seed=args.seed), defects=synthetic, extractor=extractor)
    start = time.perf_counter()
    detector.fit(ds.train, progress=True)
    print(f"fit {time.perf_counter() - start:.1f} s: negative bank {len(detector.negative)}, positive bank {len(detector.positive)}")
    pred = detector.predict(ds.test, progress=True)
    variants = {name: variant_grid(pred.extra, name, detector.settings.eps) for name in ("negative", "positive", "ratio", "ratio_na")}
    table = compare_variants(ds, pred, variants, 256)
    published = ExDD(settings=replace(detector.settings, image_score="exdd"), defects=synthetic, extractor=extractor)
    published.negative, published.positive = detector.negative, detector.positive
    metrics, _ = evaluate_prediction(ds, published.predict(ds.test), 256)
    table.loc["ratio_na + ExDD image score"] = {k: metrics.get(k) for k in table.columns}
    print(f"\n{ds.name}, {len(ds.train)} training normals, {len(ds.test)} test images, {len(synthetic)} {args.generator} defects:")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))

    test200 = ds.test[:200]
    patchcore = PatchCore(settings=PatchCoreSettings(seed=args.seed), extractor=extractor)
    patchcore.bank = detector.negative
    for label, fn in (("negative bank only (PatchCore)", lambda: patchcore.predict(test200, keep_maps=False)),
                      ("both banks (ExDD)", lambda: detector.predict(test200, keep_maps=False))):
        fn()  # warm the feature cache and the faiss indexes
        start = time.perf_counter()
        fn()
        warm = time.perf_counter() - start
        print(f"scoring {len(test200)} test images, {label}: {warm:.2f} s with cached features")
    cold = PatchFeatureExtractor()
    start = time.perf_counter()
    extract_features(cold, [s.image_path for s in test200], cache=False)
    print(f"feature extraction of the same {len(test200)} images without cache: {time.perf_counter() - start:.2f} s")

    if args.sweep:
        counts = [int(c) for c in args.sweep.split(",")]
        sweep = synthetic_count_sweep(ds, args.sweep_generators.split(","), counts, list(range(args.seed, args.seed + args.seeds)),
                                      extractor)
        print("\nsynthetic-count sweep (ratio_na, max of map):")
        print(sweep.groupby(["generator", "count"])[["image_auroc", "pixel_auroc", "aupro"]].agg(["mean", "std"])
              .to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
