"""Which student converges on a CPU? Student–teacher designs screened by learning curve, then compared with PatchCore.

    python benchmarks/student_teacher_designs.py curve [--dataset mtd-seed0] [--designs reverse,reverse-normal]
                                                      [--steps 100,300,600,1200] [--out benchmarks/results/student_teacher_designs]
    python benchmarks/student_teacher_designs.py compare [--datasets mtd-seed0,mtd-differnet,mpdd,procedural]
                                                        [--designs image-encoder,reverse] [--out benchmarks/results/student_teacher_designs]
    python benchmarks/student_teacher_designs.py screen [--dataset mtd-seed0] [--variants 'L34:{"teacher_layers": [3, 4]}']
    python benchmarks/student_teacher_designs.py judge [--datasets ...] [--candidates '2,3;3,4'] [--judge-steps 600]
    python benchmarks/student_teacher_designs.py summary [--out benchmarks/results/student_teacher_designs]

``curve``: one training per design on the data set's training normals (+ its cached DDPM defects), both maps (the
segmentation head and the label-free discrepancy) measured on the test split at ``--steps`` (image AUROC, pixel
AUROC, AUPRO, training seconds so far: a learning curve in wall-clock time). The learning rate follows the
cosine of the design's whole run, so the point at step s is that run at step s.
``compare``: per data set, PatchCore (the kit's defaults) and each design's finished training, both maps, with the
kit's paired tests against PatchCore (DeLong for image AUROC, paired bootstrap for the pixel metrics); the head
row also holds ``*_vs_discrepancy``: head minus discrepancy of the same training, [difference, low, high, p].
``screen``: the quick first pass that chose the design: reverse-distillation variants (``NAME:{config fields}`` on
top of reverse on strides 8 and 16, 16 epochs of batch 16, stopped at ``steps`` if given, else 600), the test split's
teacher maps computed once, three discrepancy maps per training (the mean over scales, the coarsest scale alone,
the mean over scales of the 3 x 3-averaged maps, and that mean with each scale first divided by its 0.99 quantile
over the training normals' cells); image score = the largest cell (not the detector's top-k).
``judge``: can the teacher's scales be chosen without test labels? (``scale_judge.py``: a quarter of the normals
and the DDPM defects made from them held out, 600 steps of the reverse design per candidate, the held-out images'
pixel AUROC as the judge); beside each judge (also Perlin blends on the held-out normals, the synthetic image AUROC,
the held-out normals' discrepancy over the training normals') the same short model's real test metrics.
``screen`` variants whose name holds ``max`` add the largest of the scales' maps instead of their mean.
Rows are JSON lines in ``--out`` (``screen.jsonl``, ``curve.jsonl``, ``compare.jsonl``, ``judge.jsonl``); a rerun skips what is there. Trainings
and synthetic sets are cached. Seeds: each data set's own (``patchcore_fidelity.seeded_dataset``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patchcore_fidelity import seeded_dataset  # noqa: E402

from exdd_lab.components.metric_names import HEADLINE_METRICS  # noqa: E402
from exdd_lab.evaluation.run import evaluate_prediction, paired_table  # noqa: E402
from exdd_lab.experiments.learning_curve import student_teacher_learning_curve  # noqa: E402
from exdd_lab.methods import PatchCore  # noqa: E402
from exdd_lab.methods.student_teacher import StudentTeacher, StudentTeacherSettings  # noqa: E402
from exdd_lab.student_teacher import StudentTeacherConfig  # noqa: E402
from exdd_lab.student_teacher.designs import DESIGNS as PACKAGE_DESIGNS, design_fields  # noqa: E402

#: name -> (StudentTeacherConfig fields, StudentTeacherSettings fields) on top of the defaults: the package's designs
#: (exdd_lab.student_teacher.designs, what --design picks) and the screen's other candidates.
DESIGNS: dict[str, tuple[dict, dict]] = {
    **{name: (design_fields(name), {}) for name in PACKAGE_DESIGNS},
    # reverse distillation on the teacher's strides 8 and 16 (denoising: half of each batch DDPM-made defects)
    "reverse-s8": ({"student": "reverse", "student_width": 64, "bottleneck": 128, "epochs": 40, "batch_size": 16}, {}),
    "reverse-s8-normal": ({"student": "reverse", "student_width": 64, "bottleneck": 128, "epochs": 40, "batch_size": 16,
                           "defect_fraction": 0.0}, {}),
    # the chosen design trained on normals only (no synthetic defects in its batches: the head learns nothing)
    "reverse-normal": ({**design_fields("reverse"), "defect_fraction": 0.0}, {}),
    # the chosen design with 3x its epochs (about 10 minutes on MTD seed 0: inside the 15-minute budget)
    "reverse-long": ({**design_fields("reverse"), "epochs": 192}, {}),
    # the chosen design with twice its epochs (about 6 minutes on MTD seed 0): the candidate default budget
    "reverse-e128": ({**design_fields("reverse"), "epochs": 128}, {}),
    # the chosen design on the image student's strides 8 and 16 (what MPDD and the procedural screen preferred)
    "reverse-s8-3x3": ({**design_fields("reverse"), "teacher_layers": (2, 3)}, {}),
    # the chosen design trained on each generator's defects (issue 38, item 2: does the head earn its supervision?);
    # reverse-ddpm is the default (the same cached training as "reverse"), named for the head-against-discrepancy rows
    "reverse-ddpm": (design_fields("reverse"), {}),
    "reverse-perlin": (design_fields("reverse"), {"generator": "perlin"}),
    "reverse-mixed": (design_fields("reverse"), {"generator": "ddpm+perlin"}),
}


def detector_for(design: str, seed: int) -> StudentTeacher:
    if design not in DESIGNS:
        raise SystemExit(f"unknown design {design!r}: {', '.join(DESIGNS)}")
    config, settings = DESIGNS[design]
    return StudentTeacher(StudentTeacherConfig(**{**config, "seed": seed}), StudentTeacherSettings(**settings))


def done_keys(file: Path, *fields: str) -> set:
    if not file.is_file():
        return set()
    return {tuple(json.loads(line)[f] for f in fields) for line in file.read_text().splitlines() if line.strip()}


def append(file: Path, rows: list[dict]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("a") as handle:
        for r in rows:
            handle.write(json.dumps(r) + "\n")
            print(json.dumps(r), flush=True)


def curve(dataset: str, designs: list[str], steps: list[int], out: Path) -> None:
    seed, ds = seeded_dataset(dataset)
    if ds is None:
        raise SystemExit(f"{dataset} is not here")
    file = out / "curve.jsonl"
    for design in designs:
        if (dataset, design) in done_keys(file, "dataset", "design"):
            continue
        table = student_teacher_learning_curve(detector_for(design, seed), ds, steps, progress=True)
        append(file, [{"dataset": dataset, "design": design, "total_steps": table.attrs["total_steps"],
                       **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}}
                      for r in table.to_dict("records")])


def compare(datasets: list[str], designs: list[str], out: Path) -> None:
    file = out / "compare.jsonl"
    for dataset in datasets:
        todo = [d for d in designs if (dataset, d) not in done_keys(file, "dataset", "design")]
        if not todo:
            continue
        seed, ds = seeded_dataset(dataset)
        if ds is None:
            print(f"{dataset}: not here, skipped", flush=True)
            continue
        start = time.perf_counter()
        baseline = PatchCore().fit(ds.train)
        patchcore_fit_s = time.perf_counter() - start
        predictions = {"patchcore": baseline.predict(ds.test)}
        rows = []
        for design in todo:
            detector = detector_for(design, seed)
            start = time.perf_counter()
            detector.fit(ds.train, progress=True)
            fit_s = time.perf_counter() - start
            for source, prediction in detector.alternative_predictions(detector.predict(ds.test, progress=True)).items():
                predictions[f"{design}:{source}"] = prediction
                metrics, _ = evaluate_prediction(ds, prediction, detector.config.image_size)
                rows.append({"dataset": dataset, "design": design, "map": source,
                             **{k: round(float(metrics[k]), 4) for k in HEADLINE_METRICS},
                             "steps": detector.model.step, "train_s": round(detector.model.seconds, 1),
                             "fit_s": round(fit_s, 1)})
        metrics, _ = evaluate_prediction(ds, predictions["patchcore"], 256)
        base_row = {k: round(float(metrics[k]), 4) for k in HEADLINE_METRICS}
        for r in rows:  # each map against PatchCore alone (a pair, no correction across maps)
            pair = {"patchcore": predictions["patchcore"], "st": predictions[f"{r['design']}:{r['map']}"]}
            table = paired_table(ds, pair)
            for _, t in table[table.metric.isin(["image_auroc", "pixel_auroc", "aupro"])].iterrows():
                r[f"{t.metric}_vs_patchcore"] = [round(-float(t.difference), 4), round(-float(t.ci_high), 4),
                                                 round(-float(t.ci_low), 4), round(float(t.p_value), 4)]
        for design in todo:  # the head against the discrepancy of the same training (does the head earn its place?)
            pair = {"head": predictions[f"{design}:head"], "discrepancy": predictions[f"{design}:discrepancy"]}
            table = paired_table(ds, pair)
            head_row = next(r for r in rows if r["design"] == design and r["map"] == "head")
            for _, t in table[table.metric.isin(["image_auroc", "pixel_auroc", "aupro"])].iterrows():
                sign = 1.0 if t.method_a == "head" else -1.0  # stored as head minus discrepancy
                low, high = sorted((sign * float(t.ci_low), sign * float(t.ci_high)))
                head_row[f"{t.metric}_vs_discrepancy"] = [round(sign * float(t.difference), 4), round(low, 4),
                                                          round(high, 4), round(float(t.p_value), 4)]
        rows.append({"dataset": dataset, "design": "patchcore", "map": "patchcore", **base_row,
                     "fit_s": round(patchcore_fit_s, 1)})
        append(file, rows)


def screen(dataset: str, variants: list[str], out: Path) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from exdd_lab.data.imageio import load_image
    from exdd_lab.evaluation.run import variant_predictions
    from exdd_lab.student_teacher import Teacher, build_training_data, cosine_discrepancy, train_student_teacher
    from exdd_lab.student_teacher.inference import mean_over_scales

    seed, ds = seeded_dataset(dataset)
    file = out / "screen.jsonl"
    images = np.stack([load_image(s.image_path, size=256) for s in ds.test])
    prepared: dict[tuple, tuple] = {}
    for spec in variants:
        name, _, fields = spec.partition(":")
        fields = json.loads(fields) if fields else {}
        if (dataset, name) in done_keys(file, "dataset", "variant"):
            continue
        steps = fields.pop("steps", 600)
        layers = tuple(fields.pop("teacher_layers", (2, 3)))
        if layers not in prepared:
            teacher = Teacher(layers=layers)
            defects = StudentTeacher(StudentTeacherConfig(seed=seed), teacher=teacher).training_defects(ds.train)
            with torch.no_grad():
                test_maps = [torch.cat(level) for level in zip(*[teacher(teacher.preprocess(images[i : i + 16]))
                                                                 for i in range(0, len(images), 16)])]
            prepared[layers] = teacher, build_training_data(ds.train, defects, teacher, 256), test_maps
        teacher, data, test_maps = prepared[layers]
        config = StudentTeacherConfig(**{"student": "reverse", "student_width": 64, "bottleneck": 128, "batch_size": 16,
                                         "epochs": 16, "seed": seed, "teacher_layers": layers, **fields})
        start = time.perf_counter()
        model = train_student_teacher(data, teacher, config, progress=False, stop_after=steps)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            student_maps = [torch.cat(level) for level in zip(*[model.student([m[i : i + 32] for m in test_maps])
                                                                for i in range(0, len(images), 32)])]
        size = test_maps[0].shape[-1]
        coarse = cosine_discrepancy(student_maps, test_maps)[-1]
        # each scale's 3x3 discrepancy divided by its 0.99 quantile over the training normals' cells: a scale whose
        # normal texture the student cannot rebuild (MTD's stride 8) then weighs less in the mean, label-free
        with torch.no_grad():
            normal_maps = [m[: data.n_normal] for m in data.teacher_maps]
            rebuilt = [torch.cat(level) for level in zip(*[model.student([m[i : i + 32] for m in normal_maps])
                                                           for i in range(0, data.n_normal, 32)])]
        spread = [torch.quantile(d.flatten()[:: max(1, d.numel() // 1_000_000)], 0.99)
                  for d in cosine_discrepancy(rebuilt, normal_maps, 3)]
        maps = {"mean over scales": mean_over_scales(cosine_discrepancy(student_maps, test_maps)),
                "coarsest scale": F.interpolate(coarse[:, None], size=(size, size), mode="bilinear")[:, 0],
                "3x3 mean over scales": mean_over_scales(cosine_discrepancy(student_maps, test_maps, 3)),
                "3x3 mean of normal-scaled scales": mean_over_scales(
                    [d / q for d, q in zip(cosine_discrepancy(student_maps, test_maps, 3), spread)])}
        if "max" in name:  # the largest of the scales instead of their mean (raw, and each scale normal-scaled)
            per_scale = cosine_discrepancy(student_maps, test_maps, 3)
            maps["3x3 max over scales"] = max_over_scales(per_scale)
            maps["3x3 max of normal-scaled scales"] = max_over_scales([d / q for d, q in zip(per_scale, spread)])
        rows = []
        for source, prediction in variant_predictions({k: v.numpy() for k, v in maps.items()}, 256).items():
            metrics, _ = evaluate_prediction(ds, prediction, 256)
            rows.append({"dataset": dataset, "variant": name, "fields": spec.partition(":")[2], "map": source,
                         "steps": model.step, "train_s": round(seconds, 1),
                         **{k: round(float(metrics[k]), 4) for k in ("image_auroc", "pixel_auroc", "aupro")}})
        append(file, rows)


def judge(datasets: list[str], candidates: list[tuple[int, ...]], steps: int, out: Path) -> None:
    """Does the label-free scale choice (held-out synthetic defects) rank the candidates as the real test does?"""
    import numpy as np

    from exdd_lab.data.imageio import load_image
    from exdd_lab.evaluation.metrics import auroc
    from exdd_lab.evaluation.run import variant_predictions
    from exdd_lab.student_teacher import Teacher
    from scale_judge import (
        choose_teacher_layers, discrepancy_grids, judge_split, load_judged, pixel_auroc_of,
    )
    from exdd_lab.synthesis import PerlinBlendGenerator, synthesize

    file = out / "judge.jsonl"
    for dataset in datasets:
        if (dataset, steps) in done_keys(file, "dataset", "steps"):
            continue
        seed, ds = seeded_dataset(dataset)
        if ds is None:
            print(f"{dataset}: not here, skipped", flush=True)
            continue
        config = StudentTeacherConfig(**{**design_fields("reverse"), "seed": seed})
        defects = StudentTeacher(config).training_defects(ds.train)
        choice = choose_teacher_layers(ds.train, defects, config, candidates, steps=steps, progress=True)
        split = judge_split(ds.train, defects, 0.25, seed)
        judge_images, judge_masks = load_judged(split.judge_normals + split.judge_defects, 256)
        n_normal = len(split.judge_normals)
        fit_normals, _ = load_judged(split.train[:: max(1, len(split.train) // 100)], 256)
        # the other generator's defects on the same held-out normals (never trained on), as a second judge
        perlin = synthesize(split.judge_normals, PerlinBlendGenerator([s.image_path for s in split.train]),
                            n=len(split.judge_defects), seed=seed, image_size=256)
        perlin_images = np.concatenate([judge_images[:n_normal], np.stack([d.image for d in perlin])])
        perlin_masks = np.concatenate([judge_masks[:n_normal], np.stack([d.mask for d in perlin]).astype(bool)])
        images = np.stack([load_image(s.image_path, size=256) for s in ds.test])
        rows = []
        for layers, model in choice.models.items():
            teacher = Teacher(layers=layers)
            grid = discrepancy_grids(model, teacher, images)
            metrics, _ = evaluate_prediction(ds, variant_predictions({"d": grid}, 256)["d"], 256)
            held = discrepancy_grids(model, teacher, judge_images)
            seen = discrepancy_grids(model, teacher, fit_normals)
            rows.append({"dataset": dataset, "steps": steps, "layers": list(layers), "model_steps": model.step,
                         "held_out": choice.held_out, "judge_pixel_auroc": round(choice.judged[layers], 4),
                         "chosen": layers == choice.layers, "choice_s": round(choice.seconds, 1),
                         "perlin_judge_pixel_auroc": round(pixel_auroc_of(model, teacher, perlin_images, perlin_masks), 4),
                         "judge_image_auroc": round(auroc(np.r_[np.zeros(n_normal), np.ones(len(held) - n_normal)],
                                                          held.reshape(len(held), -1).max(1)), 4),
                         "normal_gap": round(float(held[:n_normal].mean() / seen.mean()), 4),
                         **{k: round(float(metrics[k]), 4) for k in ("image_auroc", "pixel_auroc", "aupro")}})
        append(file, rows)


def max_over_scales(per_scale: list) -> "torch.Tensor":
    """Each scale's map upsampled to the finest grid, then the largest per cell (a defect any one scale sees)."""
    import torch
    import torch.nn.functional as F

    size = per_scale[0].shape[-2:]
    return torch.stack([F.interpolate(d[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
                        for d in per_scale]).amax(0)


def summary(out: Path) -> None:
    for name in ("screen.jsonl", "curve.jsonl", "compare.jsonl", "judge.jsonl"):
        file = out / name
        if file.is_file():
            table = pd.DataFrame([json.loads(line) for line in file.read_text().splitlines() if line.strip()])
            print(f"\n{name}\n{table.to_string(index=False)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["screen", "curve", "compare", "judge", "summary"])
    ap.add_argument("--dataset", default="mtd-seed0")
    ap.add_argument("--datasets", default="mtd-seed0,mtd-differnet,mpdd,procedural")
    ap.add_argument("--designs", default="reverse")
    ap.add_argument("--steps", default="100,300,600,1200")
    ap.add_argument("--variants", nargs="*", default=[
        "b128", 'b32:{"bottleneck": 32}', 'b16:{"bottleneck": 16}', 'L34:{"teacher_layers": [3, 4]}',
        'L234:{"teacher_layers": [2, 3, 4]}', 'L34w:{"teacher_layers": [3, 4], "student_width": 128, "bottleneck": 256}',
        'L34n:{"teacher_layers": [3, 4], "defect_fraction": 0.0}',
        'L34e32:{"teacher_layers": [3, 4], "epochs": 32, "steps": 1216}'])
    ap.add_argument("--candidates", default="2,3;3,4", help="judge: teacher layer sets, ';'-separated")
    ap.add_argument("--judge-steps", type=int, default=600)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "student_teacher_designs")
    args = ap.parse_args()
    designs = args.designs.split(",")
    if args.mode == "screen":
        screen(args.dataset, args.variants, args.out)
    elif args.mode == "curve":
        curve(args.dataset, designs, [int(s) for s in args.steps.split(",")], args.out)
    elif args.mode == "judge":
        judge(args.datasets.split(","), [tuple(int(x) for x in c.split(",")) for c in args.candidates.split(";")],
              args.judge_steps, args.out)
    elif args.mode == "compare":
        compare(args.datasets.split(","), designs, args.out)
    summary(args.out)


if __name__ == "__main__":
    main()
