"""ExDD against PatchCore on every data set, with and without real defects in the positive bank.

    python benchmarks/exdd_robustness.py [--datasets procedural,mtd-seed0,mtd-seed1,mtd-seed2,mtd-differnet,mpdd]
                                         [--generator ddpm] [--n 100] [--real 0,5,10,20]
                                         [--out runs/exdd-robustness/rows.jsonl] [--summary]

Per data set, ``exdd_lab.experiments.count_sweep.real_defect_sweep``: ONE negative bank (PatchCore's coreset, 1%) and, for
each K in ``--real``, a positive bank of ``--n`` synthetic defects plus K real ones; scored in the same run: PatchCore
(``d_neg`` alone), ExDD's gated score (the kit's default) and ExDD's published ratio (``ratio_na``), all with the
largest patch score as image score. The published ratio is scored on ExDD's own positive bank (no purification),
PatchCore and the gated score on the kit's default (purified) bank. The K real defects are moved out of the test split (``with_training_defects``),
and the largest K is moved for every row, so all rows of a data set share one test split. Rows are appended to
``--out`` per data set and a rerun skips data sets already there; ``--summary`` prints the tables of
``benchmarks/README.md``. Synthetic sets (and the DDPM behind them) are made once and cached.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patchcore_fidelity import seeded_dataset  # noqa: E402

from exdd_lab.experiments.count_sweep import REAL_SWEEP_SCORES, real_defect_sweep  # noqa: E402
from exdd_lab.features import PatchFeatureExtractor  # noqa: E402
from exdd_lab.methods.exdd.detector import ExddSettings  # noqa: E402
from exdd_lab.synthesis import cached_defect_set  # noqa: E402

DATASETS = "procedural,mtd-seed0,mtd-seed1,mtd-seed2,mtd-differnet,mpdd"


def measure(name: str, generator: str, n: int, reals: list[int], done: set, out: Path) -> None:
    """One data set's rows (:func:`~exdd_lab.experiments.count_sweep.real_defect_sweep`), appended to ``out``."""
    if all((name, generator, n, k, s) in done for k in reals for s in REAL_SWEEP_SCORES if not (s == "patchcore" and k)):
        return
    seed, ds = seeded_dataset(name)
    if ds is None:
        return
    synthetic = cached_defect_set(ds.train, generator, n, seed=seed, progress=True).test
    start = time.perf_counter()
    table = real_defect_sweep(ds, synthetic, reals, PatchFeatureExtractor(), ExddSettings(seed=seed), seed=seed)
    with out.open("a") as handle:
        for row in table.to_dict("records"):
            row = {"dataset": name, "generator": generator, "n_synthetic": n, "real": int(row.pop("real_defects")),
                   **{k: round(float(v), 4) if isinstance(v, float) else v for k, v in row.items()}}
            handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    print(f"{name}: {time.perf_counter() - start:.0f} s")


def summary(rows: list[dict], generator: str, n: int) -> None:
    rows = [r for r in rows if r["generator"] == generator and r["n_synthetic"] == n]
    names = [d for d in DATASETS.split(",") if any(r["dataset"] == d for r in rows)]
    get = {(r["dataset"], r["real"], r["score"]): r for r in rows}
    print(f"\n{n} {generator} defects; image AUROC / pixel AUROC / AUPRO; one run per data set, same test split per row\n")
    print("| score | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for score, k in (("patchcore", 0), ("exdd-published", 0), ("exdd-gated", 0)):
        cells = [get.get((d, k, score)) for d in names]
        print(f"| {score} | " + " | ".join(f"{c['image_auroc']:.3f} / {c['pixel_auroc']:.3f} / {c['aupro']:.3f}" if c else "" for c in cells) + " |")
    for score in ("exdd-gated", "exdd-published"):
        for key in ("image_auroc", "pixel_auroc"):
            cells = []
            for d in names:
                base = get.get((d, 0, score))
                ks = sorted(k for (dd, k, s) in get if dd == d and s == score and k)
                cells.append(" ".join(f"{get[(d, k, score)][key] - base[key]:+.4f}" for k in ks) if base else "")
            print(f"| {score}, + K real (K = 5 10 20), change of {key} | " + " | ".join(cells) + " |")
    for score in ("exdd-gated", "exdd-published"):
        for key in ("image_auroc", "pixel_auroc"):
            diffs = [get[(d, 0, score)][key] - get[(d, 0, "patchcore")][key] for d in names
                     if (d, 0, score) in get and (d, 0, "patchcore") in get]
            if diffs:
                print(f"{score} - patchcore, {key}: mean {np.mean(diffs):+.4f}, min {min(diffs):+.4f}, max {max(diffs):+.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=DATASETS)
    ap.add_argument("--generator", default="ddpm", choices=("perlin", "ddpm"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--real", default="0,5,10,20")
    ap.add_argument("--out", type=Path, default=Path("runs/exdd-robustness/rows.jsonl"))
    ap.add_argument("--summary", action="store_true", help="only print the tables of the rows already measured")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.is_file() else []
    if not args.summary:
        done = {(r["dataset"], r["generator"], r["n_synthetic"], r["real"], r["score"]) for r in rows}
        reals = sorted({0, *(int(k) for k in args.real.split(","))})
        for name in args.datasets.split(","):
            measure(name, args.generator, args.n, reals, done, args.out)
        rows = [json.loads(line) for line in args.out.read_text().splitlines()]
    summary(rows, args.generator, args.n)


if __name__ == "__main__":
    main()
