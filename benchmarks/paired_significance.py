"""Are the differences quoted in the benchmark notes real? Paired tests on the same test images.

    python benchmarks/paired_significance.py [--datasets procedural,mtd-seed0,mtd-differnet,mpdd]
                                             [--comparisons coreset,image-score,exdd] [--generator ddpm]
                                             [--resamples 1000] [--seed 0] [--out benchmarks/results/paired_significance.jsonl]

For each data set, the comparisons the notes reason about "within the spread", each as one set of methods
scored on one split and tested pairwise (``exdd_lab.evaluation.paired_table``: DeLong for image AUROC, a
paired bootstrap over whole images for pixel AUROC and AUPRO, Holm over the pairs of a comparison):

- ``coreset``: the default two-stage coreset against the exact greedy (128-d projection, the reference code's);
- ``image-score``: PatchCore's image scores ``max_patch`` (default), ``max`` (smoothed map) and ``reweighted``;
- ``exdd``: PatchCore against ExDD's gated score (100 synthetic defects of ``--generator``) and against
  ExDD's published ratio, all three from one ExDD run (same negative bank, the kit's purified positive bank).

One row per (data set, comparison, pair, metric), appended to ``--out``; a table at the end.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from patchcore_fidelity import seeded_dataset

from exdd_lab.evaluation import paired_table, variant_predictions
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
from exdd_lab.uncertainty import BootstrapSettings

COMPARISONS = ("coreset", "image-score", "exdd")


def coreset_predictions(ds, seed: int) -> dict:
    default = PatchCoreSettings(seed=seed)
    return {name: PatchCore(FeatureConfig(), settings).fit(ds.train).predict(ds.test)
            for name, settings in (("two-stage (default)", default),
                                   ("exact greedy", replace(default, coreset_method="exact", coreset_projection=128)))}


def image_score_predictions(ds, seed: int) -> dict:
    return {score: PatchCore(FeatureConfig(), PatchCoreSettings(seed=seed, image_score=score)).fit(ds.train).predict(ds.test)
            for score in ("max_patch", "max", "reweighted")}


def exdd_predictions(ds, seed: int, generator: str) -> dict:
    from exdd_lab.methods.exdd import ExDD, ExddSettings, variant_grid
    from exdd_lab.synthesis import cached_defect_set

    defects = cached_defect_set(ds.train, generator, 100, seed=seed, image_size=256).test
    detector = ExDD(FeatureConfig(), ExddSettings(seed=seed), defects=list(defects)).fit(ds.train)
    prediction = detector.predict(ds.test)
    grids = {name: variant_grid(prediction.extra, variant, detector.settings.eps, detector.normal_stats,
                                detector.settings.strength)
             for name, variant in (("patchcore (negative bank)", "negative"), ("exdd gated", "gated"),
                                   ("exdd published ratio", "ratio_na"))}
    return variant_predictions(grids, 256, detector.settings.sigma)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="procedural,mtd-seed0,mtd-differnet,mpdd")
    ap.add_argument("--comparisons", default=",".join(COMPARISONS))
    ap.add_argument("--generator", default="ddpm")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (fits follow the data set's seed)")
    ap.add_argument("--out", default="benchmarks/results/paired_significance.jsonl")
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets.split(","):
        seed, ds = seeded_dataset(name)
        if ds is None:
            continue
        for comparison in args.comparisons.split(","):
            start = time.perf_counter()
            if comparison == "coreset":
                predictions = coreset_predictions(ds, seed)
            elif comparison == "image-score":
                predictions = image_score_predictions(ds, seed)
            elif comparison == "exdd":
                predictions = exdd_predictions(ds, seed, args.generator)
            else:
                raise SystemExit(f"unknown comparison {comparison!r}: {', '.join(COMPARISONS)}")
            table = paired_table(ds, predictions, BootstrapSettings(resamples=args.resamples, seed=args.seed))
            table = table[table.metric.isin(["image_auroc", "pixel_auroc", "aupro"])]
            for record in table.to_dict(orient="records"):
                row = {"dataset": name, "comparison": comparison, "n_test": len(ds.test), **record,
                       "seconds": round(time.perf_counter() - start, 1)}
                rows.append(row)
                with out.open("a") as handle:
                    handle.write(json.dumps(row, default=float) + "\n")
            print(f"{name} {comparison}: done in {time.perf_counter() - start:.0f} s", flush=True)
    print("\n| data set | comparison | first − second | metric | difference [95 % CI] | p (adjusted) | test | significant |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['comparison']} | {r['method_a']} − {r['method_b']} | {r['metric']} | "
              f"{r['difference']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | {r['p_adjusted']:.3g} | {r['test']} | "
              f"{'yes' if r['significant'] else 'no'} |")


if __name__ == "__main__":
    main()
