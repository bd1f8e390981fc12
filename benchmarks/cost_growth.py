"""How PatchCore's costs grow with the training set: fit time, predict time per image, peak memory, bank size.

    python benchmarks/cost_growth.py [--sizes 250,1000,4000,16000] [--datasets mtd,procedural]
                                     [--configs default,exact,wide,ratio10] [--seed 0]
                                     [--scratch /tmp/exdd-cost-growth] [--out benchmarks/results/cost_growth.jsonl]
                                     [--summary]

Training sets of N normals are made from a data set's *training* normals only (MTD: the 761 of the published
DifferNet split; procedural: the built-in default's), the originals first, then seeded copies with flips,
90-degree rotations and crops, written once to ``--scratch`` (nothing is committed). Each row runs in its own
process with an empty feature cache (``EXDD_LAB_CACHE`` a fresh folder, removed afterwards), so its peak RSS is
its own: fit (decode, forward, cache writes, coreset), then predict the data set's untouched test split.

Configurations: ``default`` (1% bank, two-stage greedy, ``auto`` index); ``exact`` (the reference code's
textbook greedy on a 128-d projection, only where affordable: N <= --exact-max); ``wide`` (the two-stage greedy
with a 20x larger final-pass budget: the stronger reference where the exact greedy is not affordable);
``ratio10`` (a 10% bank); ``no-final-pass`` (the default before the grouped final pass: above the budget the
oversampling shrank, down to no final pass). For every row the fitted bank is also searched with each index strategy forced
(flat, ivf, hnsw; cached test features, so only the search differs): recall of the exact nearest item, search
milliseconds per image and the change in image AUROC, pixel AUROC and AUPRO.

Rows are appended to ``--out`` as JSON lines (a rerun skips rows already there). The summary prints the table,
the log-log slopes of fit time, predict time and peak memory against N, writes ``cost_growth.json`` (read by
notebook 02) and draws ``cost_growth.png`` beside ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from patchcore_fidelity import register_probe_strategies

register_probe_strategies()  # --indexes ivf-probe16 etc.: IVF with another probe count
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
INDEXES = ["flat", "ivf"]  # --indexes: the strategies each fitted bank is searched with (hnsw: add it)
CONFIGS = {
    "default": {},
    "exact": {"coreset_method": "exact", "coreset_projection": 128},
    "wide": {"final_budget_scale": 20.0},
    "ratio10": {"coreset_ratio": 0.1},
    "no-final-pass": {"final_group_candidates": None},
}


# ---------------------------------------------------------------------------------------------- data
def base_dataset(name: str, seed: int):
    """The data set whose training normals are multiplied and whose test split is scored."""
    from exdd_lab.data import load_dataset

    if name == "mtd":
        if not (SHARED / "mtd").is_dir():
            return None
        return load_dataset(SHARED / "mtd", "mtd", split="differnet")
    if name == "procedural":
        return load_dataset(None, seed=seed)
    raise SystemExit(f"unknown data set {name!r}: mtd, procedural")


def augmented_copy(source: Path, target: Path, rng: np.random.Generator) -> None:
    """A seeded flip / 90-degree rotation / crop (80-100% of each side) of one image, written as PNG."""
    from PIL import Image

    with Image.open(source) as img:
        img.load()
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    img = img.rotate(90 * int(rng.integers(4)), expand=True)
    w, h = img.size
    cw, ch = int(w * rng.uniform(0.8, 1.0)), int(h * rng.uniform(0.8, 1.0))
    left, top = int(rng.integers(w - cw + 1)), int(rng.integers(h - ch + 1))
    img.crop((left, top, left + cw, top + ch)).save(target, compress_level=1)


def training_paths(dataset: str, n: int, scratch: Path, seed: int) -> list[Path]:
    """``n`` training images: the data set's training normals, then seeded augmented copies (made once)."""
    ds = base_dataset(dataset, seed)
    originals = [s.image_path for s in ds.train]
    folder = scratch / f"{dataset}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        if i < len(originals):
            paths.append(originals[i])
            continue
        target = folder / f"aug_{i:06d}.png"
        if not target.is_file():
            tmp = target.with_name(f".{target.name}")
            augmented_copy(originals[i % len(originals)], tmp, np.random.default_rng([seed, i]))
            tmp.replace(target)
        paths.append(target)
    return paths


# ---------------------------------------------------------------------------------------------- one row
def measure_row(spec: dict) -> dict:
    """One fit + predict in this process (called in a child with a fresh feature cache)."""
    from exdd_lab.bank import coreset
    from exdd_lab.data.records import Sample
    from exdd_lab.evaluation.run import evaluate_prediction, peak_rss_mb
    from exdd_lab.features import FeatureConfig, extract_features
    from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
    from exdd_lab.seeding import seed_everything

    seed_everything(spec["seed"])
    ds = base_dataset(spec["dataset"], spec["seed"])
    settings = dict(CONFIGS[spec["config"]])
    if "final_budget_scale" in settings:
        coreset.FINAL_STAGE_BUDGET *= settings.pop("final_budget_scale")
    if "final_group_candidates" in settings:
        coreset.FINAL_GROUP_CANDIDATES = settings.pop("final_group_candidates")
    train = [Sample(p, 0) for p in training_paths(spec["dataset"], spec["n"], Path(spec["scratch"]), spec["seed"])]
    model = PatchCore(FeatureConfig(), PatchCoreSettings(seed=spec["seed"], **settings))
    start = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - start
    fit_rss = peak_rss_mb()
    cache_mb = sum(f.stat().st_size for f in Path(os.environ["EXDD_LAB_CACHE"]).rglob("*") if f.is_file()) / 2**20
    start = time.perf_counter()
    prediction = model.predict(ds.test, keep_maps=True)
    predict_s = time.perf_counter() - start
    size = model.input_size
    metrics, _ = evaluate_prediction(ds, prediction, size)
    row = {**spec, "fit_s": round(fit_s, 1), "fit_peak_rss_mb": round(fit_rss, 0),
           "predict_ms_per_image": round(1000 * predict_s / len(ds.test), 1), "peak_rss_mb": round(peak_rss_mb(), 0),
           "bank_size": len(model.bank), "index": model.bank.index_in_use, "feature_cache_mb": round(cache_mb, 0),
           "coreset": model.bank.metadata["coreset"], "final_stage_budget": coreset.FINAL_STAGE_BUDGET,
           "n_test": len(ds.test), **{k: metrics[k] for k in ("image_auroc", "pixel_auroc", "aupro")}}
    # the same bank searched by each index strategy (cached test features: only the search differs)
    feats = extract_features(model.extractor, [s.image_path for s in ds.test[:32]], model.settings.batch_size)
    queries = feats.reshape(-1, feats.shape[-1])
    truth = None
    for name in INDEXES:
        model.bank.use_index(name)
        start = time.perf_counter()
        model.bank.index()
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        _, idx = model.bank.search(queries, k=1)
        search_ms = 1000 * (time.perf_counter() - start) / len(feats)
        truth = idx[:, 0] if truth is None else truth
        forced = model.predict(ds.test, keep_maps=True)
        m, _ = evaluate_prediction(ds, forced, size)
        row[f"{name}"] = {"build_s": round(build_s, 2), "search_ms_per_image": round(search_ms, 2),
                          "recall_at_1": float((idx[:, 0] == truth).mean()),
                          **{k: m[k] for k in ("image_auroc", "pixel_auroc", "aupro")}}
    return row


def run_child(spec: dict) -> dict:
    """``measure_row`` in a new process with an empty feature cache of its own."""
    cache = Path(tempfile.mkdtemp(prefix="exdd-cost-cache-", dir=spec["scratch"]))
    try:
        env = dict(os.environ, EXDD_LAB_CACHE=str(cache))
        done = subprocess.run([sys.executable, __file__, "--indexes", ",".join(INDEXES), "--child", json.dumps(spec)],
                              env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"row {spec} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(cache, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- summary
def slope(xs, ys) -> float:
    """The log-log slope of ys against xs (1.0: linear growth; 0: flat)."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def summary(rows: list[dict], out: Path) -> dict:
    """Print the table and the slopes; write ``cost_growth.json`` and draw ``cost_growth.png`` beside ``out``."""
    print("\n| data set | config | N | fit s | predict ms/image | fit peak RSS MB | bank | index | image AUROC | pixel AUROC | AUPRO |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["dataset"], r["config"], r["n"])):
        print(f"| {r['dataset']} | {r['config']} | {r['n']:,} | {r['fit_s']:.0f} | {r['predict_ms_per_image']:.1f} | "
              f"{r['fit_peak_rss_mb']:,.0f} | {r['bank_size']:,} | {r['index']} | {r['image_auroc']:.3f} | "
              f"{r['pixel_auroc']:.3f} | {r['aupro']:.3f} |")
    print("\nindex fidelity (same bank, each index forced; changes against exact search):")
    print("| data set | config | N | bank | index | recall@1 | search ms/image | predict ms/image, cached features | build s | "
          "Δ image AUROC | Δ pixel AUROC | Δ AUPRO |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["dataset"], r["config"], r["n"])):
        for name in [k for k, v in r.items() if isinstance(v, dict) and "recall_at_1" in v]:
            f, e = r[name], r["flat"]
            print(f"| {r['dataset']} | {r['config']} | {r['n']:,} | {r['bank_size']:,} | {name} | {f['recall_at_1']:.3f} | "
                  f"{f['search_ms_per_image']:.1f} | {f.get('predict_cached_ms_per_image', float('nan')):.1f} | "
                  f"{f['build_s']:.1f} | {f['image_auroc'] - e['image_auroc']:+.4f} | "
                  f"{f['pixel_auroc'] - e['pixel_auroc']:+.4f} | {f['aupro'] - e['aupro']:+.4f} |")
    slopes = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        curve = sorted((r for r in rows if r["dataset"] == dataset and r["config"] == "default"), key=lambda r: r["n"])
        if len(curve) < 2:
            continue
        ns = [r["n"] for r in curve]
        slopes[dataset] = {key: round(slope(ns, [r[key] for r in curve]), 2)
                           for key in ("fit_s", "predict_ms_per_image", "fit_peak_rss_mb", "bank_size")}
        print(f"{dataset}: log-log slopes {slopes[dataset]}; predict ms/image at N={ns[-1]:,} / N={ns[0]:,}: "
              f"{curve[-1]['predict_ms_per_image'] / curve[0]['predict_ms_per_image']:.2f}x")
    result = {"rows": rows, "slopes": slopes}
    tmp = out.with_name("cost_growth.json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out.with_name("cost_growth.json"))
    from exdd_lab.plots.cost import plot_cost_growth

    fig = plot_cost_growth(rows)
    fig.savefig(out.with_name("cost_growth.png"), dpi=110, bbox_inches="tight")
    print(f"wrote {out.with_name('cost_growth.json')} and {out.with_name('cost_growth.png')}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="250,1000,4000,16000")
    ap.add_argument("--datasets", default="mtd,procedural")
    ap.add_argument("--configs", default="default,exact,wide,ratio10")
    ap.add_argument("--exact-max", type=int, default=1000, help="largest N the exact greedy runs at")
    ap.add_argument("--wide-max", type=int, default=4000, help="largest N the wide final pass runs at")
    ap.add_argument("--wide-min", type=int, default=4000, help="smallest N the wide final pass runs at (below it the default's pass is full)")
    ap.add_argument("--ratio10-max", type=int, default=1000, help="largest N the 10%% bank runs at")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--indexes", default="flat,ivf", help="index strategies each bank is also searched with (flat first)")
    ap.add_argument("--scratch", default=str(Path(tempfile.gettempdir()) / "exdd-cost-growth"))
    ap.add_argument("--out", default="benchmarks/results/cost_growth.jsonl")
    ap.add_argument("--summary", action="store_true", help="print the summary of rows already in --out")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    INDEXES[:] = args.indexes.split(",")
    if args.child:
        print(json.dumps(measure_row(json.loads(args.child)), default=str))
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
    done = {(r["dataset"], r["config"], r["n"], r["seed"]) for r in rows}
    limits = {"exact": args.exact_max, "wide": args.wide_max, "ratio10": args.ratio10_max}
    if not args.summary:
        Path(args.scratch).mkdir(parents=True, exist_ok=True)
        for dataset in args.datasets.split(","):
            if base_dataset(dataset, args.seed) is None:
                print(f"{dataset}: data folder absent, skipped")
                continue
            for n in sorted(int(s) for s in args.sizes.split(",")):
                for config in args.configs.split(","):
                    if (dataset, config, n, args.seed) in done or n > limits.get(config, n) or (config == "wide" and n < args.wide_min):
                        continue
                    spec = {"dataset": dataset, "n": n, "config": config, "seed": args.seed, "scratch": args.scratch}
                    print(f"{time.strftime('%H:%M:%S')} {spec}", flush=True)
                    row = run_child(spec)
                    rows.append(row)
                    with out.open("a") as handle:
                        handle.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    summary([r for r in rows if r["seed"] == args.seed], out)


if __name__ == "__main__":
    main()
