"""Does the student–teacher's head transfer to real defects? Head, discrepancy and their sum on every data set.

    python benchmarks/student_teacher_transfer.py [--datasets mpdd,mtd-seed0,mtd-differnet,procedural]
                                                  [--generators ddpm,perlin,ddpm+perlin] [--n 200]
                                                  [--out runs/st-transfer/rows.jsonl] [--summary]
    python benchmarks/student_teacher_transfer.py --curve mtd-seed0:ddpm --curve-epochs 12 --curve-steps 50,150,450,900

Per data set: PatchCore (the kit's defaults) and, per training-defect generator (a mix such as ``ddpm+perlin``
takes half of its ``--n`` defects from each), the student–teacher with its default config, scored three ways on
the same test split: the head map (DeSTSeg's output), the discrepancy map (label-free) and ``sum``: both maps
standardised by their own mean and spread over the test images' grid cells and added (label-free, but it looks
at the test images, so it is a probe, not a default). Rows are appended to ``--out`` per (data set, generator);
a rerun skips what is there. ``--curve D:G`` measures the learning curve of one training instead
(:func:`exdd_lab.experiments.learning_curve.student_teacher_learning_curve`; rows to ``curve.jsonl`` beside ``--out``).
Synthetic sets, the DDPM behind them and the trainings are cached.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patchcore_fidelity import seeded_dataset  # noqa: E402

from exdd_lab.components.metric_names import HEADLINE_METRICS  # noqa: E402
from exdd_lab.evaluation.run import evaluate_prediction  # noqa: E402
from exdd_lab.experiments.learning_curve import student_teacher_learning_curve  # noqa: E402
from exdd_lab.methods import PatchCore  # noqa: E402
from exdd_lab.methods.base import Prediction  # noqa: E402
from exdd_lab.methods.student_teacher import StudentTeacher, StudentTeacherSettings  # noqa: E402
from exdd_lab.bank.scoring import anomaly_maps, top_k_mean  # noqa: E402
from exdd_lab.student_teacher import StudentTeacherConfig  # noqa: E402

METRICS = HEADLINE_METRICS


def summed_prediction(detector: StudentTeacher, prediction: Prediction) -> Prediction:
    """Head and discrepancy grids, each standardised over the test grid cells, added: one label-free combination."""
    grid = sum((g - g.mean()) / (g.std() + 1e-12) for g in (prediction.extra["head_grid"], prediction.extra["discrepancy_grid"]))
    maps = anomaly_maps(grid, detector.config.image_size, detector.settings.sigma)
    return Prediction(maps, top_k_mean(maps, detector.settings.top_k), grid)


def row(name: str, generator: str, source: str, metrics: dict, **extra) -> dict:
    return {"dataset": name, "generator": generator, "map": source, **{k: round(float(metrics[k]), 4) for k in METRICS},
            **extra}


def measure(name: str, generators: list[str], n: int, done: set, out: Path) -> None:
    todo = [g for g in generators if (name, g) not in done]
    if not todo:
        return
    seed, ds = seeded_dataset(name)
    if ds is None:
        return
    rows = []
    if (name, "none") not in done:
        patchcore = PatchCore().fit(ds.train)
        metrics, _ = evaluate_prediction(ds, patchcore.predict(ds.test), 256)
        rows.append(row(name, "none", "patchcore", metrics))
    teacher = None
    for generator in todo:
        detector = StudentTeacher(StudentTeacherConfig(seed=seed), StudentTeacherSettings(generator=generator, n_synthetic=n),
                                  teacher=teacher)
        teacher = detector.teacher
        start = time.perf_counter()
        detector.fit(ds.train, progress=True)
        fit_s = time.perf_counter() - start
        prediction = detector.predict(ds.test, progress=True)
        predictions = {**detector.alternative_predictions(prediction), "sum": summed_prediction(detector, prediction)}
        for source, alternative in predictions.items():
            metrics, _ = evaluate_prediction(ds, alternative, detector.config.image_size)
            rows.append(row(name, generator, source, metrics, steps=detector.model.step,
                            train_s=round(detector.model.seconds, 1), fit_s=round(fit_s, 1)))
    with out.open("a") as handle:
        for r in rows:
            handle.write(json.dumps(r) + "\n")
            print(json.dumps(r), flush=True)


def curve(spec: str, epochs: int, steps: list[int], n: int, out: Path) -> None:
    name, generator = spec.split(":")
    seed, ds = seeded_dataset(name)
    if ds is None:
        raise SystemExit(1)
    detector = StudentTeacher(StudentTeacherConfig(seed=seed, epochs=epochs), StudentTeacherSettings(generator=generator, n_synthetic=n))
    table = student_teacher_learning_curve(detector, ds, steps, progress=True)
    with out.open("a") as handle:
        for r in table.to_dict("records"):
            r = {"dataset": name, "generator": generator, "epochs": epochs, "total_steps": table.attrs["total_steps"],
                 **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}}
            handle.write(json.dumps(r) + "\n")
            print(json.dumps(r), flush=True)


def markdown(table: pd.DataFrame) -> str:
    """A pandas table as a Markdown table (index first), without the optional ``tabulate`` dependency."""
    table = table.reset_index()
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join("" if pd.isna(v) else str(v) for v in r) + " |" for r in table.itertuples(index=False)]
    return "\n".join(lines)


def summary(out: Path) -> None:
    rows = pd.DataFrame([json.loads(line) for line in out.read_text().splitlines() if line.strip()])
    rows["cell"] = rows["image_auroc"].map("{:.3f}".format) + " / " + rows["pixel_auroc"].map("{:.3f}".format)
    rows["column"] = np.where(rows["generator"] == "none", rows["map"], rows["generator"] + " (" + rows["map"] + ")")
    print(markdown(rows.pivot_table(index="dataset", columns="column", values="cell", aggfunc="first").T))
    curve_file = out.with_name("curve.jsonl")
    if curve_file.is_file():
        c = pd.DataFrame([json.loads(line) for line in curve_file.read_text().splitlines() if line.strip()])
        c["cell"] = c["image_auroc"].map("{:.3f}".format) + " / " + c["pixel_auroc"].map("{:.3f}".format)
        print(markdown(c.pivot_table(index=["dataset", "generator", "epochs", "step", "train_seconds"], columns="map",
                                     values="cell", aggfunc="first")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="mpdd,mtd-seed0,mtd-differnet,procedural")
    ap.add_argument("--generators", default="ddpm,perlin,ddpm+perlin")
    ap.add_argument("--n", type=int, default=StudentTeacherSettings.n_synthetic)
    ap.add_argument("--out", default="runs/st-transfer/rows.jsonl")
    ap.add_argument("--curve", default="", help="DATASET:GENERATOR: measure a learning curve instead")
    ap.add_argument("--curve-epochs", type=int, default=4 * StudentTeacherConfig.epochs)
    ap.add_argument("--curve-steps", default="25,75,150,450,900,1800")
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.summary:
        return summary(out)
    if args.curve:
        return curve(args.curve, args.curve_epochs, [int(s) for s in args.curve_steps.split(",")], args.n,
                     out.with_name("curve.jsonl"))
    done = set()
    if out.is_file():
        done = {(r["dataset"], r["generator"]) for r in map(json.loads, out.read_text().splitlines()) if r}
    for name in args.datasets.split(","):
        measure(name, args.generators.split(","), args.n, done, out)


if __name__ == "__main__":
    main()
