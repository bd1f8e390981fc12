"""Do exported detectors score like PyTorch? Features, scores and metrics of ONNX Runtime / OpenVINO vs torch.

    python benchmarks/export_fidelity.py [--datasets procedural,mtd-seed0,mtd-differnet,mpdd] [--methods patchcore]
                                         [--out benchmarks/results/export_fidelity.jsonl]

For each data set: PatchCore with the kit's defaults (default backbone, its packaged ImageNet weights, 256 px) is
fitted on the training split (seeded by the data set), saved, and exported both as ONNX and as OpenVINO IR
(``exdd_lab.export.writer.export_detector``). Then every test image goes through the PyTorch detector and through each
(export format, runtime) pair — ONNX in ONNX Runtime, ONNX in OpenVINO, IR in OpenVINO — and the script reports:

- the largest per-image relative feature difference ``||exported - torch|| / ||torch||`` (issue target 1e-4);
- the largest relative image-score difference (target 1e-4);
- image AUROC, pixel AUROC and AUPRO of both, and whether they agree to 3 decimals.

``--methods exdd`` adds ExDD (100 Perlin defects in the positive bank). One row per (data set, method, pair).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from patchcore_fidelity import seeded_dataset

from exdd_lab.data.imageio import load_image
from exdd_lab.evaluation.run import evaluate_prediction
from exdd_lab.export.writer import export_detector, relative_errors
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
from exdd_lab.methods.registry import load_detector

RESULTS = Path(__file__).resolve().parent / "results" / "export_fidelity.jsonl"
PAIRS = (("onnx", "onnx"), ("onnx", "openvino"), ("openvino", "openvino"))
METRICS = ("image_auroc", "pixel_auroc", "aupro")


def fitted(method: str, ds, seed: int, folder: Path) -> Path:
    if method == "patchcore":
        PatchCore(FeatureConfig(), PatchCoreSettings(seed=seed)).fit(ds.train).save(folder)
    elif method == "exdd":
        from exdd_lab.methods.exdd.detector import ExDD, ExddSettings
        from exdd_lab.synthesis import cached_defect_set

        defects = list(cached_defect_set(ds.train, "perlin", 100, seed=seed, image_size=256).test)
        ExDD(FeatureConfig(), ExddSettings(seed=seed), defects=defects).fit(ds.train).save(folder)
    else:
        raise SystemExit(f"unknown method {method!r}: patchcore, exdd")
    return folder


def feature_errors(reference, exported, paths, size: int, batch: int = 16) -> np.ndarray:
    """Per test image, the relative difference of the exported front-end's features from PyTorch's."""
    errors = []
    for i in range(0, len(paths), batch):
        images = np.stack([load_image(p, size) for p in paths[i : i + batch]])
        with torch.no_grad():
            want = reference.extractor(images).numpy()
        errors.append(relative_errors(exported.extractor(images).numpy(), want))
    return np.concatenate(errors)


def measure(name: str, method: str, root: Path) -> list[dict]:
    seed, ds = seeded_dataset(name)
    if ds is None:
        return []
    start = time.perf_counter()
    saved = fitted(method, ds, seed, root / f"{name}-{method}")
    exports = {fmt: export_detector(saved, fmt, root / f"{name}-{method}-{fmt}") for fmt in ("onnx", "openvino")}
    reference = load_detector(saved)
    size = reference.extractor.config.image_size
    ref_pred = reference.predict(ds.test)
    ref_metrics, _ = evaluate_prediction(ds, ref_pred, size)
    paths = [s.image_path for s in ds.test]
    rows = []
    for fmt, runtime in PAIRS:
        exported = load_detector(exports[fmt], runtime=runtime)
        errors = feature_errors(reference, exported, paths, size)
        pred = exported.predict(ds.test)
        metrics, _ = evaluate_prediction(ds, pred, size)
        score_rel = np.abs(pred.scores - ref_pred.scores) / np.maximum(np.abs(ref_pred.scores), 1e-12)
        row = {"dataset": name, "method": method, "seed": seed, "format": fmt, "runtime": runtime,
               "n_test": len(ds.test), "feature_rel_max": float(errors.max()), "feature_rel_median": float(np.median(errors)),
               "score_rel_max": float(score_rel.max()),
               **{f"torch_{k}": float(ref_metrics[k]) for k in METRICS},
               **{f"exported_{k}": float(metrics[k]) for k in METRICS},
               "equal_to_3_decimals": all(round(metrics[k], 3) == round(ref_metrics[k], 3) for k in METRICS),
               "export_fidelity_at_export": json.loads((exports[fmt] / "export.json").read_text())[
                   "fidelity_at_export"]["max_relative_error"],
               "seconds": round(time.perf_counter() - start, 1)}
        rows.append(row)
        print(f"{name} {method} {fmt}->{runtime}: features {row['feature_rel_max']:.2e}, scores {row['score_rel_max']:.2e}, "
              + ", ".join(f"{k} {ref_metrics[k]:.4f}/{metrics[k]:.4f}" for k in METRICS), flush=True)
    return rows


def summary(rows: list[dict]) -> None:
    print("\n| data set | method | test images | export → runtime | max feature diff | max score diff "
          "| image AUROC torch / exported | pixel AUROC | AUPRO | equal to 3 decimals |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['method']} | {r['n_test']} | {r['format']} → {r['runtime']} | "
              f"{r['feature_rel_max']:.1e} | {r['score_rel_max']:.1e} | "
              + " | ".join(f"{r['torch_' + k]:.4f} / {r['exported_' + k]:.4f}" for k in METRICS)
              + f" | {'yes' if r['equal_to_3_decimals'] else '**no**'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="procedural,mtd-seed0,mtd-differnet,mpdd")
    ap.add_argument("--methods", default="patchcore")
    ap.add_argument("--out", default=str(RESULTS), help="JSON lines, appended")
    ap.add_argument("--summary", action="store_true", help="print the table of rows already in --out, measure nothing")
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.summary:
        summary([json.loads(line) for line in out.read_text().splitlines()])
        return
    os.environ.setdefault("EXDD_LAB_CACHE", tempfile.mkdtemp(prefix="exdd-bench-"))  # cold cache: no stale features
    rows = []
    with tempfile.TemporaryDirectory(prefix="exdd-export-fidelity-") as tmp:
        for name in args.datasets.split(","):
            for method in args.methods.split(","):
                for row in measure(name, method, Path(tmp)):
                    rows.append(row)
                    with out.open("a") as handle:
                        handle.write(json.dumps(row) + "\n")
    summary(rows)


if __name__ == "__main__":
    main()
