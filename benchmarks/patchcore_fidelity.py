"""PatchCore fidelity: the effect of each place where the kit could differ from the paper and its reference code.

    python benchmarks/patchcore_fidelity.py [--datasets procedural,mtd-seed0,...] [--variants default,...]
                                            [--out runs/fidelity/fidelity.jsonl] [--seed 0]

Each *variant* changes ONE thing from the kit's default PatchCore; each row is a full ``run_evaluation``
(the same code as ``exdd-lab evaluate``: fit on the training normals, predict the test split, metrics).
Rows are appended to ``--out`` as JSON lines as they finish, and a rerun skips rows already there, so a
long measurement can be resumed. At the end it prints, per variant, the change against the default on
every data set (image AUROC, pixel AUROC, AUPRO) and the mean / min / max change: a default follows the
reference unless every data set says otherwise.

Data sets: ``procedural`` (the built-in default), ``mtd-seedN`` (MTD, seeded split N), ``mtd-differnet``
(MTD, the published DifferNet split), ``mpdd`` (MPDD metal_plate) -- the real ones read from
``../shared/data`` beside the repository (skipped with a message where absent).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from exdd_lab.bank.index import BANK_INDEXES, IvfIndex
from exdd_lab.components.metric_names import RANKING_METRICS
from exdd_lab.data import load_dataset
from exdd_lab.evaluation.run import run_evaluation
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
from exdd_lab.seeding import seed_everything

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PROBES = (8, 16, 32, 64)


def register_probe_strategies(probes: tuple[int, ...] = PROBES) -> list[str]:
    """Bank index strategies ``ivf-probeN``: IVF with N cells probed instead of the default's, registered for
    this benchmark only (a saved model could not be loaded without them), to measure the probe count."""
    names = []
    for probes_n in probes:
        name = f"ivf-probe{probes_n}"
        if name not in BANK_INDEXES:
            cls = type(name.replace("-", "_"), (IvfIndex,), {"__annotations__": {"nprobe": int}, "nprobe": probes_n,
                                                               "resolve": lambda self, n_items, _name=name: _name})
            BANK_INDEXES.register(name)(dataclass(frozen=True)(cls))
        names.append(name)
    return names


register_probe_strategies()

#: name -> (FeatureConfig changes, PatchCoreSettings changes, what the reference does)
VARIANTS: dict[str, tuple[dict, dict, str]] = {
    "default": ({}, {}, "the kit's default"),
    "padding-exclude": ({"neighbourhood_padding": "exclude"}, {},
                        "3x3 average over existing neighbours only (reference: zero padding)"),
    "no-neighbourhood": ({"neighbourhood": 1}, {}, "no local aggregation (reference: 3x3)"),
    "imagenet-normalisation": ({"normalisation": "imagenet"}, {},
                               "ImageNet mean/std whatever the backbone (anomalib's pre-processing)"),
    "image-score-max-map": ({}, {"image_score": "max"}, "max of the smoothed map (reference: max raw patch score)"),
    "image-score-max-patch": ({}, {"image_score": "max_patch"},
                              "max raw patch score (patchcore-inspection's image score; the default since issue 14)"),
    "image-score-reweighted": ({}, {"image_score": "reweighted"}, "Eq. 7 reweighting (paper, anomalib)"),
    "no-smoothing": ({}, {"sigma": 0.0}, "maps without the Gaussian (reference: sigma 4)"),
    "coreset-exact": ({}, {"coreset_method": "exact", "coreset_projection": 128},
                      "textbook greedy over all patches on a 128-d projection (reference code)"),
    "coreset-projection-128": ({}, {"coreset_projection": 128}, "two-stage greedy on a 128-d projection (old default)"),
    "coreset-10pct": ({}, {"coreset_ratio": 0.1}, "10% bank (the paper's MTD number is PatchCore-10%)"),
    "index-ivf": ({}, {"bank_index": "ivf"}, "approximate search, IVF (reference: exact)"),
    "index-hnsw": ({}, {"bank_index": "hnsw"}, "approximate search, HNSW (reference: exact)"),
    "index-flat": ({}, {"bank_index": "flat"}, "exact search forced (the default is exact at these bank sizes)"),
    "coreset-10pct-flat": ({}, {"coreset_ratio": 0.1, "bank_index": "flat"}, "10% bank, exact search"),
    "coreset-10pct-ivf": ({}, {"coreset_ratio": 0.1, "bank_index": "ivf"}, "10% bank, IVF search"),
    "coreset-10pct-hnsw": ({}, {"coreset_ratio": 0.1, "bank_index": "hnsw"}, "10% bank, HNSW search"),
    **{f"index-ivf-probe{p}": ({}, {"bank_index": f"ivf-probe{p}"}, f"IVF with {p} cells probed") for p in PROBES},
    **{f"coreset-10pct-ivf-probe{p}": ({}, {"coreset_ratio": 0.1, "bank_index": f"ivf-probe{p}"},
                                       f"10% bank, IVF with {p} cells probed") for p in PROBES},
}
#: Knobs that may buy quality (not deviations from the reference): measured with --variants NAME,...
QUALITY_VARIANTS: dict[str, tuple[dict, dict, str]] = {
    "image-size-320": ({"image_size": 320}, {}, "320 px input (40x40 grid)"),
    "image-size-384": ({"image_size": 384}, {}, "384 px input (48x48 grid)"),
    "layers-2-3-4": ({"layers": (2, 3, 4)}, {}, "add the stride-32 layer (472-d features)"),
    "size-384-10pct": ({"image_size": 384}, {"coreset_ratio": 0.1}, "384 px and a 10% bank"),
}
ALL_VARIANTS = {**VARIANTS, **QUALITY_VARIANTS}


def dataset_by_name(name: str, seed: int):
    """The named data set, or None (with a message) when its folder is absent."""
    if name == "procedural":
        return load_dataset(None, seed=seed)
    if name.startswith("mtd"):
        if not (SHARED / "mtd").is_dir():
            return None
        if name == "mtd-differnet":
            return load_dataset(SHARED / "mtd", "mtd", split="differnet")
        return load_dataset(SHARED / "mtd", "mtd", seed=int(name.removeprefix("mtd-seed")))
    if name == "mpdd":
        return load_dataset(SHARED / "mpdd", "mvtec", "metal_plate") if (SHARED / "mpdd").is_dir() else None
    raise SystemExit(f"unknown data set {name!r}: procedural, mtd-seedN, mtd-differnet, mpdd")


def dataset_seed(name: str) -> int:
    """The split seed a data set name carries (``mtd-seedN``: N), 0 for the others."""
    return int(name.removeprefix("mtd-seed")) if name.startswith("mtd-seed") else 0


def seeded_dataset(name: str):
    """``(seed, dataset)`` for a data set name, with every RNG seeded by it; the dataset is None (said) when absent."""
    seed = dataset_seed(name)
    seed_everything(seed)
    ds = dataset_by_name(name, seed)
    if ds is None:
        print(f"{name}: data folder absent, skipped")
    return seed, ds


def measure(dataset_name: str, variant: str, seed: int) -> dict | None:
    ds = dataset_by_name(dataset_name, seed)
    if ds is None:
        print(f"skip {dataset_name}: {SHARED} has no such data set")
        return None
    feature_changes, setting_changes, _ = ALL_VARIANTS[variant]
    seed_everything(seed)
    method = PatchCore(replace(FeatureConfig(), **feature_changes), replace(PatchCoreSettings(seed=seed), **setting_changes))
    start = time.perf_counter()
    m = run_evaluation(method, ds, seed=seed)
    return {"dataset": dataset_name, "variant": variant, "seed": seed, "n_train": m["n_train"], "n_test": m["n_test"],
            **{k: m[k] for k in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "fit_s", "predict_s")},
            "bank_patches": m["bank_patches"], "bank_index": m.get("bank_index"), "wall_s": round(time.perf_counter() - start, 1)}


def summary(rows: list[dict], variants: list[str], datasets: list[str]) -> None:
    """Per variant: the change against the default on every data set, and its mean / min / max."""
    by = {(r["dataset"], r["variant"]): r for r in rows}
    present = [d for d in datasets if (d, "default") in by]
    print("\n| variant | " + " | ".join(present) + " | mean | min | max |")
    print("|---|" + "---|" * (len(present) + 3))
    for metric in RANKING_METRICS:
        print(f"| **{metric}** default | " + " | ".join(f"{by[(d, 'default')][metric]:.3f}" for d in present) + " | | | |")
        for v in variants:
            if v == "default":
                continue
            deltas = [by[(d, v)][metric] - by[(d, "default")][metric] for d in present if (d, v) in by]
            if not deltas:
                continue
            cells = [f"{by[(d, v)][metric] - by[(d, 'default')][metric]:+.3f}" if (d, v) in by else "" for d in present]
            print(f"| {v} | " + " | ".join(cells) + f" | {np.mean(deltas):+.3f} | {min(deltas):+.3f} | {max(deltas):+.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="procedural,mtd-seed0,mtd-seed1,mtd-seed2,mtd-differnet,mpdd")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"default: the fidelity variants; quality knobs: {', '.join(QUALITY_VARIANTS)}")
    ap.add_argument("--seed", type=int, default=0, help="seed of the method (coreset) and of the procedural data")
    ap.add_argument("--out", default="runs/fidelity/fidelity.jsonl")
    ap.add_argument("--summary", action="store_true", help="print the table of rows already in --out, measure nothing")
    args = ap.parse_args()
    datasets, variants = args.datasets.split(","), args.variants.split(",")
    unknown = [v for v in variants if v not in ALL_VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}: choose from {', '.join(ALL_VARIANTS)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
    done = {(r["dataset"], r["variant"], r["seed"]) for r in rows}
    if not args.summary:
        for d in datasets:
            for v in variants:
                if (d, v, args.seed) in done:
                    continue
                row = measure(d, v, args.seed)
                if row is None:
                    break
                rows.append(row)
                with out.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    summary([r for r in rows if r["seed"] == args.seed], variants, datasets)


if __name__ == "__main__":
    main()
