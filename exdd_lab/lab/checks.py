"""The lessons' checks, one per exercise, grouped by notebook: seeded inputs, the kit's answer, the typical mistakes.

Each ``check_*`` takes the student's function; it prints a pass line or raises
:class:`~exdd_lab.lab.exercises.ExerciseNotSolved` with a hint. Each ``reference_*`` is the kit's answer, through the
kit's own code where it has one (faiss search, the coreset, the metrics), so a check measures the student against
what the kit runs. Each section names the notebook whose exercises it checks.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from exdd_lab.lab.exercises import Case, ExerciseNotSolved, call_student, check_against_reference, matching_hint

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
    return matching_hint(got, wrong, rtol=1e-5, atol=0)


def check_noise_loss(student: Callable, seed: int = 0) -> None:
    """Notebook 03, Exercise 2: ``noise_prediction_loss(denoiser, x0, noise, t, alphas_cumprod) -> scalar``."""
    cases = [Case((fixed_denoiser, *case.args), note=case.note) for case in _diffusion_cases(seed)]
    check_against_reference("Exercise 2 (the epsilon-prediction loss)", student, reference_noise_loss, cases,
                            hints=(_loss_mistakes,))


# -- notebook 04: ExDD's scores ---------------------------------------------------------------------------------------

def _bank_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    bank = rng.normal(size=(40, 6))
    bank[1:10] = bank[0] + 0.05 * rng.normal(size=(9, 6))  # a dense region around item 0; the rest is sparse
    queries = np.concatenate([rng.normal(size=(12, 6)), bank[:3] + 0.01, bank[30:32] + 0.02])
    temperature = float(np.sqrt(bank.shape[1]))
    return [Case((queries, bank, 4, temperature), note="a bank with a dense region and isolated items"),
            Case((queries[:5], bank[:1], 4, temperature), note="a bank of one item: no neighbourhood, weight 1")]


def reference_neighbourhood_distance(queries: np.ndarray, bank: np.ndarray, k: int, temperature: float) -> np.ndarray:
    """The kit's reweighted distance: ``w * d`` to the nearest bank item, ``w`` from the kit's
    :func:`~exdd_lab.methods.exdd.ratio.bank_support` and :func:`~exdd_lab.methods.exdd.ratio.neighbourhood_weights`
    (an exact float64 search here, so a distance of 0 stays 0)."""
    from exdd_lab.methods.exdd.ratio import bank_support, neighbourhood_weights

    items, q = torch.as_tensor(bank, dtype=torch.float64), torch.as_tensor(queries, dtype=torch.float64)

    def search(x: torch.Tensor, kk: int) -> tuple[np.ndarray, np.ndarray]:
        found = torch.cdist(x, items).topk(kk, largest=False)
        return found.values.numpy(), found.indices.numpy()

    d, nearest = search(q, 1)
    w = neighbourhood_weights(q, items, nearest[:, 0], bank_support(items, k, search), temperature)
    return w * d[:, 0]


def _plain_distance(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    queries, bank = case.args[:2]
    plain = reference_neighbourhood_distance(queries, bank, 1, case.args[3])
    if len(bank) > 1 and np.allclose(got, plain, rtol=1e-4, atol=1e-5):
        return "this is the plain nearest distance: multiply it by the Eq. 7 weight w = 1 - softmax(d / T)[0]"
    return None


def _weight_variants(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    queries, bank, k, temperature = case.args
    if len(bank) < 2:
        return ("with a bank of one item there is no neighbourhood: the weight is 1 and the score is the plain "
                "distance (take k = min(k, bank size))")
    q, b = torch.as_tensor(queries, dtype=torch.float64), torch.as_tensor(bank, dtype=torch.float64)
    d = torch.cdist(q, b)
    nearest_d, nearest = d.min(1)
    support = torch.cdist(b, b).topk(min(k, len(b)), largest=False).indices[nearest]
    to_support = torch.gather(d, 1, support)
    others = torch.gather(d, 1, torch.cdist(b, b).topk(min(k + 1, len(b)), largest=False).indices[nearest][:, 1:])
    wrong = {
        "the softmax is over +d / T (a larger distance gets a larger share), not -d / T":
            1 - torch.softmax(-to_support / temperature, 1)[:, 0],
        "divide the distances by the temperature T = sqrt(D) before the softmax": 1 - torch.softmax(to_support, 1)[:, 0],
        "the support starts with the nearest item itself, followed by its k - 1 nearest bank neighbours":
            1 - torch.softmax(others[:, :k] / temperature, 1)[:, 0],
        "the support is the nearest item's neighbours in the bank, not the query's own k nearest items":
            1 - torch.softmax(d.topk(min(k, len(b)), largest=False).values / temperature, 1)[:, 0],
        "the weight is 1 - softmax(...)[0], the share of the nearest item subtracted from 1":
            torch.softmax(to_support / temperature, 1)[:, 0],
    }
    return matching_hint(got, {hint: weight * nearest_d for hint, weight in wrong.items()}, rtol=1e-4, atol=1e-5)


def check_neighbourhood_distance(student: Callable, seed: int = 0) -> None:
    """Notebook 04, Exercise 1: ``neighbourhood_aware_distance(queries (P, D), bank (M, D), k, temperature) -> (P,)``."""
    check_against_reference("Exercise 1 (the neighbourhood-aware distance)", student, reference_neighbourhood_distance,
                            _bank_cases(seed), rtol=1e-4, atol=1e-5, hints=(_plain_distance, _weight_variants))


def _gate_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    d_neg = rng.uniform(0, 2, size=(3, 5, 5))
    d_pos = rng.uniform(0, 1, size=(3, 5, 5))
    return [Case((d_neg, d_pos, 1.0, 0.4), note="three 5x5 grids"),
            Case((d_neg, d_pos, 1.0, 0.4), {"strength": 0.5}, note="strength 0.5")]


def reference_gated(d_neg: np.ndarray, d_pos: np.ndarray, worst_patch: float, defect_distance: float,
                    strength: float = 1.0) -> np.ndarray:
    """The kit's :func:`~exdd_lab.methods.exdd.ratio.gated_scores`."""
    from exdd_lab.methods.exdd.ratio import NormalStatistics, gated_scores

    return gated_scores(d_neg, d_pos, NormalStatistics(worst_patch, defect_distance), strength)


def _gate_mistakes(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    d_neg, d_pos, worst, scale = case.args
    strength = case.kwargs.get("strength", 1.0)
    closeness = np.clip(1 - d_pos / scale, 0, 1)
    if (got < d_neg - 1e-9).any():
        return "some scores are below d_neg: the gated score only raises PatchCore's score, never lowers it"
    if np.allclose(got, d_neg * (1 + strength * closeness)):
        return "every patch is raised: only a patch with d_neg above worst_patch (an unusual one) may be"
    if np.allclose(got, d_neg * (1 + closeness * (d_neg > worst))) and strength != 1:
        return "use the strength argument: d_neg * (1 + strength * closeness)"
    if np.allclose(got, d_neg * (1 + strength * (1 - d_pos / scale).clip(min=0) * (d_neg > worst))) or \
            (got > (1 + strength) * d_neg + 1e-9).any():
        return "closeness must be clipped to [0, 1]: the score is at most (1 + strength) * d_neg"
    return None


def check_gated(student: Callable, seed: int = 0) -> None:
    """Notebook 04, Exercise 2: ``gated(d_neg, d_pos, worst_patch, defect_distance, strength=1.0)``."""
    check_against_reference("Exercise 2 (the gated score)", student, reference_gated, _gate_cases(seed),
                            rtol=1e-9, atol=1e-12, hints=(_gate_mistakes,))


# -- notebook 05: the student–teacher ------------------------------------------------------------------------------------

def _feature_pyramids(seed: int) -> list[Case]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(2, 8, 16, 16), (2, 12, 8, 8), (2, 16, 4, 4)]
    teacher = [torch.randn(s, generator=gen) for s in shapes]
    student = [t + 0.7 * torch.randn(t.shape, generator=gen) for t in teacher]
    student[0][:, :, :4, :4] = -student[0][:, :, :4, :4]  # a corner that points away from the teacher
    return [Case((student, teacher), note="three scales, two images"),
            Case((student[:1], teacher[:1]), note="one scale"),
            Case((student, teacher), {"neighbourhood": 3}, note="each map averaged over 3 x 3 cells first")]


def reference_discrepancy_map(student: list, teacher: list, neighbourhood: int = 1) -> torch.Tensor:
    """The kit's map: :func:`~exdd_lab.student_teacher.network.cosine_discrepancy` per scale, then
    :func:`~exdd_lab.student_teacher.inference.mean_over_scales`."""
    from exdd_lab.student_teacher.inference import mean_over_scales
    from exdd_lab.student_teacher.network import cosine_discrepancy

    return mean_over_scales(cosine_discrepancy(student, teacher, neighbourhood))


def _discrepancy_mistakes(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    import torch.nn.functional as F

    student, teacher = case.args
    size = teacher[0].shape[-2:]
    k = case.kwargs.get("neighbourhood", 1)

    def combine(maps, mode="bilinear", reduce="mean"):
        up = [m if m.shape[-2:] == size else
              F.interpolate(m[:, None], size=size, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))[:, 0]
              for m in maps]
        return getattr(torch.stack(up), reduce)(0).numpy()

    cos = [F.cosine_similarity(s, t, dim=1) for s, t in zip(student, teacher)]
    wrong = {"this is the cosine similarity: the discrepancy is 1 - cos": combine(cos),
             "normalise the features first: 1 - cos uses unit vectors, not the raw dot product":
                 combine([1 - (s * t).sum(1) for s, t in zip(student, teacher)]),
             "upsample with bilinear interpolation (align_corners=False), not nearest":
                 combine([1 - c for c in cos], mode="nearest"),
             "average the scales (a mean, not a sum)": combine([1 - c for c in cos], reduce="sum")}
    if k > 1:
        pooled = lambda m: F.avg_pool2d(m, k, 1, k // 2)  # noqa: E731
        wrong |= {
            "use the neighbourhood: average each map over k x k cells (F.avg_pool2d, stride 1, padding k // 2)":
                combine([1 - c for c in cos]),
            "average the features over the neighbourhood *before* the cosine, not the discrepancy after it":
                combine([pooled((1 - c)[:, None])[:, 0] for c in cos])}
    return matching_hint(got, wrong, rtol=1e-5, atol=1e-5)


def check_discrepancy_map(student_fn: Callable, seed: int = 0) -> None:
    """Notebook 05, Exercise 2: ``discrepancy_map(student_maps, teacher_maps, neighbourhood=1) -> (N, h_0, w_0)``."""
    check_against_reference("Exercise 2 (the cosine discrepancy map)", student_fn, reference_discrepancy_map,
                            _feature_pyramids(seed), rtol=1e-4, atol=1e-5, hints=(_discrepancy_mistakes,))


def _segmentation_cases(seed: int) -> list[Case]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 1, 8, 8, generator=gen) * 2
    target = torch.zeros(3, 1, 8, 8)
    target[0, :, 2:5, 3:6] = 1
    target[2, :, 6:, :2] = 1
    return [Case((logits, target), note="three masks, one empty"),
            Case((logits, target), {"gamma": 0.0}, note="gamma = 0: plain binary cross-entropy")]


def reference_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """The kit's :func:`~exdd_lab.student_teacher.losses.focal_loss` (no class weight ``alpha``)."""
    from exdd_lab.student_teacher.losses import focal_loss

    return focal_loss(logits, target, gamma)


def _focal_mistakes(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    import torch.nn.functional as F

    logits, target = case.args
    gamma = case.kwargs.get("gamma", 2.0)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    wrong = {"the (1 - p_t)^gamma factor is missing: this is plain binary cross-entropy": bce.mean(),
             "p_t is the probability of the *true* class: p where the target is 1, 1 - p where it is 0":
                 ((1 - p) ** gamma * bce).mean(),
             "the factor is (1 - p_t)^gamma, small for pixels already right, not p_t^gamma": (p_t ** gamma * bce).mean(),
             "average over pixels (a mean, not a sum)": ((1 - p_t) ** gamma * bce).sum()}
    return matching_hint(got, wrong, rtol=1e-5, atol=0)


def check_focal_loss(student: Callable, seed: int = 0) -> None:
    """Notebook 05, Exercise 1: ``focal_loss(logits (N, 1, h, w), target, gamma=2.0) -> scalar``."""
    check_against_reference("Exercise 1 (the focal loss)", student, reference_focal_loss, _segmentation_cases(seed),
                            rtol=1e-5, atol=1e-7, hints=(_focal_mistakes,))


# -- notebook 00: the data ----------------------------------------------------------------------------------------------

def _raw_masks(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    masks = []
    for h, w in ((32, 32), (24, 40), (16, 16)):
        mask = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        mask[y:y + rng.integers(2, h // 2), x:x + rng.integers(2, w // 2)] = 255
        masks.append(mask)
    masks.append(np.zeros((20, 20), np.uint8))
    ones = (masks[0] > 0).astype(np.uint8)  # some data sets store defect pixels as 1, not 255
    return [Case((masks,), note="masks of three sizes (0/255) and an empty one"), Case(([ones],), note="a 0/1 mask")]


def reference_defect_fractions(masks: list[np.ndarray]) -> np.ndarray:
    """The share of each mask's pixels that are defect (non-zero), as ``validate_dataset`` reports it."""
    return np.array([float((np.asarray(m) > 0).mean()) for m in masks])


def _fraction_mistakes(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    (masks,) = case.args
    if np.allclose(got, [np.asarray(m, np.float64).mean() for m in masks]) and any(np.asarray(m).max() > 1 for m in masks):
        return "a mask file stores 255 (or 1) for a defect pixel: count the pixels that are > 0, not their values"
    if np.allclose(got, [(np.asarray(m) > 0).sum() for m in masks]):
        return "these are pixel counts: divide by the number of pixels of that mask (masks differ in size)"
    if np.allclose(got, 100 * expected):
        return "these are percentages: return fractions in [0, 1]"
    return None


def check_defect_fractions(student: Callable, seed: int = 0) -> None:
    """Notebook 00, Exercise 1: ``defect_fractions(masks: list of (H, W) arrays) -> (N,)``."""
    check_against_reference("Exercise 1 (defect area per image)", student, reference_defect_fractions, _raw_masks(seed),
                            rtol=1e-9, atol=1e-12, hints=(_fraction_mistakes,))


# -- notebook 06: thresholds and failures -------------------------------------------------------------------------------

def _threshold_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(30, int), np.ones(12, int)]
    scores = np.round(np.r_[rng.normal(1, 0.3, 30), rng.normal(1.6, 0.4, 12)], 2)
    scores[[3, 35]] = 1.25  # a normal and a defect exactly at the threshold: a tie decides ">=" against ">"
    return [Case((labels, scores, 1.25), note="one normal and one defect exactly at the threshold"),
            Case((labels, scores, 5.0), note="a threshold above every score")]


def reference_recall_false_alarms(labels: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """(recall, false-alarm rate) with the kit's decision rule ``score >= threshold`` and its outcomes."""
    from exdd_lab.evaluation.results import outcomes

    kinds = outcomes(labels, np.asarray(scores) >= threshold)
    tp, fn, fp, tn = ((kinds == k).sum() for k in ("TP", "FN", "FP", "TN"))
    return np.array([tp / max(tp + fn, 1), fp / max(fp + tn, 1)])


def _threshold_mistakes(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    labels, scores, threshold = case.args
    if got.shape == (2,) and np.allclose(got[::-1], expected):
        return "the two numbers are swapped: return (recall, false-alarm rate)"
    strict = reference_recall_false_alarms(labels, scores, np.nextafter(threshold, np.inf))
    if got.shape == (2,) and np.allclose(got, strict):
        return "an image scored exactly at the threshold counts as flagged: use score >= threshold"
    if got.shape == (2,) and np.allclose(got[1], (((scores >= threshold) & (labels == 0)).sum()) / len(labels)):
        return "the false-alarm rate is over the normal images only: false alarms / normal images"
    return None


def check_recall_false_alarms(student: Callable, seed: int = 0) -> None:
    """Notebook 06, Exercise 1: ``recall_and_false_alarm_rate(labels, scores, threshold) -> (recall, rate)``."""
    check_against_reference("Exercise 1 (recall and false-alarm rate)", student, reference_recall_false_alarms,
                            _threshold_cases(seed), rtol=1e-9, atol=1e-12, hints=(_threshold_mistakes,))


# -- notebook 07: how many synthetic defects ----------------------------------------------------------------------------

def _sweep_cases(seed: int) -> list[Case]:
    import pandas as pd

    # means per count; each count has three seeds at mean - 0.006, mean, mean + 0.006 (standard error 0.0035), so the
    # best count (50 for perlin, 100 for ddpm) is *not* the answer: a smaller count lies within one standard error
    curves = {"perlin": (0.900, 0.935, 0.948, 0.950, 0.920), "ddpm": (0.900, 0.915, 0.9285, 0.929, 0.931)}
    rng = np.random.default_rng(seed)
    rows = [{"generator": g, "count": c, "real_defects": 0, "seed": k, "image_auroc": m + e}
            for g, means in curves.items() for c, m in zip((0, 10, 25, 50, 100), means)
            for k, e in enumerate((-0.006, 0.0, 0.006))]
    rows += [{"generator": "perlin", "count": 10, "real_defects": 5, "seed": 0, "image_auroc": 0.99}]  # not a sweep row
    sweep = pd.DataFrame(rows).sample(frac=1.0, random_state=int(rng.integers(1 << 31)))  # row order must not matter
    return [Case((sweep,), note="two generators, three seeds per count")]


def reference_count_within_noise(sweep) -> dict:
    """The kit's :func:`~exdd_lab.experiments.count_sweep.count_within_noise`, as ``{generator: count}``."""
    from exdd_lab.experiments.count_sweep import count_within_noise

    return count_within_noise(sweep).to_dict()


def check_count_within_noise(student: Callable, seed: int = 0) -> None:
    """Notebook 07, Exercise 1: ``count_within_noise(sweep) -> {generator: count}`` (the one-standard-error rule)."""
    for case in _sweep_cases(seed):
        (sweep,) = case.args
        expected = reference_count_within_noise(sweep)
        got = call_student("Exercise 1 (the smallest count within noise)", student, case, "the sweep")
        got = dict(got) if hasattr(got, "items") else got
        if not isinstance(got, dict) or set(got) != set(expected):
            raise ExerciseNotSolved(f"Exercise 1: return one count per generator, as a dict or Series keyed by "
                                    f"generator ({sorted(expected)})")
        means = sweep[sweep.real_defects == 0].groupby(["generator", "count"])["image_auroc"].mean()
        if any(int(got[g]) == 10 for g in expected if g == "perlin") and expected["perlin"] != 10:
            raise ExerciseNotSolved("Exercise 1: leave out the rows with real_defects > 0: they are another sweep")
        for generator, count in expected.items():
            if int(got[generator]) == count:
                continue
            if int(got[generator]) == int(means[generator].idxmax()):
                raise ExerciseNotSolved(f"Exercise 1: for {generator} you picked the best mean; pick the smallest count "
                                        "whose mean is within one standard error (std / sqrt(seeds)) of the best mean")
            raise ExerciseNotSolved(f"Exercise 1: the count for {generator} is not the smallest one within one standard "
                                    "error of the best mean (compare each count's mean with best mean - best's std/sqrt(n))")
    print("Exercise 1 (the smallest count within noise): pass")


# -- notebook 08: an archive's threshold -------------------------------------------------------------------------------

def _normal_score_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    normals = rng.gamma(4.0, 0.5, 200)
    return [Case((normals, 0.01), note="200 held-out normals, 1 % false alarms"),
            Case((normals[:37], 0.05), note="37 held-out normals, 5 % false alarms")]


def reference_threshold_for_rate(normal_scores: np.ndarray, false_alarm_rate: float) -> float:
    """The kit's :func:`~exdd_lab.evaluation.metrics.normal_only_threshold` at quantile ``1 - rate``."""
    from exdd_lab.evaluation.metrics import normal_only_threshold

    return normal_only_threshold(normal_scores, 1 - false_alarm_rate)


def _rate_mistakes(got: np.ndarray, expected: np.ndarray, case: Case) -> str | None:
    scores, rate = case.args
    if np.isclose(got, np.quantile(scores, rate)):
        return ("this threshold flags almost every normal: the false-alarm rate is the share of normals *above* "
                "the threshold, so take the (1 - rate) quantile")
    if np.isclose(got, np.sort(scores)[int(np.ceil((1 - rate) * len(scores))) - 1]) or \
            np.isclose(got, np.sort(scores)[min(int((1 - rate) * len(scores)), len(scores) - 1)]):
        return "close: interpolate between order statistics as numpy's quantile does (np.quantile)"
    return None


def check_threshold_for_rate(student: Callable, seed: int = 0) -> None:
    """Notebook 08, Exercise 1: ``threshold_for_rate(normal_scores, false_alarm_rate) -> float``."""
    check_against_reference("Exercise 1 (a threshold from normals alone)", student, reference_threshold_for_rate,
                            _normal_score_cases(seed), rtol=1e-9, atol=1e-12, hints=(_rate_mistakes,))
