"""exdd_lab's PatchCore against anomalib's, on the same images, split, size, backbone, weights, layers, coreset.

    python benchmarks/anomalib_compare.py [--data ../shared/data/mtd --layout mtd] [--coreset 0.01]
                                          [--quick] [--seed 0] [--skip-anomalib]

Installs anomalib 2.7.0 into its own virtual environment (``benchmarks/.anomalib-venv``, once).
Writes the split as PNGs in the MVTec layout (anomalib reads only ``.png`` there), then runs each
implementation in a fresh process with a cold feature cache, and prints one table: fit and predict
seconds, peak RSS, image and pixel AUROC, the ratios, and the time of the backbone forward passes
alone (the floor no implementation can beat). ``--quick``: 100 training and 100 test images.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".anomalib-venv"
SHARED_MTD = REPO.parent / "shared" / "data" / "mtd"


def ensure_anomalib() -> Path:
    python = VENV / "bin" / "python"
    if not (VENV / ".installed").is_file():
        print("installing anomalib 2.7.0 into", VENV, "(once; a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "anomalib==2.7.0", "torch==2.14.1",
                        "torchvision==0.29.1", "safetensors"], check=True)
        (VENV / ".installed").touch()
    return python


def write_mvtec_copy(ds, root: Path, category: str) -> Path:
    """The split as PNG files in the MVTec layout, shared by both implementations."""
    from exdd_lab.data import load_image, load_mask

    cat = root / category
    for i, s in enumerate(ds.train):
        path = cat / "train" / "good" / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(load_image(s.image_path)).save(path, compress_level=1)
    for i, s in enumerate(ds.test):
        kind = s.defect_type
        path = cat / "test" / kind / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image = load_image(s.image_path)
        Image.fromarray(image).save(path, compress_level=1)
        if s.is_defect:
            mask = load_mask(s.mask_path, expected_hw=image.shape[:2]) if s.mask_path else np.zeros(image.shape[:2], bool)
            mpath = cat / "ground_truth" / kind / f"{i:04d}_mask.png"
            mpath.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(mpath)
    return cat


def forward_floor(ds, image_size: int) -> float:
    """Seconds for the backbone forward passes alone over every train and test image (images preloaded)."""
    from exdd_lab.data import load_image
    from exdd_lab.features import PatchFeatureExtractor

    fx = PatchFeatureExtractor()
    images = [load_image(s.image_path, image_size) for s in ds.train + ds.test]
    fx(np.stack(images[:8]))  # warm-up
    start = time.perf_counter()
    for k in range(0, len(images), 8):
        fx(np.stack(images[k : k + 8]))
    return time.perf_counter() - start


def run_exdd(cat: Path, out: Path, args) -> dict:
    env = dict(os.environ, EXDD_LAB_CACHE=str(out / "cold-cache"))  # cold cache: every feature computed
    proc = subprocess.run([sys.executable, "-m", "exdd_lab", "evaluate", "--data", str(cat), "--layout", "mvtec",
                           "--method", "patchcore", "--coreset", str(args.coreset), "--image-size", str(args.image_size),
                           "--seed", str(args.seed), "--out", str(out / "exdd")], env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"exdd_lab run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads((out / "exdd" / "metrics.json").read_text())


def run_anomalib(cat: Path, weights: str, args) -> dict:
    python = ensure_anomalib()
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576")  # without it anomalib's CPU coreset grows until OOM
    proc = subprocess.run([str(python), str(HERE / "anomalib_runner.py"), str(cat.parent), cat.name, weights,
                           "--coreset", str(args.coreset), "--image-size", str(args.image_size), "--seed", str(args.seed)],
                          env=env, capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        sys.exit(f"anomalib run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED_MTD))
    ap.add_argument("--layout", default="mtd")
    ap.add_argument("--coreset", type=float, default=0.01)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="100 training and 100 test images")
    ap.add_argument("--skip-anomalib", action="store_true", help="only exdd_lab and the forward floor")
    args = ap.parse_args()

    from exdd_lab.data import load_dataset
    from exdd_lab.features import resolve_weights

    ds = load_dataset(args.data, args.layout, seed=args.seed)
    if args.quick:
        ds = ds.subset(n_train=100, n_test=100, seed=args.seed)
    weights = resolve_weights("tf_efficientnet_lite0").path
    work = Path(tempfile.mkdtemp(prefix="exdd-vs-anomalib-"))
    cat = write_mvtec_copy(ds, work / "data", "split")
    print(f"split: {len(ds.train)} train, {len(ds.test)} test ({sum(s.is_defect for s in ds.test)} defect); "
          f"copy at {cat}", flush=True)
    floor = forward_floor(ds, args.image_size)
    print(f"backbone forward floor: {floor:.1f} s", flush=True)
    rows = {"exdd_lab": run_exdd(cat, work, args)}
    print("exdd_lab done", flush=True)
    if not args.skip_anomalib:
        rows["anomalib 2.7.0"] = run_anomalib(cat, weights, args)
    print(f"\n{'implementation':16s} {'fit s':>8s} {'predict s':>10s} {'peak RSS MB':>12s} {'image AUROC':>12s} {'pixel AUROC':>12s}")
    for name, r in rows.items():
        print(f"{name:16s} {r['fit_s']:8.1f} {r['predict_s']:10.1f} {r['peak_rss_mb']:12.0f} "
              f"{r['image_auroc']:12.4f} {r['pixel_auroc']:12.4f}")
    print(f"{'forward floor':16s} {floor:8.1f} (all train + test images, backbone only)")
    ours = rows["exdd_lab"]
    print(f"\nexdd_lab fit+predict / forward floor: {(ours['fit_s'] + ours['predict_s']) / floor:.2f}x")
    if "anomalib 2.7.0" in rows:
        theirs = rows["anomalib 2.7.0"]
        print(f"speed-up over anomalib (fit+predict): {(theirs['fit_s'] + theirs['predict_s']) / (ours['fit_s'] + ours['predict_s']):.1f}x")
        print(f"peak RSS ratio exdd_lab / anomalib: {ours['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
