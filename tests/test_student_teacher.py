"""The student-teacher's training loop and detector on a tiny procedural dataset: a frozen teacher,
exact resume, learning, the detector interface, save/load, the training cache and the command line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from exdd_lab.cli import main
from exdd_lab.data import load_dataset
from exdd_lab.errors import ExddError
from exdd_lab.methods.student_teacher import StudentTeacher, StudentTeacherSettings
from exdd_lab.student_teacher import StudentTeacherConfig, Teacher, build_training_data, train_student_teacher
from exdd_lab.synthesis import PerlinBlendGenerator, load_defect_set, synthesize, write_defect_set

# the default design (a reverse student on strides 16 and 32), shrunk to 64 px and a few steps
CONFIG = StudentTeacherConfig(image_size=64, student_width=8, bottleneck=16, head_width=8, batch_size=4, epochs=1,
                              checkpoint_every=2)


@pytest.fixture(scope="module")
def tiny(tiny_mvtec):
    return load_dataset(tiny_mvtec, "mvtec")


@pytest.fixture(scope="module")
def defects(tiny, tmp_path_factory):
    gen = PerlinBlendGenerator([s.image_path for s in tiny.train])
    made = synthesize(tiny.train, gen, n=6, seed=0, image_size=64)
    return load_defect_set(write_defect_set(made, tmp_path_factory.mktemp("syn") / "set"))


@pytest.fixture(scope="module")
def teacher():
    return Teacher()


@pytest.fixture(scope="module")
def data(tiny, defects, teacher):
    return build_training_data(tiny.train, defects, teacher, 64)


def test_training_data_pairs_each_defect_with_its_clean_source(data, defects, tiny):
    assert data.n_normal == len(tiny.train) and data.n_defect == 6
    assert data.images.shape == (14, 64, 64, 3) and data.masks.shape == (14, 64, 64)
    assert not data.masks[: data.n_normal].any() and all(data.masks[i].any() for i in range(data.n_normal, 14))
    for i in range(data.n_normal, 14):  # outside its mask a defect image equals its source, which is the target
        src, mask = data.target[i], data.masks[i]
        assert src < data.n_normal
        assert torch.equal(data.images[i][~mask], data.images[src][~mask])
    assert [tuple(m.shape) for m in data.teacher_maps] == [(14, 112, 4, 4), (14, 320, 2, 2)]


def test_teacher_stays_frozen_while_the_student_learns(data, teacher):
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    model = train_student_teacher(data, teacher, StudentTeacherConfig(**{**CONFIG.to_dict(), "epochs": 3}), progress=False)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # weights and BN statistics
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not teacher.backbone.training
    assert any(p.requires_grad for p in model.student.parameters())
    assert model.step == 3 * 4 and len(model.history) == 12


def test_resume_takes_exactly_the_steps_of_an_uninterrupted_run(data, teacher, tmp_path):
    config = StudentTeacherConfig(**{**CONFIG.to_dict(), "epochs": 2})  # 8 steps, checkpoints every 2
    straight = train_student_teacher(data, teacher, config, tmp_path / "a", progress=False)
    first = train_student_teacher(data, teacher, config, tmp_path / "b", progress=False, stop_after=3)
    assert first.step == 3 and sorted(p.name for p in (tmp_path / "b").iterdir()) == ["checkpoint-3.pt"]
    resumed = train_student_teacher(data, teacher, config, tmp_path / "b", progress=False)
    assert resumed.step == 8 and [h["total"] for h in resumed.history] == [h["total"] for h in straight.history]
    for a, b in zip(straight.student.state_dict().values(), resumed.student.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.head.state_dict().values(), resumed.head.state_dict().values()):
        assert torch.equal(a, b)
    other = StudentTeacherConfig(**{**config.to_dict(), "learning_rate": 0.01})
    with pytest.raises(ExddError, match="another configuration"):
        train_student_teacher(data, teacher, other, tmp_path / "b", progress=False)


@pytest.mark.parametrize("student", ["encoder", "reverse"])
def test_losses_fall_with_training(data, teacher, student):
    config = StudentTeacherConfig(**{**CONFIG.to_dict(), "epochs": 15, "learning_rate": 3e-3, "student": student,
                                     "bottleneck": 16})
    model = train_student_teacher(data, teacher, config, progress=False)
    feature, seg = model.losses("feature"), model.losses("focal") + model.losses("dice")
    assert feature[-8:].mean() < 0.8 * feature[:8].mean()
    assert seg[-8:].mean() < seg[:8].mean()


@pytest.fixture(scope="module")
def detector(tiny, defects):
    return StudentTeacher(CONFIG, StudentTeacherSettings(top_k=10), defects=defects).fit(tiny.train)


def test_detector_predicts_head_and_discrepancy_maps(detector, tiny):
    pred = detector.predict(tiny.test)
    assert pred.maps.shape == (10, 64, 64) and pred.scores.shape == (10,)
    assert pred.extra["head_grid"].shape == pred.extra["discrepancy_grid"].shape == (10, 4, 4)
    assert (pred.extra["head_grid"] >= 0).all() and (pred.extra["head_grid"] <= 1).all()
    assert (pred.extra["discrepancy_grid"] >= 0).all() and (pred.extra["discrepancy_grid"] <= 2).all()
    top = np.sort(pred.maps.reshape(10, -1), axis=1)[:, -10:].mean(1)
    assert np.allclose(pred.scores, top, rtol=1e-5) and np.allclose(pred.scores, pred.extra["discrepancy_scores"])  # the default
    lean = detector.predict(tiny.test[:3], keep_maps=False)
    assert lean.maps.shape[0] == 0 and np.allclose(lean.scores, pred.scores[:3], rtol=1e-5)
    describe = detector.describe()
    assert describe["method"] == "student-teacher" and describe["train_steps"] == 4


def test_head_map_source(tiny, defects, detector):
    other = StudentTeacher(CONFIG, StudentTeacherSettings(map_source="head", top_k=10), defects=defects,
                           teacher=detector.teacher).fit(tiny.train)
    assert other.model.path == detector.model.path  # the finished training is reused from the cache, not redone
    pred, ref = other.predict(tiny.test[:4]), detector.predict(tiny.test[:4])
    assert np.allclose(pred.scores, ref.extra["head_scores"]) and np.allclose(pred.extra["head_grid"], ref.extra["head_grid"])
    with pytest.raises(ExddError, match="unknown student-teacher map source .both."):
        StudentTeacher(CONFIG, StudentTeacherSettings(map_source="both"), teacher=detector.teacher)


def test_save_and_load_reproduce_the_predictions(detector, tiny, tmp_path):
    folder = detector.save(tmp_path / "st")
    again = StudentTeacher.load(folder)
    assert np.allclose(again.predict(tiny.test[:4]).scores, detector.predict(tiny.test[:4]).scores, atol=1e-6)
    from exdd_lab.data import load_image  # the archive scorer's path: images decoded beforehand

    images = np.stack([load_image(s.image_path, again.input_size) for s in tiny.test[:4]])
    np.testing.assert_allclose(again.predict_images(images).scores, again.predict(tiny.test[:4]).scores, rtol=1e-6)
    with pytest.raises(ExddError, match="already exists"):
        detector.save(folder)
    with pytest.raises(ExddError, match="no saved student-teacher"):
        StudentTeacher.load(tmp_path)


DESIGN_FIELDS = {None: ("reverse", [3, 4], 3), "reverse-fine": ("reverse", [2, 3], 3), "image-encoder": ("encoder", [2, 3], 1)}


@pytest.mark.parametrize("design", list(DESIGN_FIELDS))
def test_cli_evaluate_student_teacher_writes_the_standard_outputs(tiny_mvtec, tmp_path, capsys, design):
    out = tmp_path / "st"
    code = main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--method", "student-teacher",
                 "--generator", "perlin", "--n-synthetic", "6", "--epochs", "1", "--image-size", "64",
                 *(["--design", design] if design else []), "--out", str(out), "--save-model", str(tmp_path / "model")])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "student-teacher" and metrics["settings.generator"] == "perlin"
    student, layers, neighbourhood = DESIGN_FIELDS[design]
    assert (metrics["config.student"], metrics["config.teacher_layers"], metrics["config.neighbourhood"]) == \
        (student, layers, neighbourhood)
    assert metrics["synthesis.n_synthetic"] == 6 and metrics["config.epochs"] == 1
    assert 0 <= metrics["image_auroc"] <= 1 and 0 <= metrics["pixel_auroc"] <= 1
    assert metrics["head_image_auroc"] is not None and metrics["discrepancy_pixel_auroc"] is not None
    assert len((out / "scores.csv").read_text().strip().splitlines()) == 11
    code = main(["score", "--model", str(tmp_path / "model"), "--images", str(tiny_mvtec / "test" / "good"),
                 "--out", str(tmp_path / "scored")])
    assert code == 0 and (tmp_path / "scored" / "scores.csv").is_file()


def test_figures_have_one_panel_per_scale_and_term(detector, tiny):
    import matplotlib

    matplotlib.use("Agg")
    from exdd_lab.plots import student_teacher as st_plots
    from exdd_lab.data import load_image
    from exdd_lab.student_teacher import anomaly_grids

    images = np.stack([load_image(s.image_path, 64) for s in tiny.test[:2]])
    grids = anomaly_grids(detector.teacher, detector.model.student, detector.model.head, images)
    fig = st_plots.show_scale_discrepancy(images, [None, None], [[g[i] for g in grids.per_scale] for i in range(2)], grids.head)
    assert len(fig.axes) == 2 * (len(grids.per_scale) + 2)
    assert len(st_plots.plot_loss_terms(detector.model.history, window=2).axes) == 3
    plain = st_plots.draw_architecture(3_000_000, 600_000, 50_000, ["stride 8", "stride 16"]).axes[0]
    reverse = st_plots.draw_architecture(3_000_000, 600_000, 50_000, ["stride 16", "stride 32"], reads_features=True).axes[0]
    words = lambda ax: " ".join(t.get_text() for t in ax.texts)  # noqa: E731
    assert "bottleneck" in words(reverse) and "its maps" in words(reverse)  # the student reads the teacher's maps
    assert "bottleneck" not in words(plain) and "its maps" not in words(plain) and len(reverse.patches) == len(plain.patches)


def test_learning_curve_measures_one_run_at_its_steps_and_reuses_what_it_measured(tiny, defects, detector, monkeypatch):
    from exdd_lab.experiments import learning_curve
    from exdd_lab.evaluation.run import evaluate_prediction

    curve_config = StudentTeacherConfig(**{**CONFIG.to_dict(), "epochs": 2})  # 8 steps
    st = StudentTeacher(curve_config, StudentTeacherSettings(top_k=10), defects=defects, teacher=detector.teacher)
    table = learning_curve.student_teacher_learning_curve(st, tiny, [2, 5, 100])
    assert st.model is None  # the detector passed in is left as it was
    assert table["step"].tolist() == [2, 2, 5, 5, 8, 8] and table.attrs["total_steps"] == 8  # 100 clipped to the run's end
    assert set(table["map"]) == {"head", "discrepancy"} and table["train_seconds"].is_monotonic_increasing
    straight = StudentTeacher(curve_config, StudentTeacherSettings(top_k=10, cache=False), defects=defects,
                              teacher=detector.teacher).fit(tiny.train)
    alternatives = straight.alternative_predictions(straight.predict(tiny.test))
    for source, prediction in alternatives.items():  # the curve's last point is the uninterrupted run
        metrics, _ = evaluate_prediction(tiny, prediction, 64)
        last = table[(table["step"] == 8) & (table["map"] == source)].iloc[0]
        assert last["pixel_auroc"] == pytest.approx(metrics["pixel_auroc"], abs=1e-6)
        assert last["image_auroc"] == pytest.approx(metrics["image_auroc"], abs=1e-6)

    def no_training(*args, **kwargs):
        raise AssertionError("a measured step was trained again")

    monkeypatch.setattr(learning_curve, "train_student_teacher", no_training)
    again = learning_curve.student_teacher_learning_curve(st, tiny, [5, 8])
    assert again.equals(table[table["step"] >= 5].reset_index(drop=True))
    monkeypatch.undo()
    earlier = learning_curve.student_teacher_learning_curve(st, tiny, [1])  # behind the last checkpoint: retrained
    assert earlier["step"].tolist() == [1, 1]
    with pytest.raises(ExddError, match="positive"):
        learning_curve.student_teacher_learning_curve(st, tiny, [0, 4])
    import matplotlib

    matplotlib.use("Agg")
    from exdd_lab.plots import student_teacher as st_plots

    fig = st_plots.plot_learning_curve(table, {"PatchCore": {"image_auroc": 0.9}}, budget_step=4)
    image_ax, pixel_ax = fig.axes
    assert [len(line.get_xdata()) for line in image_ax.lines[:2]] == [3, 3]  # one line per map, one point per step
    assert 0.9 in [line.get_ydata()[0] for line in image_ax.lines] and 0.9 not in [l.get_ydata()[0] for l in pixel_ax.lines]


def test_combined_defect_sets_keep_every_defect_with_its_source(tiny, defects, tmp_path):
    from exdd_lab.student_teacher.training import defect_sources, training_image_count
    from exdd_lab.synthesis import combine_defect_sets

    gen = PerlinBlendGenerator([s.image_path for s in tiny.train])
    other = load_defect_set(write_defect_set(synthesize(tiny.train, gen, n=3, seed=7, image_size=64), tmp_path / "b"))
    both = combine_defect_sets([defects, other])
    assert [s.image_path for s in both.test] == [s.image_path for s in defects.test + other.test]
    assert defect_sources(both) == defect_sources(defects) + defect_sources(other)
    assert training_image_count(tiny.train, both) == len(tiny.train) + 9
    data = build_training_data(tiny.train, both, Teacher(), 64)
    assert data.n_defect == 9 and data.images.shape[0] == len(tiny.train) + 9
    with pytest.raises(Exception, match="no defect sets"):
        combine_defect_sets([])
