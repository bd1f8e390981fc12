"""Checks for the lessons' exercises: the student's function against the kit's own, with a hint, never the answer.

A check runs the student's function and the kit's reference on small seeded inputs and compares the results. It
passes silently (printing one line), or raises :class:`ExerciseNotSolved` with a *specific* hint found by
:func:`diagnose` — wrong shape, nothing returned, squared distances, off by a constant factor, a row of
neighbours that includes the query itself, the axes swapped — and never prints the expected values.

The solution each notebook shows is the master (the committed lesson); ``exdd-lab lessons`` writes the student
versions, in which the solution is a stub that raises :class:`NotImplementedError`. The lessons' own checks are
:mod:`exdd_lab.lab.checks`.
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
        return f"your function returns {kind}; it must return " + (
            "a number" if want.ndim == 0 else f"an array of shape {want.shape}")
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


Hint = Callable[[np.ndarray, np.ndarray, Case], "str | None"]  # (got, expected, case) -> a hint for one exercise


def call_student(exercise: str, student: Callable, case: Case, where: str = "") -> Any:
    """The student's function on one case; its stub's ``NotImplementedError`` becomes the "not solved yet" hint, any
    other error says where it happened (never what the answer is)."""
    try:
        return student(*case.args, **case.kwargs)
    except NotImplementedError as exc:
        raise ExerciseNotSolved(f"{exercise} is not solved yet: replace the `raise NotImplementedError` in its "
                                f"cell with your code, run that cell, then this check ({exc})") from None
    except Exception as exc:  # the student's code failed: say where, not what the answer is
        raise ExerciseNotSolved(f"{exercise}: your function raised {type(exc).__name__}: {exc} "
                                f"(on {where}{', ' + case.note if case.note else ''})") from exc


def matching_hint(got: np.ndarray, mistakes: dict[str, Any], rtol: float = 1e-5, atol: float = 1e-5) -> str | None:
    """The hint of the first typical mistake whose result ``got`` reproduces (``{hint: what that mistake returns}``)."""
    for hint, value in mistakes.items():
        value = _as_array(value)
        if value is not None and value.shape == np.shape(got) and np.allclose(got, value, rtol=rtol, atol=atol):
            return hint
    return None


def check_against_reference(exercise: str, student: Callable, reference: Callable, cases: list[Case],
                            rtol: float = 1e-4, atol: float = 1e-5, hints: tuple[Hint, ...] = (),
                            quiet: bool = False) -> None:
    """Run ``student`` and ``reference`` on every case; print a pass line, or raise :class:`ExerciseNotSolved`.

    ``hints`` are tried first, on results of the right shape: each says what one typical mistake of this exercise
    looks like; :func:`diagnose` covers the general ones. ``quiet``: no pass line (a check made of several calls)."""
    for i, case in enumerate(cases, 1):
        expected = reference(*case.args, **case.kwargs)
        got = call_student(exercise, student, case, f"case {i} of {len(cases)}")
        hint = diagnose(got, expected, rtol, atol)
        have, want = _as_array(got), _as_array(expected)
        if hint is not None and have is not None and have.shape == want.shape:
            hint = next((h for h in (rule(have, want, case) for rule in hints) if h), hint)
        if hint is not None:
            where = f" (case {i} of {len(cases)}{': ' + case.note if case.note else ''})"
            raise ExerciseNotSolved(f"{exercise}: not yet — {hint}{where}")
    if not quiet:
        print(f"{exercise}: pass ({len(cases)} cases)")
