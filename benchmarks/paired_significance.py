"""Are the differences quoted in the benchmark notes real? Paired tests on the same test images.

    python benchmarks/paired_significance.py [--datasets procedural,mtd-seed0,mtd-differnet,mpdd]
                                             [--comparisons coreset,image-score,exdd] [--generator ddpm]
                                             [--resamples 1000] [--seed 0] [--out benchmarks/results/paired_significance.jsonl]

For each data set, the comparisons the notes reason about "within the spread", each as one set of methods
scored on one split and tested pairwise (``exdd_lab.evaluation.run.paired_table``: DeLong for image AUROC, a
paired bootstrap over whole images for pixel AUROC and AUPRO, Holm over the pairs of a comparison):

- ``coreset``: the default two-stage coreset against the exact greedy (128-d projection, the reference code's);
- ``image-score``: PatchCore's image scores ``max_patch`` (default), ``max`` (smoothed map) and ``reweighted``;
- ``exdd``: PatchCore against ExDD's gated score (100 synthetic defects of ``--generator``) and against
  ExDD's published ratio, all three from one ExDD run (same negative bank, the kit's purified positive bank);
- ``exdd-real``: ExDD's gated score with 0 against K = 20 real defects added to the positive bank (one negative
  bank; the 20 real defects leave the test split for both, so both are scored on the same images).

One row per (data set, comparison, pair, metric), appended to ``--out``; a table at the end.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from patchcore_fidelity import seeded_dataset

from exdd_lab.evaluation.run import paired_table, variant_predictions
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
from exdd_lab.evaluation.uncertainty import BootstrapSettings

COMPARISONS = ("coreset", "image-score", "exdd", "exdd-real")
RESULTS = Path(__file__).resolve().parent / "results" / "paired_significance.jsonl"
METRICS = ("image_auroc", "pixel_auroc", "aupro")


def cell(row: dict) -> str:
    """``difference [CI], p`` with enough decimals to show a tiny difference; bold where significant (Holm)."""
    digits = 4 if max(abs(row["difference"]), abs(row["ci_low"]), abs(row["ci_high"])) >= 5e-4 else 6
    text = f"{row['difference']:+.{digits}f} [{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}], p = {row['p_adjusted']:.2g}"
    return f"**{text}**" if row["significant"] else text


def summary(rows: list[dict]) -> None:
    """One line per (comparison, pair, data set): the three metrics' differences, intervals and adjusted p."""
    print("\n| comparison | first − second | data set | n test | image AUROC | pixel AUROC | AUPRO |")
    print("|---|---|---|---|---|---|---|")
    by = {(r["comparison"], r["method_a"], r["method_b"], r["dataset"], r["metric"]): r for r in rows}
    keys = dict.fromkeys((r["comparison"], r["method_a"], r["method_b"], r["dataset"]) for r in rows)
    for comparison, a, b, dataset in sorted(keys, key=lambda k: (COMPARISONS.index(k[0]), k[1], k[2])):
        cells = [cell(by[(comparison, a, b, dataset, m)]) if (comparison, a, b, dataset, m) in by else "" for m in METRICS]
        n = next(r["n_test"] for r in rows if r["dataset"] == dataset and r["comparison"] == comparison)
        print(f"| {comparison} | {a} − {b} | {dataset} | {n} | " + " | ".join(cells) + " |")


def coreset_predictions(ds, seed: int) -> dict:
    default = PatchCoreSettings(seed=seed)
    return {name: PatchCore(FeatureConfig(), settings).fit(ds.train).predict(ds.test)
            for name, settings in (("two-stage (default)", default),
                                   ("exact greedy", replace(default, coreset_method="exact", coreset_projection=128)))}


def image_score_predictions(ds, seed: int) -> dict:
    return {score: PatchCore(FeatureConfig(), PatchCoreSettings(seed=seed, image_score=score)).fit(ds.train).predict(ds.test)
            for score in ("max_patch", "max", "reweighted")}


def exdd_predictions(ds, seed: int, generator: str) -> dict:
    from exdd_lab.methods.exdd.detector import ExDD, ExddSettings, variant_grid
    from exdd_lab.synthesis import cached_defect_set

    defects = cached_defect_set(ds.train, generator, 100, seed=seed, image_size=256).test
    detector = ExDD(FeatureConfig(), ExddSettings(seed=seed), defects=list(defects)).fit(ds.train)
    prediction = detector.predict(ds.test)
    grids = {name: variant_grid(prediction.extra, variant, detector.settings.eps, detector.normal_stats,
                                detector.settings.strength)
             for name, variant in (("patchcore (negative bank)", "negative"), ("exdd gated", "gated"),
                                   ("exdd published ratio", "ratio_na"))}
    return variant_predictions(grids, 256, detector.settings.sigma)


def exdd_real_predictions(ds, seed: int, generator: str, k: int = 20):
    """ExDD gated with 0 and with ``k`` real defects in the positive bank, on the test split without them."""
    from exdd_lab.methods.exdd.detector import ExDD, ExddSettings, variant_grid
    from exdd_lab.synthesis import cached_defect_set

    synthetic = list(cached_defect_set(ds.train, generator, 100, seed=seed, image_size=256).test)
    evaluated, real = ds.with_training_defects(k, seed=seed)
    detector = ExDD(FeatureConfig(), ExddSettings(seed=seed))
    detector.fit_negative(ds.train)
    grids = {}
    for name, positives in (("exdd gated", synthetic), (f"exdd gated + {len(real)} real", synthetic + list(real))):
        detector.refit_positive(positives)
        prediction = detector.predict(evaluated.test, keep_maps=False)
        grids[name] = variant_grid(prediction.extra, "gated", detector.settings.eps, detector.normal_stats,
                                   detector.settings.strength)
    return evaluated, variant_predictions(grids, 256, detector.settings.sigma)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="procedural,mtd-seed0,mtd-differnet,mpdd")
    ap.add_argument("--comparisons", default=",".join(COMPARISONS))
    ap.add_argument("--generator", default="ddpm")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (fits follow the data set's seed)")
    ap.add_argument("--out", default=str(RESULTS), help="JSON lines, appended")
    ap.add_argument("--summary", action="store_true", help="print the table of rows already in --out, measure nothing")
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.summary:
        summary([json.loads(line) for line in out.read_text().splitlines()])
        return
    rows = []
    for name in args.datasets.split(","):
        seed, ds = seeded_dataset(name)
        if ds is None:
            continue
        for comparison in args.comparisons.split(","):
            start = time.perf_counter()
            evaluated = ds
            if comparison == "coreset":
                predictions = coreset_predictions(ds, seed)
            elif comparison == "image-score":
                predictions = image_score_predictions(ds, seed)
            elif comparison == "exdd":
                predictions = exdd_predictions(ds, seed, args.generator)
            elif comparison == "exdd-real":
                evaluated, predictions = exdd_real_predictions(ds, seed, args.generator)
            else:
                raise SystemExit(f"unknown comparison {comparison!r}: {', '.join(COMPARISONS)}")
            table = paired_table(evaluated, predictions, BootstrapSettings(resamples=args.resamples, seed=args.seed))
            table = table[table.metric.isin(["image_auroc", "pixel_auroc", "aupro"])]
            for record in table.to_dict(orient="records"):
                row = {"dataset": name, "comparison": comparison, "n_test": len(evaluated.test), **record,
                       **({"generator": args.generator} if comparison.startswith("exdd") else {}),
                       "seconds": round(time.perf_counter() - start, 1)}
                rows.append(row)
                with out.open("a") as handle:
                    handle.write(json.dumps(row, default=float) + "\n")
            print(f"{name} {comparison}: done in {time.perf_counter() - start:.0f} s", flush=True)
    summary(rows)

if __name__ == "__main__":
    main()
