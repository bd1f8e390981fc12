"""A detector from a folder of normal images alone: no test split, no labels.

``fit_on_normals`` reads the inputs as ``exdd-lab score`` does (a folder scanned recursively, a quoted glob or a
list file), decodes every file once and records the ones that cannot be read with the reason (they are skipped,
never fatal), holds out normals (``held_out`` of them, drawn with the seed, or a separate ``held_out_dir``), fits the
method on the rest and sets the **normal-only threshold** with a stated guarantee: the most permissive order statistic
of the held-out normals' scores whose false-alarm rate exceeds the asked one with probability at most ``1 - confidence``
(:func:`~exdd_lab.evaluation.thresholds.guaranteed_threshold`); with too few held-out normals, their maximum and the
rate it *can* promise, said in the report. ``save_fit`` writes
the model with that threshold (``exdd-lab score`` uses it), ``fit_report.json`` and the held-out scores' histogram
into one folder, atomically.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from exdd_lab.archive.decode import SCORED, SKIPPED, decode_file
from exdd_lab.analyst.labelled_layout import check_normals_layout
from exdd_lab.analyst.reviews import reviewed_samples
from exdd_lab.archive.inputs import list_inputs, resolve_inputs
from exdd_lab.data.duplicates import DuplicateReport, find_duplicates
from exdd_lab.data.imageio import IMAGE_SUFFIXES
from exdd_lab.data.records import Sample
from exdd_lab.errors import DatasetError, ExddError
from exdd_lab.evaluation.thresholds import GuaranteedThreshold, guaranteed_threshold, held_out_needed
from exdd_lab.experiments.compare import compared_methods
from exdd_lab.export.accelerate import accelerate
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.base import Detector, Savable
from exdd_lab.storage import atomic_directory

REPORT = "fit_report.json"
HISTOGRAM = "held_out_scores.png"
#: ``held_out="auto"``: a fifth of the normals, at most this many; none below ``AUTO_MIN_NORMALS`` normals.
AUTO_SHARE = 5  # auto holds out at most a fifth of the normals
AUTO_MIN_NORMALS = 50


@dataclass
class FitReport:
    """What a fit used and measured: the analyst's record of a model (also ``fit_report.json``)."""

    method: str
    normals: str
    images_found: int
    images_used: int
    failed: list[dict] = field(default_factory=list)  # {"path", "reason"} per file that could not be read
    held_out: int = 0
    held_out_source: str = ""
    false_alarm_rate: float | None = None
    threshold: float | None = None
    held_out_scores: list[float] = field(default_factory=list)
    confidence: float | None = None                 # P(false-alarm rate <= promised) the threshold keeps
    promised_false_alarm_rate: float | None = None  # the asked rate, or the best the held-out normals can promise
    threshold_rank: int | None = None               # the threshold is this largest held-out score (1: their maximum)
    held_out_images: list[str] = field(default_factory=list)
    bank: dict = field(default_factory=dict)
    seconds_fit: float = 0.0
    seconds_total: float = 0.0
    reviews: dict = field(default_factory=dict)  # with --reviews: the files and how many verdicts of each kind were used
    runtime: str = ""  # which runtime ran the front-end while fitting, and why
    duplicates: dict = field(default_factory=dict)  # byte-identical images among the normals (exdd_lab.data.duplicates)

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"{self.method} fitted on {self.images_used} normal images of {self.normals} "
               f"({self.images_found} found, {len(self.failed)} unreadable and skipped) in {self.seconds_fit:.1f} s"]
        out += [f"  skipped {f['path']}: {f['reason']}" for f in self.failed[:10]]
        if len(self.failed) > 10:
            out.append(f"  ... and {len(self.failed) - 10} more (all listed in {REPORT})")
        if self.runtime:
            out.append(f"front-end: {self.runtime}")
        if self.reviews:
            r = self.reviews
            out.append(f"reviews ({len(r['files'])} file(s)): {r['normal']} normal image(s) joined the training normals, "
                       f"{r['defect']} defect image(s) {r['defect_use']}, {r['unsure']} unsure ignored"
                       + (f", {len(r['missing'])} no longer on disk (skipped)" if r["missing"] else "")
                       + (f", {r['foreign']} not from the run their file sits in (accepted: --foreign-reviews)"
                          if r.get("foreign") else "")
                       + (f", {r['free_standing']} from files in no archive run (not checked against one)"
                          if r.get("free_standing") else ""))
        if self.bank:
            out.append("bank: " + ", ".join(f"{k} {v:,}" for k, v in self.bank.items()))
        if self.duplicates.get("groups"):
            report = DuplicateReport([[(g["split"], g["path"]) for g in group] for group in self.duplicates["groups"]])
            out += [f"warning: {line}" for line in report.lines()]
        if self.threshold is None:
            out.append("threshold: none (no held-out normals): `exdd-lab score` leaves the decision column empty; "
                       "refit with --held-out N or --held-out-dir DIR")
        else:
            s = np.asarray(self.held_out_scores)
            choice = GuaranteedThreshold(self.threshold, self.threshold_rank, self.held_out, self.false_alarm_rate,
                                         self.promised_false_alarm_rate, self.confidence)
            out.append(f"threshold {self.threshold:.6g} ({self.held_out_source}; held-out scores {s.min():.4g} .. "
                       f"{s.max():.4g}, median {np.median(s):.4g}): {choice.sentence()}")
            if not choice.meets_request:
                out.append(f"  warning: {self.false_alarm_rate:.2%} was asked; this folder can promise "
                           f"{choice.alpha_promised:.2%} -- add normal images (or --held-out-dir) to promise less")
        return out


def readable_images(images: str | Path, image_size: int, progress: bool = False,
                    argument: str = "--normals") -> tuple[list[Sample], list[dict], int]:
    """The images of ``images`` (folder, glob or list file) that decode, as normal samples; the failed ones with
    their reason; how many image files were found (files of other types are ignored). Raises :class:`DatasetError` when
    nothing usable is there, or when the files look like a labelled data set (:mod:`~exdd_lab.analyst.labelled_layout`)."""
    spec = resolve_inputs(images, argument)
    found = list_inputs(spec)
    check_normals_layout([p for p, _ in found if Path(p).suffix.lower() in IMAGE_SUFFIXES], spec.root, argument)
    usable, failed, ignored = [], [], 0
    iterator = found
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(found, desc="reading", unit="img")
    for path, _ in iterator:
        decoded = decode_file(path, 32)  # a full decode: a truncated file fails here, not in the middle of fitting
        if decoded.status == SCORED:
            usable.append(Sample(Path(path), 0))
        elif decoded.status == SKIPPED:  # not an image type (a README beside the images): not a failure
            ignored += 1
        else:
            failed.append({"path": str(path), "reason": decoded.error})
    if len(found) == ignored:
        raise DatasetError(f"no image files in {images}", "point at a folder of normal images (searched recursively), "
                           "a quoted glob ('good/**/*.png') or a list file of paths")
    if not usable:
        raise DatasetError(f"none of the {len(found)} files in {images} could be read as an image",
                           f"the first reason: {failed[0]['reason']} ({failed[0]['path']})")
    return usable, failed, len(found) - ignored


#: The fewest normals a detector is fitted on: below it a bank (or a student) describes a handful of parts, not the
#: product (a bank of 1 image is 10 patches at 1 %); the kit's own smallest runs fit on 8.
MIN_FIT_NORMALS = 5


def _held_out_count(held_out: int | str, n: int, false_alarm_rate: float = 0.01, confidence: float = 0.95) -> int:
    if held_out == "auto":  # what the asked rate needs, where a fifth of the normals allows it
        return min(held_out_needed(false_alarm_rate, confidence), n // AUTO_SHARE) if n >= AUTO_MIN_NORMALS else 0
    count = int(held_out)
    if count < 0:
        raise DatasetError(f"--held-out {count}", "hold out 0 or more normals (or auto)")
    if count and n - count < MIN_FIT_NORMALS:
        raise DatasetError(f"--held-out {count} of {n} readable normals leaves {max(n - count, 0)} to fit on; a detector "
                           f"needs at least {MIN_FIT_NORMALS}",
                           f"hold out at most {max(n - MIN_FIT_NORMALS, 0)}, add normal images, or give --held-out-dir")
    return count


def _bank_sizes(detector: Detector) -> dict:
    described = detector.describe() if hasattr(detector, "describe") else {}
    return {k: int(v) for k, v in described.items() if k.endswith("_patches") and isinstance(v, (int, np.integer))}


def fit_on_normals(normals: str | Path, method: str = "patchcore", held_out: int | str = "auto",
                   held_out_dir: str | Path | None = None, false_alarm_rate: float = 0.01,
                   features: FeatureConfig | None = None, options: dict | None = None, seed: int = 0,
                   progress: bool = False, reviews: Sequence[str | Path] = (),
                   runtime: str = "torch", reviewed_defects: bool = False,
                   foreign_reviews: bool = False, confidence: float = 0.95) -> tuple[Detector, FitReport]:
    """Fit ``method`` on the readable images of ``normals``; return the detector (its ``threshold`` set when there are
    held-out normals) and the :class:`FitReport`. ``options`` are the method's (as ``compare`` takes them).

    ``reviews``: reviews files (:mod:`~exdd_lab.analyst.reviews`). Images reviewed as *normal* join the training normals
    (never the held-out ones: they were false alarms, and the threshold is set on the analyst's own normals). Images
    reviewed as *defect* join ExDD's positive bank through the ``"unusual"`` patch selection (they have no masks) only
    with ``reviewed_defects``: an oracle review on four data sets (benchmarks/README.md, "Teaching the detector
    back") found they never helped and cost up to 0.006 AUPRO, so by default they are counted and left out.

    ``runtime``: what runs the frozen front-end while fitting and scoring the held-out normals (``auto``: the fastest
    installed, :mod:`~exdd_lab.export.accelerate`; ``exdd-lab fit`` uses it); the detector returned runs PyTorch
    again, so the saved model is the same whichever ran.
    """
    if not 0 < false_alarm_rate < 1:
        raise ExddError(f"--false-alarm-rate {false_alarm_rate}", "give a share of normal images in (0, 1), e.g. 0.01")
    start = time.perf_counter()
    features = features or FeatureConfig()
    samples, failed, found = readable_images(normals, features.image_size, progress)
    if held_out_dir is not None:
        held, held_failed, _ = readable_images(held_out_dir, features.image_size, progress, "--held-out-dir")
        failed += held_failed
        source = f"from {held_out_dir}"
    else:
        count = _held_out_count(held_out, len(samples), false_alarm_rate, confidence)
        picked = set(np.random.default_rng(seed).choice(len(samples), count, replace=False).tolist()) if count else set()
        held = [s for i, s in enumerate(samples) if i in picked]
        samples = [s for i, s in enumerate(samples) if i not in picked]
        source = f"{count} moved out of the normals with seed {seed}" if count else ""
    reviewed = reviewed_samples(reviews, accept_foreign=foreign_reviews) if reviews else None
    if reviewed is not None:
        known = {str(s.image_path) for s in samples}
        samples = samples + [s for s in reviewed.normals if str(s.image_path) not in known]
    options = dict(options or {}, seed=seed)
    detector = compared_methods([method], features, samples, options, exdd_defects=options.get("n_synthetic") or 100,
                                progress=progress)[method]
    defect_use = ""
    if reviewed is not None:
        defect_use = (add_reviewed_defects(detector, reviewed.defects) if reviewed_defects else
                      "not used (measured not to help; --reviewed-defects feeds them to ExDD's positive bank)")
    torch_extractor = getattr(detector, "extractor", None)
    acceleration = accelerate(detector, runtime)
    fit_start = time.perf_counter()
    if reviewed is not None and reviewed_defects and reviewed.defects and hasattr(detector, "set_maskless_floor"):
        if not held:
            raise DatasetError("images reviewed as defect need held-out normals (they have no masks: only their cells "
                               "above the held-out normals' threshold enter the positive bank)",
                               "hold out normals: --held-out N (at least 20) or --held-out-dir DIR")
        detector.fit_negative(samples, progress)
        detector.set_maskless_floor(held, 1 - false_alarm_rate)
        detector.refit_positive(detector.defects, progress)
    else:
        detector.fit(samples, progress=progress)
    seconds_fit = time.perf_counter() - fit_start
    report = FitReport(method, str(normals), found, len(samples), failed, len(held), source, bank=_bank_sizes(detector),
                       seconds_fit=round(seconds_fit, 2))
    duplicates = find_duplicates({"train": [s.image_path for s in samples], "held-out": [s.image_path for s in held]})
    report.duplicates = duplicates.to_dict() if duplicates.groups else {}
    if reviewed is not None:
        report.reviews = dict(reviewed.to_dict(), files=[str(f) for f in reviews], defect_use=defect_use)
    if held:
        scores = np.asarray(detector.predict(held).scores, np.float64)
        choice = guaranteed_threshold(scores, false_alarm_rate, confidence)
        report.false_alarm_rate = float(false_alarm_rate)
        report.threshold = choice.threshold
        report.confidence, report.promised_false_alarm_rate = choice.confidence, choice.alpha_promised
        report.threshold_rank = choice.k
        report.held_out_scores = [round(float(s), 6) for s in scores]
        report.held_out_images = [str(s.image_path) for s in held]
        detector.threshold = {"value": report.threshold, "kind": "normal_only", "rule": "order statistic",
                              "dataset": str(held_out_dir or normals), "held_out": len(held), "rank": choice.k,
                              "false_alarm_rate": float(false_alarm_rate), "confidence": choice.confidence,
                              "promised_false_alarm_rate": choice.alpha_promised, "recall": None}
    if torch_extractor is not None:
        detector.extractor = torch_extractor  # saved and scored later as any PyTorch detector
    report.runtime = acceleration.note
    report.seconds_total = round(time.perf_counter() - start, 2)
    return detector, report


def add_reviewed_defects(detector: Detector, defects: list[Sample]) -> str:
    """Give ``detector`` the images reviewed as defect, where it can use them; say what became of them."""
    if not defects:
        return "(none)"
    if not hasattr(detector, "refit_positive"):
        return f"not used ({detector.name} has no defect bank; fit --method exdd to use them)"
    detector.defects = list(detector.defects) + list(defects)
    detector.settings.positive_patches = "unusual"
    return "added to ExDD's positive bank (their cells above the held-out normals' threshold)"


def save_fit(detector: Detector, report: FitReport, out: str | Path,
             draw_histogram: Callable[[FitReport, Path], None] | None = None) -> Path:
    """The model, ``fit_report.json`` and (with ``draw_histogram``) the held-out scores' histogram in ``out``, built
    under a temporary name and renamed in one step (:func:`~exdd_lab.storage.atomic_directory`)."""
    out = Path(out)
    if out.exists():
        raise ExddError(f"{out} already exists", "save to a new folder (detectors are never overwritten in place)")
    if not isinstance(detector, Savable):
        raise ExddError(f"method {report.method} cannot be saved", "fit patchcore, exdd or student-teacher")
    with atomic_directory(out) as staging:
        staging.rmdir()  # the detector's own save makes the folder (it refuses an existing one)
        detector.save(staging)
        (staging / REPORT).write_text(json.dumps(report.to_dict(), indent=1))
        if draw_histogram is not None and report.held_out_scores:
            draw_histogram(report, staging / HISTOGRAM)
    return out
