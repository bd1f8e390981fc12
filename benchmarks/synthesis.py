"""Defect synthesis: DDPM training and generation speed, and how defect-like each generator's output is.

    python benchmarks/synthesis.py [--data ../shared/data/mtd --layout mtd] [--n 100] [--ddpm-steps 2500]
                                   [--ldm-dir DIR | --ldm-n 10] [--seed 0] [--quick]

Trains the DDPM on the training normals (or reuses the cached one: its checkpoint records the training
seconds, so the numbers stay those of the real training), makes ``--n``
defects with the Perlin blend and with the DDPM, ``--ldm-n`` with the inpainting pipeline in ``--ldm-dir``
(default: the tiny random pipeline, code path only), and prints: seconds per training step, total
training time, seconds per defect, time for ``--n`` defects, training + ``--n`` defects against the
15-minute target, and the defect-likeness table against the real test defects (never trained on).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from exdd_lab.data import load_dataset
from exdd_lab.features import PatchFeatureExtractor
from exdd_lab.seeding import seed_everything
from exdd_lab.synthesis import (
    DdpmConfig, DdpmDefectGenerator, PerlinBlendGenerator, build_tiny_inpainting_pipeline, defect_likeness,
    InpaintingDefectGenerator, InpaintSettings, load_inpainting_pipeline, mask_area_statistics, synthesize,
    train_or_load_ddpm,
)

SHARED_MTD = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtd"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED_MTD) if SHARED_MTD.is_dir() else "procedural")
    ap.add_argument("--layout", default="mtd" if SHARED_MTD.is_dir() else "procedural")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--ddpm-steps", type=int, default=DdpmConfig().train_steps)
    ap.add_argument("--ldm-dir", default=None, help="a local inpainting pipeline folder (default: the tiny random one)")
    ap.add_argument("--ldm-n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="200 training steps, 10 defects each")
    args = ap.parse_args()
    if args.quick:
        args.ddpm_steps, args.n, args.ldm_n = 200, 10, 2
    seed_everything(args.seed)
    ds = load_dataset(args.data, args.layout, seed=args.seed)
    print(f"data: {ds!r}")
    work = Path(tempfile.mkdtemp(prefix="exdd-synthesis-bench-"))
    timings: dict[str, float] = {}
    try:
        config = DdpmConfig(train_steps=args.ddpm_steps, seed=args.seed)
        model = train_or_load_ddpm([s.image_path for s in ds.train], config, progress=True)
        timings["ddpm training s (as recorded in the checkpoint)"] = model.seconds
        timings["ddpm s per step"] = model.seconds / max(1, model.step)
        tiny = args.ldm_dir is None
        pipe = load_inpainting_pipeline(args.ldm_dir or build_tiny_inpainting_pipeline(work / "tiny-ldm"))
        generators = {
            "perlin": (PerlinBlendGenerator([s.image_path for s in ds.train]), args.n),
            "ddpm": (DdpmDefectGenerator(model), args.n),
            "ldm (tiny random)" if tiny else "ldm": (InpaintingDefectGenerator(pipe, InpaintSettings(size=256) if tiny else None), args.ldm_n),
        }
        sets, areas = {}, {}  # in memory: the quality table reads defects directly
        for name, (gen, n) in generators.items():
            start = time.perf_counter()
            defects = synthesize(ds.train, gen, n, seed=args.seed, progress=True)
            secs = time.perf_counter() - start
            timings[f"{name}: s per defect"] = secs / n
            timings[f"{name}: {n} defects s"] = secs
            areas[name] = mask_area_statistics([d.mask for d in defects])["area_median"]
            sets[name] = defects
        timings["ddpm training + 100 defects s (target <= 900)"] = (
            model.seconds + 100 * timings["ddpm: s per defect"])
        print("\n" + "\n".join(f"{k:50s} {v:10.3f}" for k, v in timings.items()))
        table = defect_likeness(PatchFeatureExtractor(), sets, [s for s in ds.test if s.is_defect], ds.train, seed=args.seed)
        table["median mask area"] = [areas.get(name, np.nan) for name in table.index]
        print("\ndefect-likeness in the backbone's feature space (real defects of the test split, never trained on):")
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
