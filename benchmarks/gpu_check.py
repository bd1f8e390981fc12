"""GPU path of the synthesis code: DDPM training and generation on CUDA, the inpainting pipeline in fp16.

    python benchmarks/gpu_check.py [--steps 300] [--n 20]

Uses the procedural default (no data needed) and the tiny random inpainting pipeline (no weights
needed). Prints seconds per training step, per generated defect, and checks that defects made on the
GPU keep their masks exact. Exits non-zero when no GPU is visible.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from exdd_lab.data import load_dataset, load_image
from exdd_lab.synthesis import (
    DdpmConfig, DdpmDefectGenerator, InpaintingDefectGenerator, InpaintSettings, build_tiny_inpainting_pipeline,
    load_inpainting_pipeline, synthesize, train_ddpm,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device visible")
        return 1
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    ds = load_dataset("procedural", seed=0)
    work = Path(tempfile.mkdtemp())
    for config in (DdpmConfig(train_steps=args.steps), DdpmConfig(train_steps=args.steps, resolution=64, batch_size=64,
                                                                    block_out_channels=(32, 64, 128))):
        folder = work / f"ddpm-{config.resolution}-{config.batch_size}"
        model = train_ddpm([s.image_path for s in ds.train], folder, config, device="cuda", progress=False)
        assert model.device.type == "cuda"
        start = time.perf_counter()
        defects = synthesize(ds.train, DdpmDefectGenerator(model), args.n, seed=0)
        per = (time.perf_counter() - start) / args.n
        exact = all(np.array_equal(d.image[~d.mask], load_image(d.source, 256)[~d.mask]) for d in defects)
        print(f"DDPM {config.block_out_channels} crops {config.resolution} px x {config.batch_size}: "
              f"{model.seconds / model.step * 1000:.1f} ms/step, loss {np.mean(model.losses[-20:]):.4f}; "
              f"{per:.3f} s/defect; masks exact: {exact}")
    pipe = load_inpainting_pipeline(build_tiny_inpainting_pipeline(work / "tiny"))
    print(f"inpainting pipeline on {pipe.device}, dtype {pipe.unet.dtype}")
    gen = InpaintingDefectGenerator(pipe, InpaintSettings())
    start = time.perf_counter()
    defects = synthesize(ds.train, gen, 5, seed=0)
    print(f"tiny inpainting, ExDD settings (30 steps, 512 px): {(time.perf_counter() - start) / 5:.3f} s/defect, "
          f"prompts {sorted({d.params['prompt'] for d in defects})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
