"""Is an int8 front-end worth offering? Post-training quantisation of the ONNX export, its speed and AUROC change.

    python benchmarks/export_int8.py [--datasets mtd-seed0,mpdd] [--calibration 32] [--n 64] [--batch 8] [--repeats 3]
                                     [--out benchmarks/results/export_int8.jsonl]

For each data set: PatchCore (defaults, 256 px) fitted on the training split and exported as ONNX; the graph is
quantised statically with ONNX Runtime (QDQ, int8 weights per channel, uint8 activations), calibrated on
``--calibration`` training normals (never test images). Both graphs run in ONNX Runtime on the same detector (same
bank): image AUROC, pixel AUROC and AUPRO of each, and forward throughput (``--n`` seeded images, ``--batch``).
The kit offers int8 only if every metric moves by at most 0.003 on MTD and on MPDD (issue 29).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from export_speed import throughput
from patchcore_fidelity import seeded_dataset

from exdd_lab.data.imageio import load_image
from exdd_lab.evaluation.run import evaluate_prediction
from exdd_lab.export.writer import export_detector
from exdd_lab.export.runtime import RuntimeFrontEnd, read_manifest
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
from exdd_lab.methods.registry import load_detector

RESULTS = Path(__file__).resolve().parent / "results" / "export_int8.jsonl"
METRICS = ("image_auroc", "pixel_auroc", "aupro")
LIMIT = 0.003


def quantize(folder: Path, calibration: np.ndarray) -> str:
    """Write ``frontend-int8.onnx`` beside the export's ``frontend.onnx``, calibrated on ``calibration`` images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static

    class Normals(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"images": calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.batches, None)

    prepared = folder / "frontend-prep.onnx"
    quant_pre_process(str(folder / "frontend.onnx"), str(prepared))
    quantize_static(str(prepared), str(folder / "frontend-int8.onnx"), Normals(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return "frontend-int8.onnx"


def measure(name: str, args, root: Path) -> dict | None:
    seed, ds = seeded_dataset(name)
    if ds is None:
        return None
    saved = PatchCore(FeatureConfig(), PatchCoreSettings(seed=seed)).fit(ds.train).save(root / name)
    export = export_detector(saved, "onnx", root / f"{name}-onnx")
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(ds.train), size=min(args.calibration, len(ds.train)), replace=False)
    calibration = np.stack([load_image(ds.train[i].image_path, 256) for i in sorted(picked)])
    start = time.perf_counter()
    int8_graph = quantize(export, calibration)
    quantize_s = time.perf_counter() - start
    fp32 = load_detector(export, runtime="onnx")
    int8 = load_detector(export, runtime="onnx")
    int8.extractor = RuntimeFrontEnd(export, {**read_manifest(export), "graph": int8_graph}, "onnx")
    images = np.random.default_rng(args.seed).integers(0, 256, (args.n, 256, 256, 3), dtype=np.uint8)
    row = {"dataset": name, "seed": seed, "n_test": len(ds.test), "calibration_images": len(calibration),
           "quantize_s": round(quantize_s, 1)}
    for label, detector in (("fp32", fp32), ("int8", int8)):
        metrics, _ = evaluate_prediction(ds, detector.predict(ds.test), 256)
        row.update({f"{label}_{k}": float(metrics[k]) for k in METRICS})
        row[f"{label}_images_per_s"] = throughput(detector.extractor, images, args.batch, args.repeats)
    row["largest_change"] = max(abs(row[f"int8_{k}"] - row[f"fp32_{k}"]) for k in METRICS)
    row["within_limit"] = row["largest_change"] <= LIMIT
    row["speedup"] = row["int8_images_per_s"] / row["fp32_images_per_s"]
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="mtd-seed0,mpdd")
    ap.add_argument("--calibration", type=int, default=32)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    os.environ.setdefault("EXDD_LAB_CACHE", tempfile.mkdtemp(prefix="exdd-bench-"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="exdd-int8-") as tmp:
        for name in args.datasets.split(","):
            row = measure(name, args, Path(tmp))
            if row:
                rows.append(row)
                with out.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
    print("\n| data set | " + " | ".join(f"{k} fp32 → int8" for k in METRICS) + " | largest change | int8 speed vs fp32 ORT |")
    print("|---|" + "---|" * (len(METRICS) + 2))
    for r in rows:
        print(f"| {r['dataset']} | " + " | ".join(f"{r['fp32_' + k]:.4f} → {r['int8_' + k]:.4f}" for k in METRICS)
              + f" | {r['largest_change']:.4f} ({'within' if r['within_limit'] else 'over'} {LIMIT}) | {r['speedup']:.2f}× |")


if __name__ == "__main__":
    main()
