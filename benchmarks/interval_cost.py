"""What the intervals cost: ``exdd-lab evaluate``'s time with and without the bootstrap, same process.

    python benchmarks/interval_cost.py [--data ../shared/data/mtd --layout mtd] [--seed 0] [--resamples 1000]

PatchCore is fitted and predicts once with a cold feature cache (as a first ``evaluate`` does); then the
metrics are computed without intervals and with them (stratified image bootstrap + cluster bootstrap of the
pixel metrics, ``--resamples``), each three times (the fastest kept). Prints the seconds of each part and the
intervals' extra time as a share of the whole evaluation (target: at most 15 % on MTD), with the intervals
themselves, so the cost is never read without what it buys.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SHARED_MTD = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_MTD) if SHARED_MTD.is_dir() else "procedural")
    parser.add_argument("--layout", default="mtd" if SHARED_MTD.is_dir() else "procedural")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    os.environ["EXDD_LAB_CACHE"] = tempfile.mkdtemp(prefix="exdd-interval-cost-")  # cold, as a first evaluate

    from exdd_lab.data import load_dataset
    from exdd_lab.evaluation.run import evaluate_prediction
    from exdd_lab.features import FeatureConfig
    from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
    from exdd_lab.seeding import seed_everything
    from exdd_lab.evaluation.uncertainty import BootstrapSettings, format_interval

    seed_everything(args.seed)
    ds = load_dataset(None if args.data == "procedural" else args.data, args.layout, seed=args.seed)
    start = time.perf_counter()
    model = PatchCore(FeatureConfig(), PatchCoreSettings(seed=args.seed)).fit(ds.train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    prediction = model.predict(ds.test)
    predict_s = time.perf_counter() - start

    def best_of_three(bootstrap):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            metrics, _ = evaluate_prediction(ds, prediction, model.input_size, bootstrap)
            times.append(time.perf_counter() - start)
        return min(times), metrics

    plain_s, _ = best_of_three(None)
    with_s, metrics = best_of_three(BootstrapSettings(resamples=args.resamples, seed=args.seed))
    whole = fit_s + predict_s + plain_s
    print(f"{ds!r}: {len(ds.train)} training, {len(ds.test)} test images")
    print(f"fit {fit_s:.1f} s, predict {predict_s:.1f} s, metrics {plain_s:.2f} s; with {args.resamples} resamples "
          f"{with_s:.2f} s: intervals add {with_s - plain_s:.2f} s = {100 * (with_s - plain_s) / whole:.1f} % of the evaluation")
    for name, bounds in metrics["intervals"].items():
        print(f"  {name:<12} {format_interval(metrics[name], bounds, 4)}")


if __name__ == "__main__":
    main()
