"""Scoring archives of growing size: time, images/s, peak memory of the whole process tree, disk written.

    python benchmarks/archive_scale.py [--sizes 1000,5000,20000] [--engines local,ray] [--nodes] [--seed 0]

The archive is made of hard links to the MTD images (all of them, normal and defect, cycled) in dated
sub-folders of 1,000 images, in a scratch folder (nothing is copied into the repository). The detector is
the kit's default (PatchCore, 256 px) fitted on the training normals of MTD's seeded split and saved. Each
run is ``exdd-lab score`` in a fresh process with an empty feature cache; its process tree (Ray's servers and
workers included) is sampled every 0.1 s for the peak resident memory. In the same run the *scoring floor*
is measured: the backbone's forward pass plus the bank search, per image, on images already decoded.
``--nodes`` also compares one against two one-CPU Ray nodes (a loopback cluster, ``exdd_lab.archive.cluster``).

Ray's servers listen on every interface in Ray 2.60, so when an engine or ``--nodes`` needs Ray the script
re-runs itself in a network namespace that holds only loopback (``unshare --net``, root), when it can.
Results: ``runs/benchmarks/archive_scale.json`` (each row as soon as it is measured) and a table.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
MTD = REPO.parent / "shared" / "data" / "mtd"
RESULTS = REPO / "runs" / "benchmarks" / "archive_scale.json"


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def make_archive(folder: Path, n: int) -> Path:
    """``n`` hard links (symbolic where the file system refuses) to the MTD images, 1,000 per dated folder."""
    sources = sorted(p for p in MTD.rglob("*.jpg"))
    if folder.exists() and sum(1 for _ in folder.rglob("*.jpg")) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for i, source in zip(range(n), itertools.cycle(sources)):
        day = folder / f"2026-{1 + i // 28000:02d}-{1 + (i // 1000) % 28:02d}"
        day.mkdir(parents=True, exist_ok=True)
        target = day / f"{i:06d}-{source.name}"
        try:
            os.link(source, target)
        except OSError:
            target.symlink_to(source)
    return folder


def fit_model(scratch: Path, seed: int) -> Path:
    from exdd_lab.data import load_dataset
    from exdd_lab.methods import PatchCore
    from exdd_lab.seeding import seed_everything

    model = scratch / f"patchcore-mtd-seed{seed}"
    if not model.is_dir():
        seed_everything(seed)
        ds = load_dataset(str(MTD), "mtd", seed=seed)
        PatchCore().fit(ds.train).save(model)
    return model


def scoring_floor(model: Path, archive: Path, n: int = 96) -> dict:
    """Per image: the backbone's forward pass (batches of 8) and the bank search, on decoded images."""
    from exdd_lab.data import load_image
    from exdd_lab.methods.registry import load_detector

    detector = load_detector(model)
    paths = sorted(archive.rglob("*.jpg"))[:n]
    images = np.stack([load_image(p, detector.input_size) for p in paths])
    fx = detector.extractor
    fx(images[:8])  # warm-up
    start = time.perf_counter()
    feats = [fx(images[i : i + 8]) for i in range(0, len(images), 8)]
    forward = (time.perf_counter() - start) / len(images)
    detector.bank.search(feats[0].reshape(-1, feats[0].shape[-1]), k=1)  # builds the index once, as a run does
    start = time.perf_counter()
    for f in feats:
        detector.bank.search(f.reshape(-1, f.shape[-1]), k=1)
    search = (time.perf_counter() - start) / len(images)
    return {"forward_ms": round(forward * 1e3, 2), "search_ms": round(search * 1e3, 2),
            "forward_floor_ips": round(1 / forward, 1), "scoring_floor_ips": round(1 / (forward + search), 1)}


def steady_rate(out: Path) -> float | None:
    """Images/s between the first and the last shard written: the rate once every worker has started (a run's
    fixed start-up, Ray's actors importing torch and loading the detector, left out)."""
    shards = sorted((p.stat().st_mtime, p) for p in (out / "shards").glob("shard-*.parquet"))
    if len(shards) < 3:
        return None
    import pyarrow.parquet as pq

    after_first = sum(pq.read_metadata(p).num_rows for _, p in shards[1:])
    return round(after_first / (shards[-1][0] - shards[0][0]), 1)


def run_score(model: Path, archive: Path, out: Path, engine: str, extra: list[str], env: dict | None = None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cache = Path(tempfile.mkdtemp(prefix="exdd-bench-cache-"))
    command = [sys.executable, "-m", "exdd_lab", "score", "--model", str(model), "--images", str(archive),
               "--out", str(out), "--engine", engine, "--quiet", *extra]
    environment = {**(env or os.environ), "EXDD_LAB_CACHE": str(cache)}
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watcher = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, tree_rss(watcher))
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - start
    output = proc.stdout.read()
    found = re.search(r"processed (\d+) files in ([\d.]+) s", output)
    if proc.returncode not in (0, 1) or not found:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output[-3000:]}")
    scored, seconds = int(found.group(1)), float(found.group(2))
    row = {"wall_s": round(wall, 1), "scoring_s": round(seconds, 1), "images_per_s": round(scored / seconds, 1),
           "steady_images_per_s": steady_rate(out),
           "peak_rss_mb": round(peak / 2**20), "out_mb": round(folder_bytes(out) / 2**20, 2),
           "cache_mb": round(folder_bytes(cache) / 2**20, 1)}  # cache: the backbone's converted weights, once per cache
    shutil.rmtree(cache, ignore_errors=True)
    return row


def record(row: dict) -> None:
    rows = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    rows.append(row)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1))
    print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000,20000")
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--nodes", action="store_true", help="also one vs two one-CPU Ray nodes (at the smallest size)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "exdd-archive-bench")
    ap.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    if ("ray" in engines or args.nodes) and not args.in_namespace:
        from exdd_lab.archive.cluster import isolated_command

        command = isolated_command([sys.executable, *sys.argv, "--in-namespace"])
        if command:
            sys.exit(subprocess.call(command))
        print("warning: no loopback-only network namespace here; Ray's servers will listen on every interface")
    if args.in_namespace:
        from exdd_lab.archive.cluster import loopback_up

        loopback_up()
    if not MTD.is_dir():
        sys.exit(f"{MTD} is missing: the benchmark scores MTD images")
    args.scratch.mkdir(parents=True, exist_ok=True)
    model = fit_model(args.scratch, args.seed)
    sizes = [int(s) for s in args.sizes.split(",")]
    floor = scoring_floor(model, make_archive(args.scratch / f"archive-{sizes[0]}", sizes[0]))
    print(f"scoring floor: {floor}", flush=True)
    stamp = {"seed": args.seed, "cpu": _cpu(), "threads": os.cpu_count()}
    for n in sizes:
        archive = make_archive(args.scratch / f"archive-{n}", n)
        for engine in engines:
            row = run_score(model, archive, args.scratch / "out", engine, ["--workers", "2"] if engine == "ray" else [])
            record({**stamp, "n": n, "engine": engine, **row, **floor,
                    "of_scoring_floor": round(row["images_per_s"] / floor["scoring_floor_ips"], 2)})
    if args.nodes:
        from exdd_lab.archive.cluster import LoopbackCluster

        archive = make_archive(args.scratch / f"archive-{sizes[0]}", sizes[0])
        for nodes in (1, 2):
            with LoopbackCluster(nodes=nodes) as cluster:
                row = run_score(model, archive, args.scratch / "out", "ray",
                                ["--address", cluster.address, "--workers", str(nodes)], env=cluster.env)
            record({**stamp, "n": sizes[0], "engine": f"ray cluster, {nodes} one-CPU node(s)", **row, **floor})
    shutil.rmtree(args.scratch / "out", ignore_errors=True)


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    main()
