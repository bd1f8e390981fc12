"""How fast the review widget opens and moves on a large archive run (targets: open < 5 s, next image < 0.3 s).

    python benchmarks/review_speed.py [--images 20000] [--days 20] [--seed 0] [--out runs/review-speed]

Builds an archive run folder of ``--images`` scored images in the format ``exdd-lab score`` writes (manifest,
Parquet shards of 1,000 rows, a saved uint8 map per image), its inputs symbolic links to real images (MTD from
``../shared/data`` where present, else the procedural default) spread over ``--days`` dated folders, with seeded
scores. Scoring 20,000 images would take the better part of an hour here and does not change what the widget
does; the run folder is what it reads. Then times, in this process: opening (the queue and the widget with its
first page), moving to the next image, judging (each verdict rewrites reviews.csv, here holding 5,000 verdicts
already), changing a filter and moving the threshold slider.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from exdd_lab.archive.store import ROW_SCHEMA, ArchiveStore, Counts
from exdd_lab.seeding import seed_everything

SHARED_MTD = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtd"


def source_images(limit: int = 200) -> list[Path]:
    if SHARED_MTD.is_dir():
        found = sorted(SHARED_MTD.rglob("*.jpg"))[:limit]
        if found:
            return found
    from exdd_lab.data import load_dataset

    return [s.image_path for s in load_dataset(None).test][:limit]


def build_run(out: Path, n: int, days: int, seed: int) -> Path:
    """An archive run of ``n`` images (links to real ones) with seeded scores and saved maps."""
    rng = np.random.default_rng(seed)
    sources = source_images()
    archive, run = out / "archive", out / "run"
    shutil.rmtree(out, ignore_errors=True)
    store = ArchiveStore.open(run, {"model": "benchmark", "model_fingerprint": "benchmark", "method": "patchcore",
                                    "threshold": 3.0, "inputs": {"kind": "folder", "value": str(archive)}})
    scores = rng.lognormal(0.5, 0.4, n)
    maps = (rng.random((16, 64, 64)) * 255).astype(np.uint8)
    for start in range(0, n, 1000):
        rows = {name: [] for name in ROW_SCHEMA.names}
        for i in range(start, min(n, start + 1000)):
            rel = f"2026-11-{1 + i % days:02d}/{i:06d}{sources[i % len(sources)].suffix}"
            link = archive / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(sources[i % len(sources)].resolve())
            map_file = f"maps/{i // 1000:05d}/{i:08d}.png"
            (run / map_file).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(maps[i % 16]).save(run / map_file)
            values = {"index": i, "shard": i // 1000, "path": str(link), "relative_path": rel, "status": "scored",
                      "error": None, "score": float(scores[i]), "decision": int(scores[i] >= 3.0), "peak_y": 0,
                      "peak_x": 0, "peak_value": float(scores[i]), "map_min": 0.0, "image_height": 256,
                      "image_width": 256, "file_size": 0, "mtime": 0.0, "map_file": map_file}
            for name in ROW_SCHEMA.names:
                rows[name].append(values[name])
        store.write_shard(start // 1000, pa.table(rows, schema=ROW_SCHEMA))
    store.write_manifest(Counts())
    return run


def timed(action, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--days", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/review-speed"))
    args = ap.parse_args()
    seed_everything(args.seed)
    start = time.perf_counter()
    run = build_run(args.out, args.images, args.days, args.seed)
    print(f"built a {args.images:,}-image run in {time.perf_counter() - start:.1f} s ({run})")
    from exdd_lab.analyst.review_queue import ReviewQueue
    from exdd_lab.analyst.reviews import ReviewLog
    from exdd_lab.analyst.review_widget import ReviewWidget

    start = time.perf_counter()
    widget = ReviewWidget(ReviewQueue(run))
    opened = time.perf_counter() - start
    moves = timed(lambda: widget.press("j"), 100)
    log = ReviewLog(run, "benchmark")
    for path in widget.queue.table["path"].iloc[-5000:]:
        log.rows[path] = {"path": path, "verdict": "normal", "score": "", "model": "benchmark", "time": ""}
    log._write()
    widget.queue.reviews = ReviewLog(run, "benchmark")
    judged = timed(lambda: widget.press("d"), 50)
    days = widget.queue.folders
    filtered = timed(lambda: setattr(widget.folders, "value", tuple(days[: 1 + len(widget.folders.value) % 3])), 10)
    lo, hi = widget.queue.score_range
    slider = timed(lambda: setattr(widget.threshold, "value", float(np.random.uniform(lo, hi))), 10)

    def line(name, values):
        return (f"{name:<34} median {statistics.median(values) * 1000:7.1f} ms, p95 {np.quantile(values, 0.95) * 1000:7.1f} ms, "
                f"max {max(values) * 1000:7.1f} ms")

    print(f"open (queue + widget + first page)  {opened:.2f} s   (target < 5 s)")
    print(line("next image (j)", moves) + "   (target < 300 ms)")
    print(line("verdict (d), 5,000 already in file", judged))
    print(line("folder filter", filtered))
    print(line("threshold slider (per-folder counts)", slider))


if __name__ == "__main__":
    main()
