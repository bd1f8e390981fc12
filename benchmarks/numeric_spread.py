"""How far the notebook numbers move when the CPU's numeric path or the training seed changes.

Runs the notebook reference set (small mode, procedural + MTD) on one numeric path -- an instruction-set
cap and a thread count -- each run with its own empty cache so the DDPM and the student-teacher are trained
anew, and writes the executed notebooks under ``OUT/<machine>/<path>/``. Their metrics are copied into
``tests/reference/measured/<machine>/<path>/metrics/`` (committed): ``make references`` builds the tolerances
from every machine measured there, so the next CPU adds its folder instead of replacing the last one's.

``--train-seed K`` re-runs the notebooks that train (03-07) with ``train_seed=K`` -- the data split stays on
seed 0, only the trained models and their synthetic defects are drawn anew -- into ``<path>-seed<K>``: the
spread over training seeds that a sound method shows (see README: notebook regression).

``--probe`` prints, without running notebooks, which kernels each numeric library picks on this CPU under a cap
(torch's ATen, oneDNN, MKL, OpenBLAS, faiss): where two CPUs can differ although both are capped.

    python benchmarks/numeric_spread.py --isa avx --threads 1
    python benchmarks/numeric_spread.py --isa avx2 --threads 1 --train-seed 3 --notebooks 03 04 05 06 07
    python benchmarks/numeric_spread.py --probe --isa avx2 --threads 2
    python benchmarks/numeric_spread.py --summary
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from exdd_lab.lab.notebooks import MEASURED_DIR, REPO_ROOT, list_notebooks, run_reference_set
from exdd_lab.lab.references import key_spreads, load_measurements, load_recorded_spreads, spread_table
from exdd_lab.numerics import ISA_CAPS, cpu_label, numeric_environment

DEFAULT_OUT = REPO_ROOT / "runs" / "numeric-spread"
TRAINING_NOTEBOOKS = ("03", "04", "05", "06", "07")  # the notebooks whose numbers come out of a training run

PROBE = r"""
import json
import numpy as np, torch
from threadpoolctl import threadpool_info
from exdd_lab.student_teacher import StudentTeacherConfig, build_networks
from exdd_lab.student_teacher.losses import joint_loss
from exdd_lab.student_teacher.network import Teacher, head_inputs, student_maps
torch.manual_seed(0)
config = StudentTeacherConfig()                        # the default design, one training step of batch 4
teacher = Teacher()
student, head = build_networks(teacher, config)
images = torch.rand(4, 256, 256, 3)
masks = (torch.rand(4, 256, 256) > 0.97).float()
with torch.no_grad():
    t_maps = teacher(teacher.preprocess(images))
print("STEP-START", flush=True)
s_maps = student_maps(student, None, t_maps)
logits = head(head_inputs([m.detach() for m in s_maps], t_maps, config.head_input))
joint_loss(s_maps, t_maps, logits, masks)["total"].backward()
print("STEP-END", flush=True)
np.ones((64, 64)) @ np.ones((64, 64))
import faiss
pools = {p["internal_api"]: p.get("architecture") or p.get("version") for p in threadpool_info()}
print("PROBE", json.dumps({"aten": torch.backends.cpu.get_cpu_capability(), "openblas (numpy, scipy)": pools.get("openblas"),
                           "faiss": faiss.get_compile_options().strip(), "torch threads": torch.get_num_threads()}))
"""


def probe(isa: str, threads: int) -> dict[str, str]:
    """The kernels each library picks in a fresh process on ``isa`` x ``threads`` for one training step of the
    default student-teacher, from the libraries' own verbose logs (oneDNN, MKL) and threadpoolctl."""
    from collections import Counter

    env = dict(os.environ, **numeric_environment(isa, threads), ONEDNN_VERBOSE="1", MKL_VERBOSE="1")
    lines = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    found = json.loads(next(line for line in lines if line.startswith("PROBE "))[6:])
    step = lines[lines.index("STEP-START") + 1: lines.index("STEP-END")]
    onednn = Counter(f"{f[5]} {f[6]} {f[7]}" for f in (line.split(",") for line in step) if f[:4] == ["onednn_verbose", "v1", "primitive", "exec"]
                     and f[5] != "reorder")
    mkl = Counter(" ".join([line.split()[1].split("(")[0]] + [p for p in line.split() if p.startswith(("CNR:", "Dyn:", "NThr:"))])
                  for line in step if line.startswith("MKL_VERBOSE") and "(" in line.split()[1])
    onednn_isa = next((line.split(",")[-1] for line in lines if ",info,cpu,isa:" in line), "?")
    return {**found, "onednn isa": onednn_isa,
            "onednn in one step": "; ".join(f"{n} x {k}" for k, n in onednn.most_common()) or "none",
            "mkl in one step": "; ".join(f"{n} x {k}" for k, n in mkl.most_common()) or "none"}


def copy_metrics(run_folder: Path, machine: str, path: str) -> Path:
    """Copy a run's metrics JSON files into the committed measurements (``tests/reference/measured``)."""
    target = MEASURED_DIR / machine / path / "metrics"
    target.mkdir(parents=True, exist_ok=True)
    for file in sorted((run_folder / "metrics").glob("*.json")):
        shutil.copyfile(file, target / file.name)
    return target


def markdown_table(measurements: dict) -> str:
    """One row per compared-or-not key whose tolerance is wider than its floor: the committed reference against
    every CPU's paths and the training seeds (what benchmarks/README.md shows)."""
    from exdd_lab.lab.references import load_references, split_path_name

    refs = load_references()
    columns = [(m, p) for m, paths in measurements.items() for p in sorted(paths) if not split_path_name(p)[1]]
    seed_columns = [(m, p) for m, paths in measurements.items() for p in sorted(paths) if split_path_name(p)[1]]
    head = (["notebook", "run", "key", "reference"] + [f"{m.split('-')[0]} {p}" for m, p in columns]
            + [f"seed {split_path_name(p)[1]}" for _, p in seed_columns] + ["path spread", "seed sd", "tolerance", "floor", "compared"])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for notebook, runs in sorted((nb, r) for nb, r in refs.items() if not nb.startswith("_")):
        for run, entries in sorted(runs.items()):
            for key, entry in sorted(entries.items()):
                tol = entry.get("abs_tol")
                if tol is None or tol <= 0.0100001 or not isinstance(entry["value"], float):
                    continue
                cell = lambda m, p: measurements[m][p].get(notebook, {}).get(run, {}).get(key)
                fmt = lambda v: "–" if v is None else f"{v:.4f}"
                rows.append("| " + " | ".join(
                    [notebook[:2], run, key, fmt(entry["value"])] + [fmt(cell(m, p)) for m, p in columns]
                    + [fmt(cell(m, p)) for m, p in seed_columns]
                    + [fmt(entry.get("spread")), fmt(entry.get("seed_sd")), f"{tol:.4f}", fmt(entry.get("floor", entry.get("ceiling"))),
                       "yes" if entry.get("referenced", True) else "no"]) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", choices=tuple(ISA_CAPS), default="avx2", help="instruction-set cap (default avx2, the harness's pin)")
    parser.add_argument("--threads", type=int, default=2, help="torch/MKL threads of the kernels (default 2)")
    parser.add_argument("--train-seed", type=int, default=0,
                        help="train_seed of the notebooks that train (default 0: the reference run itself)")
    parser.add_argument("--machine", default=cpu_label(), help=f"name of this CPU's folder (default {cpu_label()})")
    parser.add_argument("--notebooks", nargs="*", default=None,
                        help="notebook numbers to run (default: all; with --train-seed: the ones that train), e.g. 03 05")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the executed notebooks go")
    parser.add_argument("--summary", action="store_true", help="only print the spreads of what was measured so far")
    parser.add_argument("--probe", action="store_true", help="only print which kernels each library picks on this path")
    parser.add_argument("--markdown", action="store_true",
                        help="with --summary: the keys whose tolerance the spreads widen, as a Markdown table (benchmarks/README.md)")
    parser.add_argument("--reuse-cache", action="store_true",
                        help="keep this path's cache: models whose inputs did not change (e.g. the DDPM after a feature "
                             "change) are reused -- they were trained on this same path; everything keyed anew is re-made")
    args = parser.parse_args()
    args.out = args.out.resolve()  # the notebooks run in notebooks/: a relative path would land there
    if args.probe:
        for name, value in probe(args.isa, args.threads).items():
            print(f"{name:>22}: {value}")
        return
    if not args.summary:
        path = f"{args.isa}-t{args.threads}" + (f"-seed{args.train_seed}" if args.train_seed else "")
        folder = args.out / args.machine / path
        cache = folder / "cache"
        if not args.reuse_cache:
            shutil.rmtree(cache, ignore_errors=True)  # every path trains its own models
        env = dict(numeric_environment(args.isa, args.threads), EXDD_LAB_CACHE=str(cache))
        chosen = args.notebooks or (TRAINING_NOTEBOOKS if args.train_seed else None)
        books = [nb for nb in list_notebooks() if not chosen or nb.name[:2] in chosen]
        parameters = {"train_seed": args.train_seed} if args.train_seed else {}
        start = time.perf_counter()
        run_reference_set(folder / "metrics", env, books, parameters)
        print(f"{args.machine}/{path}: {time.perf_counter() - start:.0f} s; metrics in {copy_metrics(folder, args.machine, path)}")
    measurements = load_measurements(MEASURED_DIR)
    if args.markdown:
        print(markdown_table(measurements))
        return
    for machine, paths in measurements.items():
        table = spread_table(paths)
        if len(table):
            print(f"== {machine}: keys that moved by more than 1e-4 over its runs\n"
                  f"{table[table.spread > 1e-4].round(4).to_string()}")
    spreads = key_spreads(measurements, load_recorded_spreads(MEASURED_DIR))
    widest = sorted(spreads.items(), key=lambda item: -(item[1]["seed_sd"] or 0))[:20]
    print("== widest seed spreads (sd over training seeds)")
    for (notebook, run, key), found in widest:
        print(f"{notebook} {run} {key}: seed sd {found['seed_sd']}, over {found['n_seeds']} seeds; path spread {found['spread']:.4f}")


if __name__ == "__main__":
    main()
