"""The ``exdd-lab`` command line: thin over the package, one subcommand per job.

    exdd-lab datasets --data DIR --layout mvtec|ksdd2|mtd|folder [--category NAME]
    exdd-lab run [--data DIR --layout ...] [--fast]
    exdd-lab evaluate --data DIR --layout ... --method patchcore|exdd|student-teacher [--generator G] [--design D] [--epochs N] --out OUT
    exdd-lab compare --data DIR --layout ... [--methods patchcore,exdd,student-teacher] --out OUT
    exdd-lab score --model DIR --images FOLDER|GLOB|LIST --out OUT [--engine local|ray]
    exdd-lab synthesize --data DIR --layout ... --generator perlin|ddpm|ldm [--model-dir DIR] [--n 100] --out OUT
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from exdd_lab.components.metric_names import PRECISION_METRICS, RANKING_METRICS, TIMING_METRICS
from exdd_lab.errors import ExddError

from exdd_lab.archive.engines import ENGINES
from exdd_lab.bank.index import AUTO_EXACT_LIMIT, BANK_INDEXES
from exdd_lab.bank.coreset import CORESET_METHODS
from exdd_lab.data.layouts import LAYOUTS, MTD_SPLITS
from exdd_lab.export.runtime import EXPORT_FORMATS, RUNTIME_CHOICES
from exdd_lab.methods import exdd as exdd_method
from exdd_lab.methods import patchcore as patchcore_method
from exdd_lab.methods import student_teacher as student_teacher_method
from exdd_lab.methods.registry import METHODS
from exdd_lab.methods.exdd.positive_patches import POSITIVE_PATCHES
from exdd_lab.student_teacher.designs import DESIGNS
from exdd_lab.synthesis.registry import GENERATORS

#: Every named choice comes from its registry: a new layout, generator or strategy appears here by itself.
LAYOUT_CHOICES = ("procedural", *LAYOUTS.names())
#: ``--design``'s help, the same on evaluate, fit and compare.
DESIGN_HELP = ("student-teacher design: reverse (default: reverse distillation on strides 16+32), reverse-fine (strides "
               "8+16: small sharp defects) or image-encoder (the first design); benchmarks/README.md compares them")


#: Exit codes a scheduler can act on (README: For analysts).
EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="procedural",
                   help="dataset folder, or 'procedural' for the built-in generated default (the default)")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default=None,
                   help="folder layout of --data (see datasets.md); required with --data DIR")
    p.add_argument("--category", default="", help="MVTec category, or the material of the procedural default")
    p.add_argument("--seed", type=int, default=0, help="seed of splits and everything random (default 0)")
    p.add_argument("--split", choices=tuple(MTD_SPLITS), default=None,
                   help="a named split protocol (--layout mtd only): seeded (default: 400 train normals by --seed) "
                        "or differnet (the published list of 761 training normals, as in the DifferNet/PatchCore/CS-Flow papers)")
    p.add_argument("--split-file", default=None,
                   help="the training list of --split differnet (default: DATA/splits/differnet_train.txt)")


def _dataset_args(args: argparse.Namespace) -> tuple[str, str]:
    if args.data != "procedural" and args.layout == "procedural":
        raise ExddError(f"--data {args.data} was given with --layout procedural, which makes its own images and would ignore it",
                        f"read the folder with its layout (--layout {' | '.join(LAYOUT_CHOICES[1:])}), or drop --data")
    if args.data == "procedural":
        return "procedural", "procedural"
    if not args.layout:
        raise ExddError(f"--data {args.data} needs --layout", f"add --layout with one of {', '.join(LAYOUT_CHOICES[1:])}")
    if not Path(args.data).is_dir():
        raise ExddError(f"dataset folder not found: {args.data}", "check the path (see datasets.md for the layouts)")
    return str(Path(args.data).resolve()), args.layout


def _writable_out(path: str | Path) -> Path:
    """Check that ``--out`` can be written *before* anything is fitted (a lost fit costs minutes)."""
    import tempfile

    out = Path(path)
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".exdd-write-check-"):
            pass
    except OSError as exc:
        raise ExddError(f"cannot write to --out {out}: {exc.strerror or exc}",
                        "choose a folder you can write to, on a disk with free space") from None
    if not existed:
        out.rmdir()  # the check leaves nothing behind; the command makes the folder when it writes
    return out


def _load(args: argparse.Namespace, data: str, layout: str, report_duplicates: bool = False):
    """The dataset of ``--data/--layout/--category/--seed``, padded to squares with ``--keep-aspect``; with
    ``report_duplicates``, byte-identical images within and across its splits are warned about (leakage)."""
    from exdd_lab.data import letterboxed, load_dataset
    from exdd_lab.data.duplicates import dataset_duplicates

    extra = {"split_file": args.split_file} if getattr(args, "split_file", None) else {}
    if extra and getattr(args, "split", None) != "differnet":
        raise ExddError("--split-file was given without --split differnet", "add --split differnet (or drop --split-file)")
    ds = load_dataset(data, layout, args.category or None, seed=args.seed, split=getattr(args, "split", None), **extra)
    for line in dataset_duplicates(ds).lines() if report_duplicates else ():
        print(f"warning: {line}", file=sys.stderr)
    return letterboxed(ds) if getattr(args, "keep_aspect", False) else ds


def _training_split(ds) -> None:
    if not ds.train:
        raise ExddError(f"{ds.name} has no training images (its train split is empty)",
                        "every method fits on normal training images: check the layout with `exdd-lab datasets`")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number: give a value such as 0.5")
    return value


def _ratio(text: str) -> float:
    """A share in (0, 1] (a coreset keeps at most every patch)."""
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} is outside (0, 1]: give a share such as 0.01 (1%) or 0.1")
    return value


def _rate(text: str) -> float:
    """A false-alarm rate in (0, 1): 0 cannot be promised and 1 flags every image."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is outside (0, 1): give a share of normal images such as 0.01 (1%)")
    return value


def _held_out(text: str) -> int | str:
    """``auto`` or a count of 0 or more."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither auto nor a whole number of images") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: hold out 0 or more normal images (or auto)")
    return value


def cmd_datasets(args: argparse.Namespace) -> int:
    from exdd_lab.data import validate_dataset

    data, layout = _dataset_args(args)
    ds = _load(args, data, layout)
    print(f"dataset: {ds.name}  layout: {ds.layout}  root: {ds.root}")
    print(f"split: {ds.split_info}")
    print(ds.summary().to_string(index=False))
    report = validate_dataset(ds)
    print("\nimage sizes (pixels):")
    print(report.size_table().to_string())
    print(f"\nmasks found: {report.masks_found}; defect images without a mask: {report.defects_without_mask}")
    if report.mask_fractions:
        import numpy as np

        print(f"defect area per image: median {np.median(report.mask_fractions):.2%} of the image")
    for w in report.warnings[:10]:
        print(f"warning: {w}")
    if len(report.warnings) > 10:
        print(f"warning: ... and {len(report.warnings) - 10} more")
    if not report.ok:
        for problem in report.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(report.problems)} problem(s) found; fix them before using this dataset", file=sys.stderr)
        return 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from exdd_lab.lab.runner import run_notebooks

    data, layout = _dataset_args(args)
    if args.split or args.split_file:
        raise ExddError("`exdd-lab run` runs the notebooks on their own split (seeded); --split is for evaluate/compare",
                        "drop --split, or use `exdd-lab evaluate --split differnet` (notebook 02 shows that split in full mode)")
    run_dir, ok = run_notebooks(data, layout, args.category, fast=args.fast, seed=args.seed,
                                image_size=args.image_size, out_root=args.out, progress=True)
    print(f"{'done' if ok else 'FAILED (see the report)'}: open {run_dir / 'report.html'}")
    return 0 if ok else 1


def cmd_lessons(args: argparse.Namespace) -> int:
    from exdd_lab.lab.student_versions import write_student_notebooks

    print(write_student_notebooks(args.out).describe())
    print(f"start with {Path(args.out) / '00_data_tour.ipynb'} in JupyterLab: each exercise's cell raises until you "
          "write it, and the check cell below it says whether it is right")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from exdd_lab.evaluation.run import run_evaluation
    from exdd_lab.features import FeatureConfig, check_backbone_name
    from exdd_lab.methods.base import Savable
    from exdd_lab.methods.registry import build_method
    from exdd_lab.seeding import seed_everything

    data, layout = _dataset_args(args)
    _writable_out(args.out)
    if args.save_model and Path(args.save_model).exists():
        raise ExddError(f"--save-model {args.save_model} already exists", "save to a new folder (detectors are never overwritten)")
    check_backbone_name(args.backbone)
    seed_everything(args.seed)
    ds = _load(args, data, layout, report_duplicates=True)
    _training_split(ds)
    if args.held_out > 0:
        ds = ds.with_held_out_normals(args.held_out, seed=args.seed)
    features = FeatureConfig(backbone=args.backbone, weights=args.weights, image_size=args.image_size)
    options = {"coreset": args.coreset, "seed": args.seed, "image_score": args.image_score, "sigma": args.sigma,
               "coreset_method": args.coreset_method, "bank_index": args.bank_index}
    if args.method == "exdd":
        ds, options = _exdd_defects(args, ds, options)
    elif args.method == "student-teacher":
        options.update(epochs=args.epochs, design=args.design, generator=args.generator, n_synthetic=args.n_synthetic,
                       model_dir=args.model_dir, map_source=args.map_source)
        if args.synthetic:
            from exdd_lab.synthesis import load_defect_set

            options["defect_set"] = load_defect_set(args.synthetic)
    method = build_method(args.method, features, options)
    if args.save_model and not isinstance(method, Savable):  # said before minutes of fitting, not after
        savable = ", ".join(name for name, entry in METHODS.items() if entry.saved_as)
        raise ExddError(f"method {args.method} cannot be saved", f"save one of {savable} (--method), or drop --save-model")
    print(f"{args.method} on {ds!r}\nweights: {method.describe().get('weights_source')}")
    result = run_evaluation(method, ds, args.out, seed=args.seed, progress=True, bootstrap=_bootstrap(args))
    if args.save_model:
        from exdd_lab.methods.persistence import threshold_record

        method.threshold = threshold_record(result)
        method.save(args.save_model)
        print(f"saved the fitted detector to {args.save_model} (score new images with `exdd-lab score`)")
    keys = RANKING_METRICS + PRECISION_METRICS + ("f1_max",) + TIMING_METRICS
    keys += tuple(k for k in result if k.startswith(("head_", "discrepancy_")))
    print("  ".join(f"{k}={result[k]:.4g}" if isinstance(result[k], float) else f"{k}={result[k]}" for k in keys))
    if result.get("intervals"):
        from exdd_lab.evaluation.uncertainty import format_interval

        level = round(100 * result["interval_settings"]["level"])
        print(f"{level} % intervals (bootstrap over test images): " + "  ".join(
            f"{k} {format_interval(result.get(k), v)}" for k, v in result["intervals"].items() if v))
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'scores.csv'}")
    from exdd_lab.evaluation.published import format_comparison, published_numbers

    if published_numbers(result):
        print(f"\nnext to the published numbers on this split ({result['split']['protocol']}; n/p = not published):")
        print(format_comparison(result))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """A detector from normal images alone (exdd_lab.analyst.fit): the model with its normal-only threshold,
    fit_report.json and the held-out scores' histogram, in one new folder."""
    import matplotlib

    matplotlib.use("Agg")
    from exdd_lab.analyst.fit import fit_on_normals, save_fit
    from exdd_lab.features import FeatureConfig, check_backbone_name
    from exdd_lab.seeding import seed_everything

    if Path(args.out).exists():  # said before minutes of fitting, not after
        raise ExddError(f"--out {args.out} already exists", "save to a new folder (detectors are never overwritten)")
    METHODS.check(args.method)
    check_backbone_name(args.backbone)
    seed_everything(args.seed)
    held_out = args.held_out
    options = {"generator": args.generator, "n_synthetic": args.n_synthetic, "epochs": args.epochs,
               "design": args.design, "model_dir": args.model_dir}
    detector, report = fit_on_normals(args.normals, args.method, held_out, args.held_out_dir, args.false_alarm_rate,
                                      FeatureConfig(backbone=args.backbone, image_size=args.image_size), options,
                                      seed=args.seed, progress=not args.quiet, reviews=args.reviews or (),
                                      runtime=args.runtime, reviewed_defects=args.reviewed_defects,
                                      foreign_reviews=args.foreign_reviews, confidence=args.confidence)

    def draw(report, path: Path) -> None:
        import pandas as pd

        from exdd_lab.plots.archive import plot_archive_scores

        fig = plot_archive_scores(pd.DataFrame({"score": report.held_out_scores, "status": "scored"}), report.threshold)
        fig.axes[0].set_title(f"{report.held_out} held-out normals; threshold: at most {report.promised_false_alarm_rate:.1%} "
                              f"false alarms ({report.confidence:.0%} confidence)")
        fig.savefig(path, dpi=100)

    out = save_fit(detector, report, args.out, draw)
    for line in report.lines():
        print(line)
    written = ", ".join(name for name in ("fit_report.json", "held_out_scores.png") if (out / name).is_file())
    print(f"saved to {out} ({written}); score new images with "
          f"`exdd-lab score --model {out} --images ARCHIVE --out RESULTS`")
    return 0


def _exdd_defects(args: argparse.Namespace, ds, options: dict):
    """The positive bank's defects: a synthetic set (made and cached, or --synthetic DIR) plus K real ones."""
    import time

    from exdd_lab.synthesis import cached_defect_set, load_defect_set

    start = time.perf_counter()
    if args.synthetic:
        synthetic = load_defect_set(args.synthetic).test[: args.n_synthetic or 100]
        made = f"set {args.synthetic}"
    else:
        synthetic = cached_defect_set(ds.train, args.generator, args.n_synthetic or 100, seed=args.seed,
                                      image_size=args.image_size, model_dir=args.model_dir, progress=True).test
        made = f"{args.generator} generator (cached)"
    ds, real = ds.with_training_defects(args.real_defects, seed=args.seed)
    if real and ds.split_info.get("train_defects", {}).get("moved_from_test"):
        print(f"moved {len(real)} real defect images from the test split into the positive bank; they are not evaluated")
    options.update(defects=list(synthetic) + list(real), exdd_image_score=args.exdd_image_score, exdd_score=args.exdd_score,
                   min_mask_fraction=args.min_mask_fraction,
                   positive_patches=args.positive_patches,
                   synthesis_info={"source": made, "n_synthetic": len(synthetic), "n_real_defects": len(real),
                                   "seconds": round(time.perf_counter() - start, 2)})
    return ds, options


def _add_interval_args(p: argparse.ArgumentParser) -> None:
    from exdd_lab.evaluation.uncertainty import INTERVAL_METHODS

    p.add_argument("--bootstrap", type=int, default=1000,
                   help="resamples of the test images behind every metric's 95%% interval (default 1000; 0 = none)")
    p.add_argument("--interval-method", choices=INTERVAL_METHODS, default="percentile",
                   help="bootstrap interval: percentile (default) or bca (bias-corrected and accelerated)")


def _bootstrap(args: argparse.Namespace):
    from exdd_lab.evaluation.uncertainty import BootstrapSettings

    return BootstrapSettings(resamples=args.bootstrap, method=args.interval_method, seed=args.seed)


def cmd_compare(args: argparse.Namespace) -> int:
    """Several methods on ONE split: each method's metrics.json + scores.csv, the per-image results
    table, the failure ranking, the disagreements and a static gallery of the failure cases."""
    import matplotlib

    matplotlib.use("Agg")
    from exdd_lab.experiments.compare import compare_methods, compared_methods, write_comparison
    from exdd_lab.features import FeatureConfig, check_backbone_name
    from exdd_lab.seeding import seed_everything

    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ExddError(f"unknown method(s) {', '.join(unknown) or '(none given)'}", f"--methods takes a comma list of {', '.join(METHODS)}")
    data, layout = _dataset_args(args)
    _writable_out(args.out)
    check_backbone_name(args.backbone)
    seed_everything(args.seed)
    ds = _load(args, data, layout, report_duplicates=True)
    _training_split(ds)
    if args.held_out > 0:
        ds = ds.with_held_out_normals(args.held_out, seed=args.seed)
    features = FeatureConfig(backbone=args.backbone, image_size=args.image_size)
    options = {"seed": args.seed, "generator": args.generator, "n_synthetic": args.n_synthetic,
               "epochs": args.epochs, "design": args.design, "model_dir": args.model_dir,
               "min_mask_fraction": args.min_mask_fraction}
    methods = compared_methods(names, features, ds.train, options, exdd_defects=args.exdd_synthetic, progress=True)
    print(f"comparing {', '.join(names)} on {ds!r}")
    comparison = compare_methods(methods, ds, progress=True, bootstrap=_bootstrap(args))
    gallery = write_comparison(comparison, args.out, k=args.k, seed=args.seed)
    overall = comparison.table
    columns = [c for c in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "FN_f1", "FP_f1", "FN_normal_only",
                           "FP_normal_only") if c in overall.columns]
    print(overall[columns].round(3).to_string())
    if not comparison.paired.empty:
        from exdd_lab.evaluation.paired_tests import format_paired

        print("\npaired differences on the same test images (first minus second; DeLong for image AUROC, paired "
              "bootstrap otherwise" + ("; p Holm-adjusted" if len(names) > 2 else "") + "):")
        print(format_paired(comparison.paired))
    print(f"wrote {args.out}/<method>/metrics.json + scores.csv, results.csv/.parquet (one row per image and method), "
          f"methods.csv, failures.csv, disagreements.csv and gallery/ ({len(list(gallery.glob('*.png')))} figures)")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """A saved detector over a folder tree, glob or list file: Parquet shards + manifest.json + scores.csv +
    errors.csv in ``--out``; resumable, streaming; exit code 1 when any file failed."""
    from exdd_lab.archive import score_archive

    summary = score_archive(args.model, args.images, args.out, engine=args.engine, threshold=args.threshold,
                            shard_size=args.shard_size, save_maps=args.save_maps, overwrite=args.overwrite,
                            workers=args.workers, address=args.address, progress=not args.quiet, runtime=args.runtime)
    for line in summary.lines():
        print(line)
    return EXIT_OK if summary.ok else EXIT_SOME_FAILED


def cmd_export(args: argparse.Namespace) -> int:
    """The saved detector as an ONNX or OpenVINO graph, the saved model beside it (exdd_lab.export.writer)."""
    import json

    from exdd_lab.export.writer import MANIFEST, export_detector

    out = export_detector(args.model, args.format, args.out)
    manifest = json.loads((out / MANIFEST).read_text())
    fidelity = manifest["fidelity_at_export"]
    what = "networks" if manifest.get("graph_kind") == "student-teacher-grids" else "feature front-end"
    print(f"exported the {manifest['method']} {what} of {args.model} as {manifest['format']} into {out} "
          f"({manifest['graph']}, batch size dynamic); outputs against PyTorch on {fidelity['probe_images']} probe "
          f"images: max relative difference {fidelity['max_relative_error']:.1e} (limit {fidelity['limit']:g})")
    print(f"score with: exdd-lab score --model {out} --runtime {manifest['format']} "
          "--images IMAGES --out RESULTS")
    return 0


def cmd_synthesize(args: argparse.Namespace) -> int:
    import time

    from exdd_lab.seeding import seed_everything
    from exdd_lab.synthesis import DdpmConfig, build_generator, mask_area_statistics, synthesize, write_defect_set

    data, layout = _dataset_args(args)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ExddError(f"{out} already exists and is not empty", "choose a new --out folder, or delete the old set")
    _writable_out(out)
    seed_everything(args.seed)
    ds = _load(args, data, layout)
    _training_split(ds)
    config = DdpmConfig(train_steps=args.ddpm_steps or DdpmConfig.train_steps, image_size=args.image_size, seed=args.seed)
    start = time.perf_counter()
    generator = build_generator(args.generator, ds.train, args.model_dir, ddpm_config=config)
    ready = time.perf_counter()
    defects = synthesize(ds.train, generator, args.n, seed=args.seed, image_size=args.image_size, progress=True)
    done = time.perf_counter()
    info = {"generator": args.generator, "dataset": ds.name, "layout": ds.layout, "seed": args.seed, "n": args.n,
            "image_size": args.image_size, "model_dir": str(args.model_dir) if args.model_dir else None,
            "prepare_s": round(ready - start, 2), "generate_s": round(done - ready, 2),
            "masks": mask_area_statistics([d.mask for d in defects])}
    if args.generator == "ddpm":
        info["ddpm"] = config.to_dict()
    write_defect_set(defects, out, info)
    print(f"wrote {len(defects)} {args.generator} defects to {out} (model ready in {ready - start:.1f} s, "
          f"{(done - ready) / len(defects):.2f} s per defect)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exdd-lab", description="Surface defect detection kit: datasets, runs, evaluation.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("datasets", help="print a dataset's summary and check every image and mask")
    _add_data_args(p)
    p.add_argument("--keep-aspect", action="store_true",
                   help="pad images (and masks) to squares instead of stretching them to the square input size")
    p.set_defaults(func=cmd_datasets)
    p = sub.add_parser("run", help="the main job: execute the notebooks headlessly, write runs/<id>/")
    _add_data_args(p)
    p.add_argument("--fast", action="store_true", help="small mode: subsets and short budgets (minutes, for CI)")
    p.add_argument("--image-size", type=int, default=256, help="square input size of the backbone (default 256)")
    p.add_argument("--out", default=None, help="folder for run folders (default: runs/ in the repository)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("lessons", help="write the student versions of the notebooks (exercises to solve, their checks "
                                       "kept); a notebook you have edited there is never overwritten")
    p.add_argument("--out", required=True, help="folder for the student notebooks (not notebooks/, the masters)")
    p.set_defaults(func=cmd_lessons)
    p = sub.add_parser("evaluate", help="fit a method on the training normals, score the test split, write metrics.json + scores.csv")
    _add_data_args(p)
    p.add_argument("--keep-aspect", action="store_true",
                   help="pad images (and masks) to squares instead of stretching them to the square input size")
    p.add_argument("--method", default="patchcore", help=f"detection method: {', '.join(METHODS)} (default patchcore)")
    p.add_argument("--backbone", default="tf_efficientnet_lite0", help="timm backbone name")
    p.add_argument("--weights", default="imagenet", help="imagenet (resolved offline), random, or a weights file")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--coreset", type=_ratio, default=0.01, help="share of normal patches kept in the bank (default 0.01)")
    p.add_argument("--coreset-method", choices=CORESET_METHODS.names(), default="two-stage",
                   help="two-stage greedy (fast, default) or the textbook greedy (about 20x slower; AUROC within 0.005, "
                        "see benchmarks/README.md)")
    p.add_argument("--bank-index", choices=BANK_INDEXES.names(), default="auto",
                   help=f"how memory banks are searched: auto (default: exact up to {AUTO_EXACT_LIMIT:,} items, approximate "
                        "ivf above), flat (always exact), ivf or hnsw (always approximate); see benchmarks/README.md")
    p.add_argument("--image-score", choices=patchcore_method.IMAGE_SCORES.names(), default=None,
                   help="PatchCore's image score: max raw patch score (default, the reference code's), the paper's "
                        "Eq. 7 reweighting, or max of the smoothed map")
    p.add_argument("--sigma", type=_number, default=4.0, help="Gaussian smoothing of anomaly maps, in pixels")
    p.add_argument("--out", required=True, help="output folder for metrics.json and scores.csv")
    g = p.add_argument_group("synthetic defects (exdd, student-teacher)")
    g.add_argument("--generator", choices=GENERATORS.names(), default="ddpm",
                   help="synthetic defects for the positive bank or the student-teacher's training (default ddpm, made once and cached)")
    g.add_argument("--n-synthetic", type=int, default=None,
                   help="number of synthetic defects (default: 100 for exdd, ExDD's best count; 200 for student-teacher)")
    g.add_argument("--synthetic", default=None, help="use a set made by `exdd-lab synthesize` instead of --generator")
    g = p.add_argument_group("student-teacher")
    g.add_argument("--design", choices=DESIGNS.names(), default=None,
                   help=DESIGN_HELP)
    g.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: the design's; reverse 64, about 3 minutes on 2 CPU cores for MTD at 256 px)")
    g.add_argument("--map-source", choices=student_teacher_method.MAP_SOURCES.names(), default="discrepancy",
                   help="the map that gives scores.csv and the headline metrics (both are reported in metrics.json)")
    g = p.add_argument_group("exdd (dual banks)")
    g.add_argument("--model-dir", default=None, help="ldm generator: local inpainting pipeline folder")
    g.add_argument("--real-defects", type=int, default=0,
                   help="add K real labelled defects (KSDD2's training positives; otherwise moved out of the test split)")
    g.add_argument("--exdd-score", choices=exdd_method.VARIANTS.names(), default="gated",
                   help="gated (default: PatchCore's d_neg raised where a patch is unusual and defect-like), ExDD's "
                        "published ratio d_neg / (d_pos + eps), neighbourhood-aware (ratio_na) or plain (ratio), "
                        "or one bank alone (negative: PatchCore's d_neg; positive: -d_pos)")
    g.add_argument("--exdd-image-score", choices=exdd_method.IMAGE_SCORES.names(), default="max_patch",
                   help="largest patch score (default, as PatchCore), max of the smoothed map, or ExDD's published "
                        "bank-ratio score")
    g.add_argument("--min-mask-fraction", type=_number, default=0.9,
                   help="a defect patch enters the positive bank when this share of its cell is masked (default 0.9)")
    g.add_argument("--save-model", default=None, help="save the fitted detector to this new folder (any method; with its normal-only threshold when measured)")
    g.add_argument("--positive-patches", choices=POSITIVE_PATCHES.names(), default="masked",
                   help="masked defect patches (default) or every patch of a tight crop (ExDD's original)")
    p.add_argument("--held-out", type=int, default=0,
                   help="held-out normals for the normal-only threshold saved with --save-model: a sample of the "
                        "layout's own (MTD, folder's val_good/) or moved out of training (default 0: the layout's own, "
                        "all of them, when it has some)")
    _add_interval_args(p)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("fit", help="fit a detector on a folder of normal images alone (no test split): the model with "
                                   "its normal-only threshold and a fit report")
    p.add_argument("--normals", required=True,
                   help="normal images: a folder (scanned recursively), a quoted glob or a list file, as `score` takes")
    p.add_argument("--method", default="patchcore", help=f"detection method: {', '.join(METHODS)} (default patchcore)")
    p.add_argument("--out", required=True, help="new folder for the model, fit_report.json and held_out_scores.png")
    p.add_argument("--held-out", type=_held_out, default="auto",
                   help="normals moved out of the fit to set the threshold: a number, or auto (default: at most a fifth of them, "
                        "as many as --false-alarm-rate needs (299 for 1%% at 95%%); none below 50 normals); 0 = no threshold")
    p.add_argument("--held-out-dir", default=None, help="separate held-out normals (folder, glob or list) instead")
    p.add_argument("--false-alarm-rate", type=_rate, default=0.01,
                   help="share of new normal images the threshold may flag (default 0.01), promised with --confidence: "
                        "1%% at 95%% needs 299 held-out normals; with fewer, the rate they can promise is said and saved")
    p.add_argument("--confidence", type=_rate, default=0.95,
                   help="probability that the false-alarm rate stays at or below the promised one (default 0.95)")
    p.add_argument("--backbone", default="tf_efficientnet_lite0", help="timm backbone name")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--generator", choices=GENERATORS.names(), default="ddpm",
                   help="exdd, student-teacher: synthetic defects made from the normals (default ddpm, cached)")
    p.add_argument("--n-synthetic", type=int, default=None, help="synthetic defects (default 100 exdd, 200 student-teacher)")
    p.add_argument("--design", choices=DESIGNS.names(), default=None,
                   help=DESIGN_HELP)
    p.add_argument("--epochs", type=int, default=None, help="student-teacher epochs (default: the design's; reverse 64)")
    p.add_argument("--model-dir", default=None, help="ldm generator: local inpainting pipeline folder")
    p.add_argument("--runtime", choices=RUNTIME_CHOICES, default="auto",
                   help="what runs the frozen front-end while fitting: auto (default: the fastest installed, cached), "
                        "torch, onnx or openvino; the saved model is the same either way")
    p.add_argument("--reviews", nargs="+", default=None, metavar="CSV",
                   help="reviews files (the review widget's reviews.csv, or any CSV with path and verdict columns): "
                        "images reviewed as normal join the training normals; defect and unsure ones are counted "
                        "(see --reviewed-defects)")
    p.add_argument("--foreign-reviews", action="store_true",
                   help="use a run's reviews.csv even where its verdicts name images that are not rows of that run, or "
                        "were given on another model's scores (refused by default; the summary counts them)")
    p.add_argument("--reviewed-defects", action="store_true",
                   help="with --method exdd: also feed images reviewed as defect to the positive bank (their cells above "
                        "the held-out threshold); off by default: measured not to help (benchmarks/README.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_fit)
    p = sub.add_parser("compare", help="several methods on one split: metrics per method, the per-image results "
                                       "table, failure ranking, disagreements and a gallery of failure cases")
    _add_data_args(p)
    p.add_argument("--keep-aspect", action="store_true",
                   help="pad images (and masks) to squares instead of stretching them to the square input size")
    p.add_argument("--methods", default="patchcore,exdd,student-teacher", help="comma list (default: all three)")
    p.add_argument("--backbone", default="tf_efficientnet_lite0", help="timm backbone name")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--generator", choices=GENERATORS.names(), default="ddpm",
                   help="synthetic defects for ExDD and the student-teacher (default ddpm, made once and cached)")
    p.add_argument("--model-dir", default=None, help="ldm generator: local inpainting pipeline folder")
    p.add_argument("--n-synthetic", type=int, default=None, help="student-teacher training defects (default 200)")
    p.add_argument("--exdd-synthetic", type=int, default=100, help="defects in ExDD's positive bank (default 100)")
    p.add_argument("--min-mask-fraction", type=_number, default=0.9,
                   help="exdd: a defect patch enters the positive bank when this share of its cell is masked")
    p.add_argument("--design", choices=DESIGNS.names(), default=None,
                   help=DESIGN_HELP)
    p.add_argument("--epochs", type=int, default=None, help="student-teacher epochs (default: the design's; reverse 64)")
    p.add_argument("--held-out", type=int, default=50,
                   help="held-out normals for the normal-only threshold: the layout's own (MTD, folder) or moved "
                        "out of training (default 50; 0 = none)")
    p.add_argument("--k", type=int, default=3, help="cases per method and kind in failures.csv and the gallery")
    p.add_argument("--out", required=True, help="output folder")
    _add_interval_args(p)
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("score", help="score an archive (folder tree, glob or list file) with a saved detector: "
                                     "streaming, resumable, local or on Ray")
    p.add_argument("--model", required=True, help="a saved detector: the folder written by `fit --out`, `evaluate --save-model` or `export`")
    p.add_argument("--images", required=True,
                   help="a folder (scanned recursively), a quoted glob ('archive/**/*.png') or a list file "
                        "(.txt/.csv/.parquet of paths)")
    p.add_argument("--out", required=True,
                   help="output folder (shards/, manifest.json, scores.csv, errors.csv); the same --out again resumes")
    p.add_argument("--threshold", type=_number, default=None,
                   help="decision threshold (default: the normal-only threshold saved with the model by evaluate)")
    p.add_argument("--engine", choices=ENGINES.names(), default="local",
                   help="local: this process (default); ray: Ray Data actors on an embedded local Ray or --address")
    p.add_argument("--workers", type=int, default=None,
                   help="ray: number of workers, one CPU and one thread each (default: every CPU)")
    p.add_argument("--address", default=None, help="ray: join the cluster at HOST:PORT (started with `ray start --head`)")
    p.add_argument("--shard-size", type=int, default=64, help="images per shard file, the unit of resume (default 64)")
    p.add_argument("--save-maps", action="store_true", help="also write a 64x64 uint8 PNG of each anomaly map (maps/)")
    p.add_argument("--overwrite", action="store_true", help="delete the results already in --out (another model's too)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--runtime", choices=RUNTIME_CHOICES, default="auto",
                   help="what runs the front-end: auto (default: OpenVINO, else ONNX Runtime, else PyTorch; the graph is "
                        "traced once and cached), or force torch / onnx / openvino (an exported folder runs its own graph)")
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("export", help="export a saved detector as one ONNX or OpenVINO graph: PatchCore's and ExDD's "
                                      "feature front-end (the banks travel beside it), the student-teacher's networks; "
                                      "score it with `score --runtime`")
    p.add_argument("--model", required=True, help="a saved detector: the folder written by `fit --out` or `evaluate --save-model`")
    p.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="graph format (onnx runs in both runtimes)")
    p.add_argument("--out", required=True, help="new folder for the export (never overwritten)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("synthesize", help="make a synthetic defect set (images, exact masks, samples.json)")
    _add_data_args(p)
    p.add_argument("--generator", choices=GENERATORS.names(), required=True,
                   help="perlin: classical blend; ddpm: DDPM trained on the normals (cached); ldm: text-guided inpainting")
    p.add_argument("--model-dir", default=None,
                   help="ldm only: a local diffusers inpainting pipeline folder ('tiny' = a tiny random one, code path only)")
    p.add_argument("--n", type=int, default=100, help="number of defects (default 100, ExDD's best count)")
    p.add_argument("--image-size", type=int, default=256, help="defects are made at this square size (default 256)")
    p.add_argument("--ddpm-steps", type=int, default=None,
                   help="ddpm only: training steps (default: DdpmConfig.train_steps, 2500)")
    p.add_argument("--out", required=True, help="new folder for the set")
    p.set_defaults(func=cmd_synthesize)
    return parser


def _raise_terminated(signum, frame) -> None:
    from exdd_lab.errors import Terminated

    raise Terminated()


def crash_log(exc: BaseException) -> Path:
    """Write the traceback of an unexpected error under the kit's cache (``logs/``); return its path."""
    import datetime
    import os
    import traceback

    from exdd_lab.storage import atomic_write, cache_root

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = cache_root() / "logs" / f"exdd-lab-{stamp}-{os.getpid()}.log"
    with atomic_write(path, "w") as handle:
        handle.write(f"exdd-lab {' '.join(sys.argv[1:])}\n\n")
        handle.write("".join(traceback.format_exception(exc)))
    return path


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Exit codes: 0 done; 1 some image of this run could not be scored (``errors.csv``);
    2 bad input or usage (one line naming the input and the fix); 3 an internal error (its traceback written to a
    log whose path is printed); 130 / 143 interrupted by Ctrl-C / SIGTERM (what finished is kept: rerun to resume)."""
    import signal

    from exdd_lab.errors import Interrupted, Terminated

    args = build_parser().parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (a notebook, a worker): leave SIGTERM alone
        previous = None
    try:
        return args.func(args)
    except Interrupted as exc:
        print(f"{exc.what}; {exc.fix}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print("interrupted; nothing half-written is left: rerun the same command", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except ExddError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug, not bad input: one line here, the traceback in a log
        try:
            where = f"traceback in {crash_log(exc)}"
        except OSError as log_error:
            where = f"and its traceback could not be written ({log_error})"
        print(f"internal error: {type(exc).__name__}: {exc} -- {where}; please report it", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
