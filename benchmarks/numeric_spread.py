"""How far the notebook numbers move when the CPU's numeric path changes (instruction set, threads).

Runs the whole notebook reference set (small mode, procedural + MTD) on one numeric path, each path
with its own empty cache so the DDPM and the student-teacher are trained anew, and writes the
metrics under ``OUT/<isa>-t<threads>/``. ``--summary`` prints, for every referenced key, the values
of every path measured so far and their spread (max - min); ``make references`` reads the same
folder to record the spread and set tolerances (see README: notebook regression).

    python benchmarks/numeric_spread.py --isa avx --threads 1
    python benchmarks/numeric_spread.py --summary
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from exdd_lab.lab.notebooks import REPO_ROOT, list_notebooks, run_reference_set
from exdd_lab.numerics import ISA_CAPS, numeric_environment
from exdd_lab.lab.references import load_spread_runs, spread_table

DEFAULT_OUT = REPO_ROOT / "runs" / "numeric-spread"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", choices=tuple(ISA_CAPS), default="avx2", help="instruction-set cap (default avx2, the harness's pin)")
    parser.add_argument("--threads", type=int, default=2, help="torch/MKL threads of the kernels (default 2)")
    parser.add_argument("--notebooks", nargs="*", default=None, help="notebook numbers to run (default: all), e.g. 03 05")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--summary", action="store_true", help="only print the spread of the paths already measured")
    parser.add_argument("--reuse-cache", action="store_true",
                        help="keep this path's cache: models whose inputs did not change (e.g. the DDPM after a feature "
                             "change) are reused -- they were trained on this same path; everything keyed anew is re-made")
    args = parser.parse_args()
    if not args.summary:
        folder = args.out / f"{args.isa}-t{args.threads}"
        cache = folder / "cache"
        if not args.reuse_cache:
            shutil.rmtree(cache, ignore_errors=True)  # every path trains its own models
        env = dict(numeric_environment(args.isa, args.threads), EXDD_LAB_CACHE=str(cache))
        books = [nb for nb in list_notebooks() if not args.notebooks or nb.name[:2] in args.notebooks]
        start = time.perf_counter()
        run_reference_set(folder / "metrics", env, books)
        print(f"{folder.name}: {time.perf_counter() - start:.0f} s")
    table = spread_table(load_spread_runs(args.out))
    print(table.to_string() if len(table) else "no measured paths yet")


if __name__ == "__main__":
    main()
