"""The student–teacher's learning curve: one training run, both of its maps measured at chosen steps.

It shows where a CPU run sits: how far the head and the discrepancy have come at the kit's budget and
whether more steps would still help. The learning rate follows the cosine of the whole run
(``config.epochs``), so the point at step ``s`` is *this run at step s*, not a shorter run that had
finished its own schedule. Each measured point is kept next to the run's checkpoints (``curve.json``,
written atomically), so a re-run measures only the steps that are missing.
Taught in ``notebooks/05_student_teacher.ipynb``.
"""
from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd

from exdd_lab.components.metric_names import RANKING_METRICS
from exdd_lab.data.records import DefectDataset
from exdd_lab.errors import ExddError
from exdd_lab.evaluation.run import evaluate_prediction
from exdd_lab.methods.student_teacher import StudentTeacher
from exdd_lab.storage import atomic_write_json
from exdd_lab.student_teacher.training import (
    build_training_data, checkpointer, total_steps, train_student_teacher, training_image_count,
)

CURVE_FILE = "curve.json"


def _measure(detector: StudentTeacher, dataset: DefectDataset, step: int, progress: bool) -> list[dict]:
    prediction = detector.predict(dataset.test, progress=progress, keep_maps=False)
    rows = []
    for source, alternative in detector.alternative_predictions(prediction).items():
        metrics, _ = evaluate_prediction(dataset, alternative, detector.config.image_size)
        rows.append({"step": step, "map": source, **{k: float(metrics[k]) for k in RANKING_METRICS},
                     "train_seconds": round(detector.model.seconds, 1)})
    return rows


def student_teacher_learning_curve(detector: StudentTeacher, dataset: DefectDataset, steps: Sequence[int],
                                   progress: bool = False) -> pd.DataFrame:
    """Train ``detector``'s configuration on ``dataset.train`` and measure both maps on ``dataset.test`` at ``steps``.

    Steps beyond the configured run (``config.epochs``) are clipped to its end. Returns one row per step and
    map (``head``, ``discrepancy``) with image AUROC, pixel AUROC, AUPRO and the training seconds so far.
    ``detector`` itself is left as it was (a copy trains).
    """
    if not steps:
        raise ExddError("no steps to measure the learning curve at", "pass e.g. steps=[50, 150, 450]")
    if not dataset.test:
        raise ExddError(f"dataset {dataset.name} has no test images to measure the learning curve on",
                        "use a split with a test set")
    run = copy.copy(detector)
    defects = run.training_defects(dataset.train, progress)
    total = total_steps(run.config, training_image_count(dataset.train, defects))
    wanted = sorted({min(int(s), total) for s in steps})
    if wanted[0] < 1:
        raise ExddError(f"learning-curve steps must be positive, got {sorted(steps)}", "e.g. steps=[50, 150, 450]")
    scratch = None if run.settings.cache else tempfile.mkdtemp(prefix="st-curve-")
    folder = Path(scratch) if scratch else run.cache_folder(dataset.train, defects) / "learning-curve"
    record = folder / CURVE_FILE
    rows = json.loads(record.read_text()) if record.is_file() else []
    try:
        data = None
        for step in wanted:
            if any(r["step"] == step for r in rows):
                continue
            if checkpointer(folder).latest_step() > step:  # a later checkpoint cannot go back: train again from step 0
                checkpointer(folder).clear()
            if data is None:
                data = build_training_data(dataset.train, defects, run.teacher, run.config.image_size, progress)
            run.model = train_student_teacher(data, run.teacher, run.config, folder, progress=progress, stop_after=step)
            rows = [r for r in rows if r["step"] != step] + _measure(run, dataset, step, progress)
            atomic_write_json(record, sorted(rows, key=lambda r: (r["step"], r["map"])))
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    table = pd.DataFrame(rows, columns=["step", "map", *RANKING_METRICS, "train_seconds"])
    table = table[table["step"].isin(wanted)].sort_values(["step", "map"]).reset_index(drop=True)
    table.attrs["total_steps"] = total
    return table
