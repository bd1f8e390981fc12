"""The student-teacher on one split: training time, head and discrepancy maps, DDPM vs Perlin training defects.

    python benchmarks/student_teacher.py [--data ../shared/data/mtd --layout mtd] [--generators ddpm,perlin]
                                         [--epochs 10] [--n 200] [--seed 0] [--quick] [--no-cache]

For each generator: the synthetic set (made once and cached), the training (timed; ``--no-cache`` retrains
even when a finished training of this config is cached), prediction time on the test split, and image
AUROC, pixel AUROC, AUPRO and F1 of the head map and of the discrepancy map (image score: mean of the
top-100 pixels). Peak memory of the process is printed at the end.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from exdd_lab.data import load_dataset
from exdd_lab.evaluation.run import evaluate_prediction, peak_rss_mb
from exdd_lab.methods.student_teacher import StudentTeacher, StudentTeacherSettings
from exdd_lab.seeding import seed_everything
from exdd_lab.student_teacher import StudentTeacherConfig

SHARED_MTD = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtd"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED_MTD) if SHARED_MTD.is_dir() else "procedural")
    ap.add_argument("--layout", default="mtd" if SHARED_MTD.is_dir() else "procedural")
    ap.add_argument("--generators", default="ddpm,perlin")
    ap.add_argument("--epochs", type=int, default=StudentTeacherConfig.epochs)
    ap.add_argument("--n", type=int, default=StudentTeacherSettings.n_synthetic)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="100 training, ~100 test images, 20 defects, 2 epochs")
    ap.add_argument("--no-cache", action="store_true", help="train even if this training is cached")
    args = ap.parse_args()
    seed_everything(args.seed)
    ds = load_dataset(args.data, args.layout, seed=args.seed)
    if args.quick:
        ds = ds.subset(n_train=100, n_test=100, seed=args.seed)
        args.n, args.epochs = min(args.n, 20), min(args.epochs, 2)
    print(f"data: {ds!r}")
    rows, teacher = {}, None
    for generator in args.generators.split(","):
        detector = StudentTeacher(StudentTeacherConfig(epochs=args.epochs, seed=args.seed),
                                  StudentTeacherSettings(generator=generator, n_synthetic=args.n, cache=not args.no_cache),
                                  teacher=teacher)
        teacher = detector.teacher
        start = time.perf_counter()
        detector.training_defects(ds.train, progress=True)
        defects_s = time.perf_counter() - start
        start = time.perf_counter()
        detector.fit(ds.train, progress=True)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        prediction = detector.predict(ds.test, progress=True)
        predict_s = time.perf_counter() - start
        for source, alternative in detector.alternative_predictions(prediction).items():
            metrics, _ = evaluate_prediction(ds, alternative, detector.config.image_size)
            rows[f"{generator} ({source})"] = {
                **{k: round(metrics[k], 4) for k in ("image_auroc", "pixel_auroc", "aupro", "f1_max")},
                "defects_s": round(defects_s, 1), "fit_s": round(fit_s, 1), "train_s": round(detector.model.seconds, 1),
                "steps": detector.model.step, "predict_s": round(predict_s, 1)}
        print(f"{generator}: {detector.model.step} steps, training {detector.model.seconds:.1f} s "
              f"({detector.model.seconds / max(detector.model.step, 1):.2f} s/step), fit {fit_s:.1f} s incl. teacher features; "
              f"predict {len(ds.test)} images {predict_s:.1f} s")
    print(pd.DataFrame(rows).T.to_string())
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
