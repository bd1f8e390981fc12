"""Teach the detector back: an oracle reviews the top 20 / 50 scored test images, the detector is refitted, every
variant is evaluated on the images not reviewed (``exdd_lab.experiments.review_feedback``).

    python benchmarks/review_feedback.py [--datasets procedural,mtd-seed0,mtd-differnet,mpdd] [--sizes 20,50]
                                         [--n 100] [--out runs/review-feedback] [--summary]

Per data set: ``rows.jsonl`` (one row per review size and variant: metrics and their 95 % intervals) and
``paired.jsonl`` (every pair of variants on the same unreviewed images: difference, interval, Holm-adjusted p).
A rerun skips data sets already measured; ``--summary`` prints the tables of ``benchmarks/README.md``. ExDD's
synthetic positive bank is the cached 100 DDPM defects of each data set (as ``exdd_robustness.py``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patchcore_fidelity import seeded_dataset  # noqa: E402

from exdd_lab.experiments.review_feedback import METRICS, VARIANTS, review_feedback  # noqa: E402
from exdd_lab.features import PatchFeatureExtractor  # noqa: E402
from exdd_lab.synthesis import cached_defect_set  # noqa: E402

DATASETS = "procedural,mtd-seed0,mtd-differnet,mpdd"


def _clean(value):
    return round(float(value), 4) if isinstance(value, float) else (bool(value) if hasattr(value, "dtype") and value.dtype == bool else value)


def measure(name: str, sizes: list[int], n: int, out: Path) -> None:
    seed, ds = seeded_dataset(name)
    if ds is None:
        return
    synthetic = cached_defect_set(ds.train, "ddpm", n, seed=seed, progress=True).test
    start = time.perf_counter()
    rows, paired = review_feedback(ds, synthetic, sizes, PatchFeatureExtractor(), seed=seed)
    with (out / "rows.jsonl").open("a") as handle:
        for row in rows.to_dict("records"):
            handle.write(json.dumps({"dataset": name, **{k: _clean(v) for k, v in row.items()}}) + "\n")
    with (out / "paired.jsonl").open("a") as handle:
        for row in paired.to_dict("records"):
            handle.write(json.dumps({"dataset": name, **{k: _clean(v) for k, v in row.items()}}, default=str) + "\n")
    print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)


def summary(out: Path) -> None:
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    paired = [json.loads(line) for line in (out / "paired.jsonl").read_text().splitlines()]
    test = {(p["dataset"], p["reviewed"], p["method_a"], p["method_b"], p["metric"]): p for p in paired}
    print("| data set | reviewed (normal / defect) | unreviewed (defects) | variant | image AUROC [95 % CI] | "
          "pixel AUROC [95 % CI] | AUPRO [95 % CI] |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = []
        for m in METRICS:
            v, lo, hi = r.get(m), r.get(f"{m}_low"), r.get(f"{m}_high")
            cell = "n/a" if v is None else f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{v:.3f}"
            if r["variant"] != "patchcore":
                p = test.get((r["dataset"], r["reviewed"], "patchcore", r["variant"], m))
                if p and p.get("p_adjusted") is not None:
                    cell += f" ({-p['difference']:+.3f}, p={p['p_adjusted']:.2g})"
            cells.append(cell)
        print(f"| {r['dataset']} | {r['reviewed']} ({r['reviewed_normal']} / {r['reviewed_defect']}) | "
              f"{r['n_test']} ({r['defects_left']}) | {r['variant']} | " + " | ".join(cells) + " |")
    print("\nSignificant losses (Holm-adjusted p < 0.05) of each variant against any other:")
    for variant in VARIANTS:
        losses = [p for p in paired if p.get("significant") and
                  ((p["method_a"] == variant and p["difference"] < 0) or (p["method_b"] == variant and p["difference"] > 0))]
        print(f"  {variant}: " + (", ".join(f"{p['dataset']} R={p['reviewed']} {p['metric']} vs "
                                            f"{p['method_b'] if p['method_a'] == variant else p['method_a']}"
                                            for p in losses) or "none"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=DATASETS)
    ap.add_argument("--sizes", default="20,50")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("runs/review-feedback"))
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.summary:
        done = set()
        if (args.out / "rows.jsonl").is_file():
            done = {json.loads(line)["dataset"] for line in (args.out / "rows.jsonl").read_text().splitlines()}
        for name in args.datasets.split(","):
            if name not in done:
                measure(name, [int(s) for s in args.sizes.split(",")], args.n, args.out)
    summary(args.out)


if __name__ == "__main__":
    main()
