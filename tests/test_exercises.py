"""The lessons' exercises: every check passes on the master's solution and fails on the student's stub with a hint,
the hints name the mistake, and the student versions are the masters with only the solutions replaced."""
from __future__ import annotations

import json
import re

import nbformat
import numpy as np
import pytest

from exdd_lab.errors import ExddError
from exdd_lab.lab.checks import check_image_scores, check_nearest_distances
from exdd_lab.lab.exercises import ExerciseNotSolved, diagnose
from exdd_lab.lab.notebooks import NOTEBOOKS_DIR, execute_notebook, list_notebooks, reference_runs
from exdd_lab.lab.student_versions import MANIFEST, exercise_cells, student_version, write_student_notebooks
from exdd_lab.numerics import harness_environment


def _exercises() -> list[tuple[str, int, int]]:
    """(notebook, solution cell, check cell) of every exercise with a solution, in every master notebook."""
    found = []
    for path in list_notebooks():
        nb = nbformat.read(str(path), as_version=4)
        for index in exercise_cells(nb):
            check = next(i for i in range(index + 1, len(nb.cells)) if nb.cells[i].cell_type == "code")
            found.append((path.name, index, check))
    return found


EXERCISES = _exercises()


def _run(sources: list[str]) -> dict:
    namespace: dict = {}
    # what a solution may use besides the earlier exercises' functions (README, "For teachers")
    exec("import numpy as np\nimport pandas as pd\nimport torch\nimport torch.nn.functional as F\n"
         "from exdd_lab.lab.checks import *\nseed = 0", namespace)
    for source in sources:
        exec(source, namespace)
    return namespace


def test_every_lesson_has_its_exercises():
    """At least two exercises with a check in 01-05, at least one in 00 and 06-08, each headed `Exercise N`."""
    per_notebook = {path.name[:2]: 0 for path in list_notebooks()}
    for name, _, _ in EXERCISES:
        per_notebook[name[:2]] += 1
    assert len(per_notebook) == 9
    for number, count in per_notebook.items():
        assert count >= (2 if number in {"01", "02", "03", "04", "05"} else 1), f"notebook {number}: {count} exercise(s)"


def _heading_number(nb, solution: int) -> int:
    heading = next(nb.cells[i].source for i in range(solution - 1, -1, -1)
                   if nb.cells[i].cell_type == "markdown" and "Exercise" in nb.cells[i].source)
    return int(re.search(r"^#+ Exercise (\d+)", heading, re.M).group(1))


@pytest.mark.parametrize("name,solution,check", EXERCISES, ids=[f"{n[:2]}-cell{s}" for n, s, _ in EXERCISES])
def test_check_passes_on_the_solution_and_fails_on_the_stub(name, solution, check, capsys):
    master = nbformat.read(str(NOTEBOOKS_DIR / name), as_version=4)
    student = student_version(master)
    assert "check_" in master.cells[check].source, f"{name}: the cell after an exercise's solution must run its check"
    # an exercise may use an earlier one's function (03's loss calls its add_noise): run the earlier solutions first
    earlier = [master.cells[i].source for i in exercise_cells(master) if i < solution]
    _run(earlier + [master.cells[solution].source, master.cells[check].source])
    out = capsys.readouterr().out
    assert ": pass" in out
    number = _heading_number(master, solution)
    assert f"Exercise {number} (" in out, f"{name}: the check must name the exercise as its heading does (Exercise {number})"
    assert master.cells[solution].metadata["nbgrader"]["grade_id"] == f"Exercise {number}"
    assert "### BEGIN SOLUTION" not in student.cells[solution].source
    with pytest.raises(ExerciseNotSolved, match="is not solved yet: replace the `raise NotImplementedError`"):
        _run(earlier + [student.cells[solution].source, master.cells[check].source])


def test_student_version_changes_only_the_solutions():
    for path in list_notebooks():
        master = nbformat.read(str(path), as_version=4)
        student = student_version(master)
        solutions = set(exercise_cells(master))
        assert len(student.cells) == len(master.cells)
        first_code = next(c for c in student.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", []), f"{path.name}: parameters must stay the first code cell"
        for i, (m, s) in enumerate(zip(master.cells, student.cells)):
            if i in solutions:
                assert "raise NotImplementedError" in s.source and s.source != m.source
                assert s.source.splitlines()[0] == m.source.splitlines()[0]  # the signature stays
            else:
                assert s.source == m.source, f"{path.name}: cell {i} changed in the student version"


def test_lessons_writes_every_notebook_and_never_overwrites_an_edited_one(tmp_path):
    out = tmp_path / "my-lessons"
    first = write_student_notebooks(out)
    assert sorted(first.written) == sorted(p.name for p in list_notebooks()) and not first.kept
    assert (out / "answers.md").read_text() == (NOTEBOOKS_DIR / "answers.md").read_text()  # the questionnaires' links land
    edited = out / first.written[1]
    edited.write_text(edited.read_text().replace("Exercise", "My notes on the exercise", 1))
    untouched = out / first.written[0]
    again = write_student_notebooks(out)
    assert again.kept == [edited.name] and untouched.name in again.written
    assert "My notes on the exercise" in edited.read_text()
    recorded = json.loads((out / MANIFEST).read_text())
    assert set(recorded) == set(first.written)
    (out / "00_data_tour.ipynb").unlink()
    assert "00_data_tour.ipynb" in write_student_notebooks(out).written  # a deleted notebook comes back fresh
    with pytest.raises(ExddError, match="master notebooks"):
        write_student_notebooks(NOTEBOOKS_DIR)


def test_cli_lessons_prints_where_to_start(tmp_path, capsys):
    from exdd_lab.cli import main

    assert main(["lessons", "--out", str(tmp_path / "lessons")]) == 0
    out = capsys.readouterr().out
    assert "wrote 9 student notebook(s)" in out and "00_data_tour.ipynb" in out


@pytest.mark.parametrize("got,expected,hint", [
    (None, np.ones(3), "returns nothing"),
    (np.ones((3, 1)), np.ones(3), "wrong shape"),
    (np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3).T.copy(), "axes are swapped"),
    (np.array([4.0, 9.0, 16.0]), np.array([2.0, 3.0, 4.0]), "squared distances"),
    (np.array([1.0, 1.5, 2.0]), np.array([2.0, 3.0, 4.0]), "constant factor"),
    (np.array([2.5, 3.5, 4.5]), np.array([2.0, 3.0, 4.0]), "off by a constant"),
    (np.array([np.nan, 3.0, 4.0]), np.array([2.0, 3.0, 4.0]), "NaN or inf"),
    (np.array([2.0, 7.0, 4.0]), np.array([2.0, 3.0, 4.0]), "1 of 3 values differ"),
])
def test_diagnose_names_the_mistake_without_the_answer(got, expected, hint):
    message = diagnose(got, expected)
    assert hint in message
    assert "3.0" not in message and "[2." not in message  # the expected values are never printed


def test_diagnose_accepts_the_right_answer_in_any_array_type():
    import torch

    assert diagnose(torch.tensor([1.0, 2.0]), np.array([1.0, 2.0])) is None
    assert diagnose([1.0, 2.0 + 1e-7], np.array([1.0, 2.0])) is None


def _brute_force(reference, queries):
    return np.sqrt(((queries[:, None] - reference[None]) ** 2).sum(-1))


@pytest.mark.parametrize("mistake,hint", [
    (lambda r, q: _brute_force(r, q).min(1) ** 2, "squared distances"),
    (lambda r, q: _brute_force(r, q).mean(1), "take the minimum"),
    (lambda r, q: np.where(_brute_force(r, q) < 1e-9, np.inf, _brute_force(r, q)).min(1), "must get distance 0"),
    (lambda r, q: _brute_force(r, q).min(1)[:, None], "wrong shape"),
    (lambda r, q: _brute_force(q, r).min(1), "wrong shape"),
])
def test_nearest_distance_check_gives_the_specific_hint(mistake, hint):
    check_nearest_distances(lambda r, q: _brute_force(r, q).min(1))
    with pytest.raises(ExerciseNotSolved, match=hint):
        check_nearest_distances(mistake)


def test_image_score_check():
    check_image_scores(lambda s: s.reshape(len(s), -1).max(1))
    with pytest.raises(ExerciseNotSolved, match="differ"):
        check_image_scores(lambda s: s.reshape(len(s), -1).mean(1))
    with pytest.raises(ExerciseNotSolved, match="raised IndexError"):
        check_image_scores(lambda s: s[:, 99])


@pytest.mark.notebooks
def test_a_student_notebook_stops_at_its_first_unsolved_exercise(tmp_path):
    """Executed headlessly, the student version of notebook 01 runs every cell before its first exercise and stops
    at that exercise's check, with the hint."""
    import papermill as pm

    out = tmp_path / "lessons"
    write_student_notebooks(out, [NOTEBOOKS_DIR / "01_feature_extraction.ipynb"])
    student = nbformat.read(str(out / "01_feature_extraction.ipynb"), as_version=4)
    with pytest.raises(pm.PapermillExecutionError) as failure:
        execute_notebook(out / "01_feature_extraction.ipynb", tmp_path / "executed.ipynb",
                         dict(reference_runs()["procedural"], metrics_path=str(tmp_path / "m.json")),
                         env=harness_environment())
    assert failure.value.ename == "ExerciseNotSolved" and "Exercise 1" in failure.value.evalue
    executed = nbformat.read(str(tmp_path / "executed.ipynb"), as_version=4)
    added_by_papermill = {"injected-parameters", "papermill-error-cell-tag"}
    executed.cells = [c for c in executed.cells if not added_by_papermill & set(c.metadata.get("tags", []))]
    assert len(executed.cells) == len(student.cells)
    master = nbformat.read(str(NOTEBOOKS_DIR / "01_feature_extraction.ipynb"), as_version=4)
    first_check = exercise_cells(master)[0] + 1
    ran = [i for i, c in enumerate(executed.cells) if c.cell_type == "code" and c.get("execution_count")]
    assert max(ran) == first_check  # nothing after the first unsolved exercise's check ran
    assert set(ran) == {i for i, c in enumerate(master.cells[:first_check + 1]) if c.cell_type == "code"}


def _right_add_noise(x0, noise, t, alphas_cumprod):
    a = alphas_cumprod[t].reshape(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


@pytest.mark.parametrize("mistake,hint", [
    (lambda x0, n, t, ab: ab[t].reshape(-1, 1, 1, 1) * x0 + (1 - ab[t].reshape(-1, 1, 1, 1)) * n, "square roots are missing"),
    (lambda x0, n, t, ab: _right_add_noise(n, x0, t, ab), "coefficients are swapped"),
    (lambda x0, n, t, ab: _right_add_noise(x0, n, t[:1].expand_as(t), ab), "its own step t"),
    (lambda x0, n, t, ab: _right_add_noise(x0, n, t, ab)[0], "wrong shape"),
])
def test_add_noise_check_gives_the_specific_hint(mistake, hint):
    from exdd_lab.lab.checks import check_add_noise

    check_add_noise(_right_add_noise)
    with pytest.raises(ExerciseNotSolved, match=hint):
        check_add_noise(mistake)


@pytest.mark.parametrize("mistake,hint", [
    (lambda f, x0, n, t, ab: ((f(_right_add_noise(x0, n, t, ab), t) - x0) ** 2).mean(), "not the clean image"),
    (lambda f, x0, n, t, ab: ((f(x0, t) - n) ** 2).mean(), "sees the noisy image"),
    (lambda f, x0, n, t, ab: ((f(_right_add_noise(x0, n, t, ab), t) - n) ** 2).sum(), "a mean, not a sum"),
])
def test_noise_loss_check_gives_the_specific_hint(mistake, hint):
    from exdd_lab.lab.checks import check_noise_loss

    check_noise_loss(lambda f, x0, n, t, ab: ((f(_right_add_noise(x0, n, t, ab), t) - n) ** 2).mean())
    with pytest.raises(ExerciseNotSolved, match=hint):
        check_noise_loss(mistake)


@pytest.mark.parametrize("mistake,hint", [
    (lambda masks: np.array([np.asarray(m, float).mean() for m in masks]), "count the pixels that are > 0"),
    (lambda masks: np.array([(np.asarray(m) > 0).sum() for m in masks]), "pixel counts"),
    (lambda masks: 100 * np.array([(np.asarray(m) > 0).mean() for m in masks]), "percentages"),
])
def test_defect_fraction_check_gives_the_specific_hint(mistake, hint):
    from exdd_lab.lab.checks import check_defect_fractions

    check_defect_fractions(lambda masks: np.array([(np.asarray(m) > 0).mean() for m in masks]))
    with pytest.raises(ExerciseNotSolved, match=hint):
        check_defect_fractions(mistake)


def _recall_far(labels, scores, threshold):
    flagged, defect = scores >= threshold, labels == 1
    return (flagged & defect).sum() / defect.sum(), (flagged & ~defect).sum() / (~defect).sum()


@pytest.mark.parametrize("mistake,hint", [
    (lambda l, s, t: _recall_far(l, s, t)[::-1], "swapped"),
    (lambda l, s, t: _recall_far(l, s, np.nextafter(t, np.inf)), "score >= threshold"),
    (lambda l, s, t: (_recall_far(l, s, t)[0], ((s >= t) & (l == 0)).sum() / len(l)), "over the normal images only"),
])
def test_recall_check_gives_the_specific_hint(mistake, hint):
    from exdd_lab.lab.checks import check_recall_false_alarms

    check_recall_false_alarms(_recall_far)
    with pytest.raises(ExerciseNotSolved, match=hint):
        check_recall_false_alarms(mistake)


def test_count_within_noise_is_the_one_standard_error_rule():
    """The kit's rule: not the best mean when a smaller count lies within one standard error of it; real-defect
    rows are another sweep; and the check's hints."""
    import pandas as pd

    from exdd_lab.experiments.count_sweep import count_within_noise
    from exdd_lab.lab.checks import check_count_within_noise

    rows = [{"generator": "g", "count": c, "real_defects": 0, "image_auroc": m + e}
            for c, m in ((0, 0.90), (10, 0.947), (50, 0.95)) for e in (-0.01, 0.0, 0.01)]
    sweep = pd.DataFrame(rows)
    assert count_within_noise(sweep)["g"] == 10  # 0.947 >= 0.95 - 0.01 / sqrt(3)
    assert count_within_noise(sweep.assign(image_auroc=sweep.image_auroc.where(sweep["count"] != 10, 0.93)))["g"] == 50
    one_seed = sweep.groupby("count", as_index=False).first().assign(generator="g", real_defects=0)
    assert count_within_noise(one_seed)["g"] == int(one_seed.loc[one_seed.image_auroc.idxmax(), "count"])
    with_real = pd.concat([sweep, pd.DataFrame([{"generator": "g", "count": 0, "real_defects": 5, "image_auroc": 1.0}])])
    assert count_within_noise(with_real)["g"] == 10

    best_mean = lambda s: {g: int(r.groupby("count")["image_auroc"].mean().idxmax())
                           for g, r in s[s.real_defects == 0].groupby("generator")}
    with pytest.raises(ExerciseNotSolved, match="you picked the best mean"):
        check_count_within_noise(best_mean)
    with pytest.raises(ExerciseNotSolved, match="leave out the rows with real_defects"):
        check_count_within_noise(lambda s: count_within_noise(s.assign(real_defects=0)).to_dict())
    check_count_within_noise(lambda s: count_within_noise(s).to_dict())


@pytest.mark.parametrize("mistake,hint", [
    (lambda s, r: float(np.quantile(s, r)), "take the \\(1 - rate\\) quantile"),
    (lambda s, r: float(np.sort(s)[int(np.ceil((1 - r) * len(s))) - 1]), "interpolate"),
])
def test_threshold_check_gives_the_specific_hint(mistake, hint):
    from exdd_lab.lab.checks import check_threshold_for_rate

    check_threshold_for_rate(lambda s, r: float(np.quantile(s, 1 - r)))
    with pytest.raises(ExerciseNotSolved, match=hint):
        check_threshold_for_rate(mistake)


def _nad(queries, bank, k, temperature, sign=1.0, own=True):
    import torch

    q, b = torch.as_tensor(queries, dtype=torch.float64), torch.as_tensor(bank, dtype=torch.float64)
    d = torch.cdist(q, b)
    nearest_d, nearest = d.min(1)
    k = min(k, len(b))
    if k < 2:
        return nearest_d.numpy()
    support = torch.cdist(b, b).topk(k, largest=False).indices[nearest] if own else d.topk(k, largest=False).indices
    return ((1 - torch.softmax(sign * torch.gather(d, 1, support) / temperature, 1)[:, 0]) * nearest_d).numpy()


@pytest.mark.parametrize("mistake,hint", [
    (lambda q, b, k, t: _nad(q, b, 1, t), "plain nearest distance"),
    (lambda q, b, k, t: _nad(q, b, k, t, sign=-1.0), "softmax is over \\+d / T"),
    (lambda q, b, k, t: _nad(q, b, k, t, own=False), "not the query's own k nearest"),
    (lambda q, b, k, t: _nad(q, b, k, 1.0), "temperature"),
])
def test_neighbourhood_distance_check_gives_the_specific_hint(mistake, hint):
    from exdd_lab.lab.checks import check_neighbourhood_distance

    check_neighbourhood_distance(_nad)
    with pytest.raises(ExerciseNotSolved, match=hint):
        check_neighbourhood_distance(mistake)


def _gated(d_neg, d_pos, worst, scale, strength=1.0):
    return d_neg * (1 + strength * np.clip(1 - d_pos / scale, 0, 1) * (d_neg > worst))


@pytest.mark.parametrize("mistake,hint", [
    (lambda a, b, w, s, strength=1.0: a * (1 + strength * np.clip(1 - b / s, 0, 1)), "every patch is raised"),
    (lambda a, b, w, s, strength=1.0: _gated(a, b, w, s), "use the strength argument"),
    (lambda a, b, w, s, strength=1.0: a * (1 + strength * (1 - b / s) * (a > w)), "never lowers it"),
])
def test_gated_check_gives_the_specific_hint(mistake, hint):
    from exdd_lab.lab.checks import check_gated

    check_gated(_gated)
    with pytest.raises(ExerciseNotSolved, match=hint):
        check_gated(mistake)


def _discrepancy(student, teacher, neighbourhood=1, mode="bilinear", flip=False, pool_after=False, pad=True):
    """Exercise 2 solved (``pad=False``: the border average over the cells that exist, also right: a factor common to
    both maps cancels in the cosine), or one of its typical mistakes."""
    import torch
    import torch.nn.functional as F

    size = teacher[0].shape[-2:]
    pool = lambda m: F.avg_pool2d(m, neighbourhood, 1, neighbourhood // 2, count_include_pad=pad)  # noqa: E731
    maps = []
    for s, t in zip(student, teacher):
        if neighbourhood > 1 and not pool_after:
            s, t = pool(s), pool(t)
        cos = (F.normalize(s, dim=1) * F.normalize(t, dim=1)).sum(1)
        if neighbourhood > 1 and pool_after:
            cos = 1 - pool((1 - cos)[:, None])[:, 0]
        d = (cos if flip else 1 - cos)[:, None]
        extra = {} if mode == "nearest" else {"align_corners": False}
        maps.append(F.interpolate(d, size=size, mode=mode, **extra)[:, 0])
    return torch.stack(maps).mean(0)


@pytest.mark.parametrize("mistake,hint", [
    (lambda s, t, neighbourhood=1: _discrepancy(s, t, neighbourhood, flip=True), "the discrepancy is 1 - cos"),
    (lambda s, t, neighbourhood=1: _discrepancy(s, t, neighbourhood, mode="nearest"), "bilinear"),
    (lambda s, t, neighbourhood=1: _discrepancy(s, t, neighbourhood) * len(s), "a mean, not a sum"),
    (lambda s, t, neighbourhood=1: _discrepancy(s, t), "use the neighbourhood"),
    (lambda s, t, neighbourhood=1: _discrepancy(s, t, neighbourhood, pool_after=True), "before\\* the cosine"),
])
def test_discrepancy_check_gives_the_specific_hint(mistake, hint):
    from exdd_lab.lab.checks import check_discrepancy_map

    check_discrepancy_map(_discrepancy)
    check_discrepancy_map(lambda s, t, neighbourhood=1: _discrepancy(s, t, neighbourhood, pad=False))
    with pytest.raises(ExerciseNotSolved, match=hint):
        check_discrepancy_map(mistake)


def _focal(logits, target, gamma=2.0):
    import torch
    import torch.nn.functional as F

    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    return ((1 - p_t) ** gamma * F.binary_cross_entropy_with_logits(logits, target, reduction="none")).mean()


@pytest.mark.parametrize("mistake,hint", [
    (lambda l, t, gamma=2.0: _focal(l, t, 0.0), "plain binary cross-entropy"),
    (lambda l, t, gamma=2.0: _focal(l, t, gamma) * l.numel(), "a mean, not a sum"),
])
def test_focal_check_gives_the_specific_hint(mistake, hint):
    from exdd_lab.lab.checks import check_focal_loss

    check_focal_loss(_focal)
    with pytest.raises(ExerciseNotSolved, match=hint):
        check_focal_loss(mistake)
