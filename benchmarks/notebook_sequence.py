"""The whole notebook sequence, headless, against the issue's targets: small mode <= 10 min, full mode <= 60 min.

    python benchmarks/notebook_sequence.py [--data ../shared/data/mtd --layout mtd] [--full] [--seed 0]
                                           [--cold-cache]

Runs the main job (``exdd_lab.lab.runner.run_notebooks``, the same as ``exdd-lab run``) and prints seconds per
notebook, the total against the target, and the peak memory of the largest notebook kernel. ``--cold-cache``
points ``EXDD_LAB_CACHE`` at a fresh empty folder first, so converted weights, features, the DDPM, the
synthetic sets and the student-teacher's training are all made from scratch (what a new machine pays).
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from exdd_lab.lab.runner import run_notebooks

TARGET_S = {"small": 600, "full": 3600}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="procedural")
    ap.add_argument("--layout", default="procedural")
    ap.add_argument("--full", action="store_true", help="full mode (default: the small mode CI and `make run` use)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cold-cache", action="store_true", help="start from an empty cache")
    args = ap.parse_args()
    if args.cold_cache:
        os.environ["EXDD_LAB_CACHE"] = tempfile.mkdtemp(prefix="exdd-cold-cache-")
    mode = "full" if args.full else "small"
    start = time.perf_counter()
    run_dir, ok = run_notebooks(args.data, args.layout, fast=not args.full, seed=args.seed, log=lambda line: None)
    total = time.perf_counter() - start
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    print(f"{mode} mode on {summary['dataset'].get('name')} (cache: {os.environ.get('EXDD_LAB_CACHE', 'default')})")
    for entry in summary["notebooks"]:
        print(f"  {entry['notebook']:<40} {entry.get('seconds', float('nan')):>8.1f} s  {entry['status']}")
    peak_kernel_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"total {total:.0f} s (target {TARGET_S[mode]} s: {'met' if total <= TARGET_S[mode] else 'MISSED'}); "
          f"all notebooks ran: {ok}; peak kernel memory {peak_kernel_mb:.0f} MB")
    print(f"report: {run_dir / 'report.html'}")


if __name__ == "__main__":
    main()
