"""Checks for the lessons' exercises: the student's function against the kit's own, with a hint, never the answer.

A check runs the student's function and the kit's reference on small seeded inputs and compares the results. It
passes silently (printing one line), or raises :class:`ExerciseNotSolved` with a *specific* hint found by
:func:`diagnose` — wrong shape, nothing returned, squared distances, off by a constant factor, a row of
neighbours that includes the query itself, the axes swapped — and never prints the expected values.

The solution each notebook shows is the master (the committed lesson); ``exdd-lab lessons`` writes the student
versions, in which the solution is a stub that raises :class:`NotImplementedError`. Taught in
``notebooks/01_feature_extraction.ipynb`` and ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch


class ExerciseNotSolved(AssertionError):
    """A check that failed: what is wrong, as a hint the student can act on."""


@dataclass
class Case:
    """One seeded input to call both functions with (positional ``args``, keyword ``kwargs``)."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    note: str = ""  # what makes this case special, named in the hint ("a query that is also a reference")


def _as_array(value: Any) -> np.ndarray | None:
    if value is None or value is Ellipsis:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def diagnose(got: Any, expected: Any, rtol: float = 1e-4, atol: float = 1e-5) -> str | None:
    """``None`` when ``got`` matches ``expected``; otherwise the most specific hint that explains the difference."""
    want = _as_array(expected)
    have = _as_array(got)
    if have is None:
        kind = "nothing (None)" if got is None or got is Ellipsis else f"a {type(got).__name__}"
        return f"your function returns {kind}; it must return an array of shape {want.shape}"
    if have.shape != want.shape:
        if have.size == want.size:
            if have.ndim == want.ndim == 2 and have.T.shape == want.shape and np.allclose(have.T, want, rtol, atol):
                return f"the axes are swapped: you return shape {have.shape}, transpose it to {want.shape}"
            return f"wrong shape: you return {have.shape}, the check expects {want.shape} (the same numbers, reshaped?)"
        return f"wrong shape: you return {have.shape}, the check expects {want.shape}"
    if not np.isfinite(have).all():
        return "your result holds NaN or inf: look for a division by zero or a log/sqrt of a negative number"
    if np.allclose(have, want, rtol=rtol, atol=atol):
        return None
    if np.allclose(have, want ** 2, rtol=1e-3, atol=1e-4) and not np.allclose(want, want ** 2, rtol=1e-3):
        return "these look like squared distances: take the square root"
    if np.allclose(have ** 2, want, rtol=1e-3, atol=1e-4) and not np.allclose(want, want ** 2, rtol=1e-3):
        return "these look like the square roots of what the check expects: drop the square root"
    scale = float(np.dot(have.ravel(), want.ravel()) / max(np.dot(want.ravel(), want.ravel()), 1e-300))
    if abs(scale - 1) > 1e-3 and np.allclose(have, scale * want, rtol=1e-3, atol=1e-4):
        return f"off by a constant factor (about {scale:.3g}): look for a missing or extra constant"
    shift = float(np.mean(have - want))
    if abs(shift) > atol and np.allclose(have, want + shift, rtol=1e-3, atol=1e-4):
        return f"off by a constant ({shift:+.3g}): look for an added or missing term"
    wrong = ~np.isclose(have, want, rtol=rtol, atol=atol)
    return f"{int(wrong.sum())} of {wrong.size} values differ from the kit's (largest difference {np.abs(have - want).max():.3g})"


Hint = Callable[[np.ndarray, np.ndarray], "str | None"]  # (got, expected) -> a hint specific to one exercise


def check_against_reference(exercise: str, student: Callable, reference: Callable, cases: list[Case],
                            rtol: float = 1e-4, atol: float = 1e-5, hints: tuple[Hint, ...] = ()) -> None:
    """Run ``student`` and ``reference`` on every case; print a pass line, or raise :class:`ExerciseNotSolved`.

    ``hints`` are tried first, on results of the right shape: each says what one typical mistake of this exercise
    looks like; :func:`diagnose` covers the general ones."""
    for i, case in enumerate(cases, 1):
        expected = reference(*case.args, **case.kwargs)
        try:
            got = student(*case.args, **case.kwargs)
        except NotImplementedError as exc:
            raise ExerciseNotSolved(f"{exercise} is not solved yet: replace the `raise NotImplementedError` in its "
                                    f"cell with your code, run that cell, then this check ({exc})") from None
        except Exception as exc:  # the student's code failed: say where, not what the answer is
            raise ExerciseNotSolved(f"{exercise}: your function raised {type(exc).__name__}: {exc} "
                                    f"(on case {i} of {len(cases)}{', ' + case.note if case.note else ''})") from exc
        hint = diagnose(got, expected, rtol, atol)
        have, want = _as_array(got), _as_array(expected)
        if hint is not None and have is not None and have.shape == want.shape:
            hint = next((h for h in (rule(have, want) for rule in hints) if h), hint)
        if hint is not None:
            where = f" (case {i} of {len(cases)}{': ' + case.note if case.note else ''})"
            raise ExerciseNotSolved(f"{exercise}: not yet — {hint}{where}")
    print(f"{exercise}: pass ({len(cases)} cases)")


#: A distance of 0 computed through the expansion |a|^2 - 2 a.b + |b|^2 comes out near sqrt(rounding): ~1e-3 in float32.
NEAREST_ATOL = 2e-3


def _patch_sets(seed: int) -> list[Case]:
    gen = np.random.default_rng(seed)
    reference = gen.normal(size=(40, 6))
    queries = gen.normal(size=(25, 6))
    shared = np.concatenate([queries[:5], reference[:3]])  # three queries that are also references: distance 0
    return [Case((reference, queries), note="random patches"),
            Case((reference, shared), note="queries that are also normal patches, whose nearest distance is 0"),
            Case((reference[:1], queries[:4]), note="a reference set of one patch")]


def reference_nearest_distances(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The kit's answer to notebook 01's exercise: Euclidean distance ``(Q,)`` of each query to its nearest reference."""
    from exdd_lab.components.neighbours import knn

    return knn(queries, reference, k=1)[0][:, 0]


def _skipped_the_nearest(got: np.ndarray, expected: np.ndarray) -> str | None:
    zero = expected < 1e-6
    if zero.any() and not np.allclose(got[zero], 0, atol=NEAREST_ATOL) and np.allclose(got[~zero], expected[~zero], 1e-4, NEAREST_ATOL):
        return ("a query that is itself a normal patch must get distance 0: keep the nearest reference, do not skip "
                "it (excluding the query itself is for a bank searched against its own items, not here)")
    return None


def _not_the_minimum(got: np.ndarray, expected: np.ndarray) -> str | None:
    if (got > expected + 1e-5).all():
        return "every distance is larger than the nearest one: take the minimum over the references, not another one"
    return None


def check_nearest_distances(student: Callable[[np.ndarray, np.ndarray], np.ndarray], seed: int = 0) -> None:
    """Notebook 01, Exercise 1: ``nearest_distances(reference (M, C), queries (Q, C)) -> (Q,)``."""
    check_against_reference("Exercise 1 (nearest-normal distances)", student, reference_nearest_distances,
                            _patch_sets(seed), atol=NEAREST_ATOL, hints=(_skipped_the_nearest, _not_the_minimum))


def reference_image_scores(patch_scores: np.ndarray) -> np.ndarray:
    """The kit's answer to notebook 01's second exercise: an image's score is its largest patch score ``(N,)``."""
    return np.asarray(patch_scores, np.float64).reshape(len(patch_scores), -1).max(1)


def check_image_scores(student: Callable[[np.ndarray], np.ndarray], seed: int = 0) -> None:
    """Notebook 01, Exercise 2: ``image_scores(patch_scores (N, h, w)) -> (N,)``."""
    gen = np.random.default_rng(seed)
    cases = [Case((gen.random((6, 4, 4)),), note="six images of 4x4 patches"),
             Case((gen.random((3, 2, 5)) - 2.0,), note="negative scores and a grid that is not square")]
    check_against_reference("Exercise 2 (image scores)", student, reference_image_scores, cases)
