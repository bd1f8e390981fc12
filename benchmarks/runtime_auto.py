"""Is ``--runtime auto`` (the default of ``fit`` and ``score``) faster than ``--runtime torch``, and just as exact?

    python benchmarks/runtime_auto.py [--score-n 2000] [--fit-n 4000] [--repeats 2] [--seed 0]
                                      [--scratch /tmp/exdd-runtime-auto] [--out benchmarks/results/runtime_auto.json]

The commands a user types, each in its own process, timed from outside (start-up included), the two runtimes
alternating (torch, auto, torch, auto, ...) so that a drift of the machine's speed hits both:

* ``exdd-lab fit --normals LIST --method patchcore`` on ``--fit-n`` MTD normals: the DifferNet split's training
  normals, then seeded flips / rotations / crops of them (``cost_growth.training_paths``, written once to
  ``--scratch``); the default held-out normals (a fifth, at most 200) set the threshold. Every fit starts with an
  **empty feature cache** (else the second fit would read the first one's features); the traced front-end stays
  cached, as it does for a user after the first ``auto`` run (its one-off build is timed apart).
* ``exdd-lab score --model M --images LIST`` over ``--score-n`` MTD images: every image of the six classes, then
  seeded copies up to the count. ``score`` keeps no feature cache.

Exactness: the image scores of the two runtimes' ``scores.csv`` (largest relative difference) and the held-out
scores that set each fit's threshold. Targets (issue 37): score >= 2x, fit >= 1.5x, scores within 1e-4 relative.
Procedural images stand in where ``../shared/data/mtd`` is absent. Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from cost_growth import SHARED, augmented_copy, training_paths

RUNTIMES = ("torch", "auto")


def score_paths(n: int, scratch: Path, seed: int) -> list[Path]:
    """``n`` MTD images: all of them (six classes), then seeded augmented copies (made once)."""
    originals = sorted((SHARED / "mtd").glob("MT_*/Imgs/*.jpg"))
    if not originals:
        from exdd_lab.data import load_dataset

        originals = [s.image_path for s in load_dataset(None, seed=seed).test]
    folder = scratch / f"score-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = list(originals[:n])
    for i in range(len(paths), n):
        target = folder / f"aug_{i:06d}.png"
        if not target.is_file():
            tmp = target.with_name(f".{target.name}")
            augmented_copy(originals[i % len(originals)], tmp, np.random.default_rng([seed, 1, i]))
            tmp.replace(target)
        paths.append(target)
    return paths


def listing(paths: list[Path], file: Path) -> Path:
    file.write_text("\n".join(str(p) for p in paths) + "\n")
    return file


def run(args: list[str], cache: Path) -> float:
    """Seconds of one ``exdd-lab`` command in its own process, with ``EXDD_LAB_CACHE=cache``."""
    env = dict(os.environ, EXDD_LAB_CACHE=str(cache))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "exdd_lab", *args, "--quiet"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    shutil.rmtree(cache, ignore_errors=True)  # the feature cache of a 4,000-image fit is 2.3 GB
    if done.returncode:
        raise SystemExit(f"exdd-lab {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def fresh_cache(scratch: Path, frontends: Path) -> Path:
    """A kit cache whose feature cache starts empty; the traced front-ends and the converted backbone weights are
    shared, as they stay in a user's cache after their first run."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=scratch))
    (cache / "frontends").symlink_to(frontends, target_is_directory=True)
    (cache / "weights").symlink_to(scratch / "weights", target_is_directory=True)
    return cache


def relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--score-n", type=int, default=2000)
    ap.add_argument("--fit-n", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per runtime and command")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "exdd-runtime-auto")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "runtime_auto.json")
    ap.add_argument("--small-model", type=int, default=761,
                    help="also score with a model fitted on the first N normals (MTD: the DifferNet split's 761 "
                         "training normals, a flat bank); 0: only the --fit-n model")
    ap.add_argument("--fresh", action="store_true", help="forget the timings and runs of an earlier call")
    args = ap.parse_args()
    scratch = args.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    fit_list = listing(training_paths("mtd", args.fit_n, scratch, args.seed) if (SHARED / "mtd").is_dir()
                       else training_paths("procedural", args.fit_n, scratch, args.seed), scratch / "fit.txt")
    score_list = listing(score_paths(args.score_n, scratch, args.seed), scratch / "score.txt")
    frontends, runs = scratch / "frontends", scratch / "runs"
    if args.fresh:
        for folder in (frontends, runs):
            shutil.rmtree(folder, ignore_errors=True)
    for folder in (frontends, runs, scratch / "weights"):
        folder.mkdir(exist_ok=True)
    record = runs / "timings.json"
    timings = json.loads(record.read_text()) if record.is_file() else {}

    def timed(key: str, command: list[str], out: Path) -> float:
        """One timed command, or its time from an earlier call of this script (resumable: --fresh redoes all)."""
        if key not in timings or not out.exists():
            shutil.rmtree(out, ignore_errors=True)
            timings[key] = run([*command, "--out", str(out)], fresh_cache(scratch, frontends))
            record.write_text(json.dumps(timings, indent=1))
        print(f"{key}: {timings[key]:.1f} s", flush=True)
        return timings[key]

    # the one-off build of the traced front-end (a tiny fit; its features are not reused)
    tiny = listing(Path(fit_list).read_text().split()[:8], scratch / "tiny.txt")
    tiny_fit = ["fit", "--normals", str(tiny), "--held-out", "0", "--seed", str(args.seed)]
    build_s = timed("tiny fit, auto, builds the graph", tiny_fit, runs / "build")
    warm_tiny = timed("tiny fit, auto, graph cached", tiny_fit, runs / "build-again")
    runtime_note = json.loads((runs / "build" / "fit_report.json").read_text()).get("runtime", "")
    print(f"front-end: {runtime_note}", flush=True)

    fit_models = {"fit": (fit_list, args.fit_n)}
    if args.small_model:  # the split's own training normals: the first lines of the fit list
        fit_models["small"] = (listing(Path(fit_list).read_text().split()[: args.small_model], scratch / "small.txt"),
                               args.small_model)
    seconds: dict[str, dict[str, list[float]]] = {}
    for name, (normals, n) in fit_models.items():
        repeats = args.repeats if name == "fit" else 1
        for rep in range(repeats):
            for runtime in RUNTIMES:
                s = timed(f"fit {n} normals, {runtime}, run {rep}", ["fit", "--normals", str(normals), "--seed",
                          str(args.seed), "--runtime", runtime], runs / f"{name}-{runtime}-{rep}")
                if name == "fit":
                    seconds.setdefault(f"fit {n} normals", {r: [] for r in RUNTIMES})[runtime].append(s)
    for name, (_, n) in fit_models.items():
        model = runs / f"{name}-torch-0"
        bank = json.loads((model / "fit_report.json").read_text())["bank"].get("bank_patches")
        for rep in range(args.repeats):
            for runtime in RUNTIMES:
                s = timed(f"score {args.score_n} images with the {n}-normal model, {runtime}, run {rep}",
                          ["score", "--model", str(model), "--images", str(score_list), "--runtime", runtime],
                          runs / f"score-{name}-{runtime}-{rep}")
                seconds.setdefault(f"score {args.score_n} images (model fitted on {n} normals, bank of {bank:,} patches)",
                                   {r: [] for r in RUNTIMES})[runtime].append(s)

    def scores(folder: Path) -> np.ndarray:
        table = pd.read_csv(folder / "scores.csv").sort_values("image_path")
        return table["score"].to_numpy(np.float64)

    def held_out(folder: Path) -> np.ndarray:
        return np.asarray(json.loads((folder / "fit_report.json").read_text())["held_out_scores"], np.float64)

    gaps = {f"fit {n} normals": relative_gap(held_out(runs / f"{name}-auto-0"), held_out(runs / f"{name}-torch-0"))
            for name, (_, n) in fit_models.items()}
    gaps |= {key: relative_gap(scores(runs / f"score-{name}-auto-0"), scores(runs / f"score-{name}-torch-0"))
             for key, name in zip([k for k in seconds if k.startswith("score")], fit_models)}
    thresholds = {r: json.loads((runs / f"fit-{r}-0" / "fit_report.json").read_text())["threshold"] for r in RUNTIMES}
    result = {"front_end": runtime_note, "build_seconds": round(build_s, 1), "tiny_fit_cached_seconds": round(warm_tiny, 1),
              "fit_n": args.fit_n, "score_n": args.score_n, "repeats": args.repeats, "seed": args.seed,
              "cpus": os.cpu_count(), "seconds": seconds, "max_relative_gap": gaps, "thresholds": thresholds,
              "speedup": {cmd: statistics.median(v["torch"]) / statistics.median(v["auto"]) for cmd, v in seconds.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("\n| command | torch s (median) | auto s (median) | speed-up | largest relative score gap |")
    print("|---|---|---|---|---|")
    for cmd, values in seconds.items():
        t, a = statistics.median(values["torch"]), statistics.median(values["auto"])
        print(f"| {cmd} | {t:.1f} | {a:.1f} | {t / a:.2f}x | {gaps.get(cmd, float('nan')):.1e} |")
    print(f"targets: fit >= 1.5x, score >= 2x; thresholds: {thresholds}")


if __name__ == "__main__":
    main()
