"""How much faster is an exported front-end? torch vs ONNX Runtime vs OpenVINO, forward pass and whole archive.

    python benchmarks/export_speed.py [--image-size 256] [--batches 1,8,32] [--n 64] [--repeats 3]
                                      [--archive mtd-seed0] [--archive-n 0] [--threads 0] [--seed 0]

1. Forward throughput: seeded ``uint8`` images already in memory through the detector's front-end (images in,
   patch features out: normalisation, backbone, taps, 3x3 average, resize, concat) at each batch size, in PyTorch
   eager (``PatchFeatureExtractor``), ONNX Runtime (the ONNX export) and OpenVINO (the IR export). ``--n`` images
   per timing, the median of ``--repeats`` timings after one warm-up batch.
2. End to end: ``score_archive`` (local engine: decode, resize, front-end, bank search, scores.csv) over the test
   images of ``--archive`` (``--archive-n`` > 0 keeps the first N), once per runtime, in the same process.

Everything is printed as images per second and as a ratio to torch. The detector is PatchCore with the default
backbone (its packaged ImageNet weights), fitted on the training split of ``--archive``; run alone on the machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from patchcore_fidelity import seeded_dataset

from exdd_lab.archive import score_archive
from exdd_lab.export.writer import export_detector
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
from exdd_lab.methods.registry import load_detector
from exdd_lab.seeding import seed_everything

RUNTIMES = (("torch", None), ("onnx", "onnx"), ("openvino", "openvino"))  # (runtime, export format it runs)


def throughput(front_end, images: np.ndarray, batch: int, repeats: int) -> float:
    """Median images per second of ``front_end`` over ``images`` in batches of ``batch``."""
    with torch.no_grad():
        front_end(images[:batch])  # warm-up: first-call allocations and graph compilation stay out of the timing
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(images), batch):
                front_end(images[i : i + batch])
            rates.append(len(images) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--n", type=int, default=64, help="images per forward timing (a multiple of every batch size)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--archive", default="mtd-seed0", help="data set whose test images are the archive (procedural when absent)")
    ap.add_argument("--archive-n", type=int, default=0, help="score only the first N test images (0: all)")
    ap.add_argument("--threads", type=int, default=0, help="threads for every runtime (0: each runtime's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("EXDD_LAB_CACHE", tempfile.mkdtemp(prefix="exdd-bench-"))
    threads = args.threads or None
    if threads:
        torch.set_num_threads(threads)
    archive_name = args.archive
    seed, ds = seeded_dataset(archive_name)
    if ds is None:
        archive_name = "procedural"
        seed, ds = seeded_dataset(archive_name)
    seed_everything(args.seed)
    root = Path(tempfile.mkdtemp(prefix="exdd-export-speed-"))
    saved = PatchCore(FeatureConfig(image_size=args.image_size), PatchCoreSettings(seed=seed)).fit(ds.train).save(root / "model")
    exports = {fmt: export_detector(saved, fmt, root / fmt) for fmt in ("onnx", "openvino")}
    front_ends = {"torch": load_detector(saved).extractor,
                  **{rt: load_detector(exports[fmt], runtime=rt, threads=threads).extractor for rt, fmt in RUNTIMES[1:]}}
    print(f"backbone: {front_ends['torch'].weights_source.description}")
    print(f"torch threads: {torch.get_num_threads()}  runtime threads: {threads or 'default'}  cpus: {os.cpu_count()}  "
          f"image size: {args.image_size}")
    images = np.random.default_rng(args.seed).integers(0, 256, (args.n, args.image_size, args.image_size, 3), dtype=np.uint8)

    print("\n| forward pass | " + " | ".join(f"batch {b}" for b in args.batches.split(",")) + " |")
    print("|---|" + "---|" * len(args.batches.split(",")))
    rates = {rt: [throughput(fe, images, int(b), args.repeats) for b in args.batches.split(",")] for rt, fe in front_ends.items()}
    for rt, values in rates.items():
        print(f"| {rt} | " + " | ".join(f"{v:.1f} img/s ({v / t:.2f}×)" for v, t in zip(values, rates["torch"])) + " |")

    tests = ds.test[: args.archive_n] if args.archive_n else ds.test
    listing = root / "archive.txt"
    listing.write_text("\n".join(str(s.image_path) for s in tests) + "\n")
    seconds = {}
    for rt, fmt in RUNTIMES:
        model = saved if fmt is None else exports[fmt]
        start = time.perf_counter()
        summary = score_archive(model, listing, root / f"scores-{rt}", runtime=rt, threads=threads, progress=False)
        seconds[rt] = time.perf_counter() - start
        assert summary.ok, f"{rt}: some files failed"
    print(f"\n| end to end, {len(tests)} images of {archive_name} | "
          "seconds | images/s | ratio to torch |")
    print("|---|---|---|---|")
    for rt, s in seconds.items():
        print(f"| {rt} | {s:.1f} | {len(tests) / s:.1f} | {seconds['torch'] / s:.2f}× |")


if __name__ == "__main__":
    main()
