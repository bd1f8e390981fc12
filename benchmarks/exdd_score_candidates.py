"""The candidate dual-bank scores measured before the gated score became ExDD's default.

    python benchmarks/exdd_score_candidates.py --dataset mtd-seed0 [--generator ddpm|perlin] [--n 100]
                                               [--real 0,5,10,20] [--out runs/exdd-candidates]

One negative bank; for each K in ``--real`` one positive bank (``--n`` synthetic defects + K real ones, no
purification) and one prediction whose distance grids are saved; then every candidate is scored from the
saved grids on the same test split (the largest K moved out of it for every row), image score = largest
patch score. Candidates: ExDD's published ratio (plain, neighbourhood-aware), the ratio with ``eps`` set from
data (median of the training normals' ``d_pos``), the ratio on a purified bank (defect patches with ``d_neg``
at or below the typical worst normal patch dropped), and ``d_neg * (1 + closeness)`` with and without a gate on
``d_neg``, for several gate quantiles (of the training images' worst patch) and closeness quantiles (of the
training normals' ``d_pos``). Rows go to ``OUT/<dataset>-<generator>.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patchcore_fidelity import dataset_by_name  # noqa: E402

from exdd_lab.components.metric_names import RANKING_METRICS  # noqa: E402
from exdd_lab.evaluation.run import evaluate_prediction  # noqa: E402
from exdd_lab.features import extract_features  # noqa: E402
from exdd_lab.bank.memory import MemoryBank  # noqa: E402
from exdd_lab.methods.base import Prediction  # noqa: E402
from exdd_lab.methods.exdd.detector import ExDD, ExddSettings  # noqa: E402
from exdd_lab.methods.exdd.ratio import ratio_scores  # noqa: E402
from exdd_lab.bank.scoring import anomaly_maps, max_patch_score  # noqa: E402
from exdd_lab.seeding import seed_everything  # noqa: E402
from exdd_lab.synthesis import cached_defect_set  # noqa: E402


def candidates(grids: dict, train_worst: np.ndarray, dp_normal: np.ndarray) -> dict[str, np.ndarray]:
    """Every candidate's patch-score grid from one prediction's grids and the training normals' statistics."""
    dn, dp, wn, wp = (grids[k].astype(np.float64) for k in ("d_neg", "d_pos", "w_neg", "w_pos"))
    q = lambda p: float(np.quantile(dp_normal, p))  # noqa: E731
    boost = lambda c: dn * (1 + np.clip(1 - dp / q(c), 0, 1))  # noqa: E731
    out = {"patchcore": dn, "ratio": ratio_scores(dn, dp, 1e-3), "ratio_na": ratio_scores(wn * dn, wp * dp, 1e-3),
           "ratio_eps_median": ratio_scores(dn, dp, q(0.5)), "boost_c10_ungated": boost(0.10)}
    for g in (0.5, 0.75, 0.9):
        gate = float(np.quantile(train_worst, g))
        for c in (0.01, 0.05, 0.10):
            out[f"gated_g{int(g * 100)}_c{int(c * 100)}"] = np.where(dn > gate, boost(c), dn)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="procedural, mtd-seedN, mtd-differnet, mpdd")
    ap.add_argument("--generator", default="ddpm", choices=("perlin", "ddpm"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--real", default="0,5,10,20")
    ap.add_argument("--out", type=Path, default=Path("runs/exdd-candidates"))
    args = ap.parse_args()
    seed = int(args.dataset.removeprefix("mtd-seed")) if args.dataset.startswith("mtd-seed") else 0
    seed_everything(seed)
    ds = dataset_by_name(args.dataset, seed)
    if ds is None:
        raise SystemExit(f"{args.dataset}: data folder absent")
    reals = sorted({0, *(int(k) for k in args.real.split(","))})
    synthetic = cached_defect_set(ds.train, args.generator, args.n, seed=seed, progress=True).test
    evaluated, real = ds.with_training_defects(max(reals), seed=seed)
    det = ExDD(settings=ExddSettings(seed=seed, purify_positive=False)).fit_negative(ds.train)
    size = det.extractor.config.image_size
    train_worst = max_patch_score(det.predict_negative(ds.train))
    gate = float(np.median(train_worst))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{args.dataset}-{args.generator}.jsonl"
    for k in reals:
        for purify in (False, True):
            det.refit_positive(list(synthetic) + list(real[:k]))
            if purify:  # drop bank items no more unusual than the typical worst normal patch
                d = det.negative.search(det.positive.items, 1)[0][:, 0]
                keep = d > gate
                keep[np.argmax(d)] = True
                det.positive = MemoryBank(det.extractor.feature_dim, dict(det.feature_metadata(), bank="positive")).add(
                    det.positive.items[torch.from_numpy(keep)])
                det._support.pop("positive", None)
            grids = det.predict(evaluated.test, keep_maps=False).extra
            feats = extract_features(det.extractor, det.calibration_paths(), 8)
            dp_normal = det.positive.search(feats.reshape(-1, feats.shape[-1]), 1)[0][:, 0]
            for name, grid in candidates(grids, train_worst, dp_normal).items():
                if (name == "patchcore" and (k or purify)) or (purify and not name.startswith("ratio")):
                    continue
                grid = grid.astype(np.float32)
                m, _ = evaluate_prediction(evaluated, Prediction(anomaly_maps(grid, size, 4.0), max_patch_score(grid), grid), size)
                row = {"dataset": args.dataset, "generator": args.generator, "real": k, "purified": purify, "candidate": name,
                       **{key: round(float(m[key]), 4) for key in RANKING_METRICS},
                       "positive_patches": len(det.positive)}
                with out.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
