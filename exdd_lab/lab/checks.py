"""The lessons' checks, one per exercise, grouped by notebook: seeded inputs, the kit's answer, the typical mistakes.

Each ``check_*`` takes the student's function; it prints a pass line or raises
:class:`~exdd_lab.lab.exercises.ExerciseNotSolved` with a hint. Each ``reference_*`` is the kit's answer, through the
kit's own code where it has one (faiss search, the coreset, the metrics), so a check measures the student against
what the kit runs. Taught in ``notebooks/01_feature_extraction.ipynb`` and
``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from exdd_lab.lab.exercises import Case, check_against_reference

# -- notebook 01: patch features -------------------------------------------------------------------------------------

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


def _skipped_the_nearest(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    zero = expected < 1e-6
    if zero.any() and not np.allclose(got[zero], 0, atol=NEAREST_ATOL) and np.allclose(got[~zero], expected[~zero], 1e-4, NEAREST_ATOL):
        return ("a query that is itself a normal patch must get distance 0: keep the nearest reference, do not skip "
                "it (excluding the query itself is for a bank searched against its own items, not here)")
    return None


def _not_the_minimum(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
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


# -- notebook 02: PatchCore ------------------------------------------------------------------------------------------

def reference_k_center(points: np.ndarray, k: int, first: int = 0) -> np.ndarray:
    """The kit's greedy k-center (:func:`exdd_lab.bank.coreset.greedy_k_center`): indices ``(k,)`` in the order chosen."""
    import torch

    from exdd_lab.bank.coreset import greedy_k_center

    return greedy_k_center(torch.as_tensor(np.asarray(points, np.float32)).clone(), k, first)


def _k_center_hints(first: int) -> tuple:
    def wrong_start(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
        return f"start from the point `first` (index {first}): it is the first centre" if got[0] != expected[0] else None

    def chosen_twice(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
        if len(set(got.tolist())) < len(got):
            return ("a point is chosen twice: after each pick, lower every point's distance to the chosen set with its "
                    "distance to the new centre (a chosen point then has distance 0 and is never the farthest)")
        return None

    def other_order(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
        if set(got.tolist()) == set(expected.tolist()):
            return "the right points in another order: return the indices in the order they were chosen"
        return None

    def nearest_not_farthest(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
        if len(got) > 1 and got[1] != expected[1]:
            return "the second centre is not the point farthest from the first: pick the argmax of the distance to the set"
        return None

    return wrong_start, chosen_twice, other_order, nearest_not_farthest


def check_k_center(student: Callable[[np.ndarray, int, int], np.ndarray], seed: int = 0) -> None:
    """Notebook 02, Exercise 1: ``k_center(points (n, d), k, first) -> indices (k,)``, greedy farthest-point order."""
    gen = np.random.default_rng(seed)
    blobs = np.concatenate([gen.normal(0, 1, (60, 5)), gen.normal(8, 0.5, (5, 5))])  # a small far cluster: rare patches
    cases = [Case((gen.normal(size=(50, 4)), 8, 0), note="50 random points, 8 centres"),
             Case((blobs, 6, 3), note="a rare far cluster that a coreset must not drop, starting at point 3")]
    for case in cases:  # one at a time: each has its own start, so its own hints
        check_against_reference("Exercise 1 (greedy k-center)", student, reference_k_center, [case],
                                rtol=0, atol=0, hints=_k_center_hints(case.args[2]), quiet=True)
    print(f"Exercise 1 (greedy k-center): pass ({len(cases)} cases)")


def reference_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The kit's image AUROC (:func:`exdd_lab.evaluation.metrics.auroc`)."""
    from exdd_lab.evaluation.metrics import auroc

    return auroc(np.asarray(labels), np.asarray(scores, np.float64))


def _swapped_classes(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    if np.isclose(got, 1 - expected, atol=1e-9) and not np.isclose(expected, 0.5):
        return "you get 1 - AUROC: label 1 is a defect, and a higher score means more anomalous"
    return None


def _ties_not_halved(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    return ("right without ties, wrong with them: a tie between a defect and a normal image counts one half "
            "(average ranks: scipy.stats.rankdata)")


def check_auroc(student: Callable[[np.ndarray, np.ndarray], float], seed: int = 0) -> None:
    """Notebook 02, Exercise 2: ``auroc_by_ranks(labels (N,), scores (N,)) -> float``."""
    gen = np.random.default_rng(seed)
    labels = np.r_[np.zeros(30, int), np.ones(20, int)]
    continuous = Case((labels, gen.normal(size=50) + labels), note="continuous scores, no ties")
    tied = Case((labels, np.round(gen.normal(size=50) + labels)), note="whole-number scores with many ties")
    check_against_reference("Exercise 2 (AUROC by ranks)", student, reference_auroc, [continuous],
                            rtol=1e-9, atol=1e-9, hints=(_swapped_classes,), quiet=True)
    check_against_reference("Exercise 2 (AUROC by ranks)", student, reference_auroc, [tied],
                            rtol=1e-9, atol=1e-9, hints=(_swapped_classes, _ties_not_halved), quiet=True)
    print("Exercise 2 (AUROC by ranks): pass (2 cases)")


# -- notebook 03: the DDPM -------------------------------------------------------------------------------------------

def _scheduler():
    from exdd_lab.synthesis.ddpm import DdpmConfig, build_scheduler

    return build_scheduler(DdpmConfig())


def _diffusion_cases(seed: int) -> list[Case]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    alphas_cumprod = _scheduler().alphas_cumprod
    x0 = torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1
    noise = torch.randn(4, 3, 8, 8, generator=gen)
    return [Case((x0, noise, torch.tensor([0, 10, 500, 999]), alphas_cumprod), note="four images at four noise levels"),
            Case((x0[:2], noise[:2], torch.tensor([250, 250]), alphas_cumprod), note="two images at one noise level")]


def reference_add_noise(x0, noise, t, alphas_cumprod):
    """The kit's forward process: diffusers' ``DDPMScheduler.add_noise`` (the scheduler the kit's DDPM trains with)."""
    return _scheduler().add_noise(x0, noise, t)


def _forgot_square_roots(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    x0, noise, t, ab = (np.asarray(a, np.float64) for a in case.args)
    a = ab[t.astype(int)].reshape(-1, 1, 1, 1)
    if np.allclose(got, a * x0 + (1 - a) * noise, atol=1e-5):
        return "the coefficients are sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t): the square roots are missing"
    if np.allclose(got, np.sqrt(1 - a) * x0 + np.sqrt(a) * noise, atol=1e-5):
        return "the two coefficients are swapped: the clean image is scaled by sqrt(alpha_bar_t), the noise by sqrt(1 - alpha_bar_t)"
    return None


def _one_level_for_all(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    x0, noise, t, ab = case.args
    if len(set(t.tolist())) > 1 and np.allclose(got, reference_add_noise(x0, noise, t[:1].expand_as(t), ab), atol=1e-5):
        return "each image has its own step t[i]: index alpha_bar with t and reshape it to (N, 1, 1, 1) to broadcast"
    return None


def check_add_noise(student: Callable, seed: int = 0) -> None:
    """Notebook 03, Exercise 1: ``add_noise(x0 (N, C, H, W), noise, t (N,), alphas_cumprod (T,)) -> x_t``."""
    check_against_reference("Exercise 1 (the forward process q(x_t | x_0))", student, reference_add_noise,
                            _diffusion_cases(seed), hints=(_forgot_square_roots, _one_level_for_all))


def fixed_denoiser(x, t):
    """A stand-in for the UNet in the loss check: any fixed function of ``(x_t, t)`` tells a right loss from a wrong one."""
    return 0.8 * x + 1e-3 * t.reshape(-1, 1, 1, 1).to(x.dtype)


def reference_noise_loss(denoiser, x0, noise, t, alphas_cumprod):
    """The kit's DDPM loss: the mean squared error between the predicted and the true noise, at ``x_t``."""
    import torch.nn.functional as F

    return F.mse_loss(denoiser(reference_add_noise(x0, noise, t, alphas_cumprod), t), noise)


def _loss_mistakes(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    import torch.nn.functional as F

    denoiser, x0, noise, t, ab = case.args
    x_t = reference_add_noise(x0, noise, t, ab)
    wrong = {"the target is the noise epsilon that was added, not the clean image x_0": F.mse_loss(denoiser(x_t, t), x0),
             "the network sees the noisy image x_t, not the clean x_0": F.mse_loss(denoiser(x0, t), noise),
             "average the squared errors (a mean, not a sum)": F.mse_loss(denoiser(x_t, t), noise, reduction="sum")}
    return next((hint for hint, value in wrong.items() if np.isclose(got, float(value), rtol=1e-5)), None)


def check_noise_loss(student: Callable, seed: int = 0) -> None:
    """Notebook 03, Exercise 2: ``noise_prediction_loss(denoiser, x0, noise, t, alphas_cumprod) -> scalar``."""
    cases = [Case((fixed_denoiser, *case.args), note=case.note) for case in _diffusion_cases(seed)]
    check_against_reference("Exercise 2 (the epsilon-prediction loss)", student, reference_noise_loss, cases,
                            hints=(_loss_mistakes,))
