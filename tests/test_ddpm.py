"""The DDPM generator: training reduces the loss, checkpoints resume to identical steps, defects are exact."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from exdd_lab.errors import ExddError
from exdd_lab.synthesis import DdpmConfig, DdpmDefectGenerator, DdpmDefectSettings, load_ddpm, make_defect, train_ddpm

TINY = DdpmConfig(resolution=16, image_size=32, block_out_channels=(8, 16), train_steps=6, batch_size=2,
                  checkpoint_every=2, num_train_timesteps=100, learning_rate=1e-3)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    rng = np.random.default_rng(0)
    base = np.linspace(0, 255, 32, dtype=np.float32)[None, :, None] * np.ones((4, 32, 1, 3), np.float32)
    return torch.from_numpy(np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8))


def _params(model):
    return [p.detach().clone() for p in model.unet.parameters()]


def test_resume_continues_exactly_where_training_stopped(images, tmp_path):
    straight = train_ddpm(images, tmp_path / "a", TINY, device="cpu", progress=False)
    first = train_ddpm(images, tmp_path / "b", TINY, device="cpu", progress=False, stop_after=3)
    assert first.step == 3 and (tmp_path / "b" / "checkpoint-3").is_dir()
    resumed = train_ddpm(images, tmp_path / "b", TINY, device="cpu", progress=False)
    assert resumed.step == straight.step == 6
    assert resumed.losses == straight.losses  # same batches, same noise, same updates
    for p, q in zip(_params(straight), _params(resumed)):
        assert torch.equal(p, q)
    # only the newest checkpoint is kept, and it loads
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["checkpoint-6"]
    loaded = load_ddpm(tmp_path / "b")
    assert loaded.step == 6 and loaded.config == TINY
    for p, q in zip(_params(straight), _params(loaded)):
        assert torch.equal(p, q)


def test_resume_with_another_config_is_refused(images, tmp_path):
    train_ddpm(images, tmp_path, TINY, device="cpu", progress=False, stop_after=2)
    other = DdpmConfig(**{**TINY.__dict__, "learning_rate": 5e-3})
    with pytest.raises(ExddError, match="another configuration"):
        train_ddpm(images, tmp_path, other, device="cpu", progress=False)


def test_missing_checkpoint_names_the_folder(tmp_path):
    with pytest.raises(ExddError, match="no DDPM checkpoint"):
        load_ddpm(tmp_path)


def test_training_lowers_the_loss(images, tmp_path):
    config = DdpmConfig(**{**TINY.__dict__, "train_steps": 60, "checkpoint_every": 60, "batch_size": 4})
    model = train_ddpm(images, tmp_path, config, device="cpu", progress=False)
    assert np.mean(model.losses[-10:]) < np.mean(model.losses[:10])


def test_ddpm_defects_are_exact_and_seeded(images, tmp_path):
    model = train_ddpm(images, tmp_path, TINY, device="cpu", progress=False)
    gen = DdpmDefectGenerator(model, DdpmDefectSettings(noise_level=0.5, steps=3))
    image = images[0].numpy()
    a = make_defect(gen, image, np.random.default_rng(1))
    b = make_defect(gen, image, np.random.default_rng(1))
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.image[~a.mask], image[~a.mask])
    assert np.abs(a.image[a.mask].astype(int) - image[a.mask].astype(int)).mean() > 1
    assert a.params["t0"] <= 50 and a.params["steps"] == 3
    with pytest.raises(ValueError, match="noise_level"):
        DdpmDefectGenerator(model, DdpmDefectSettings(noise_level=0.0))


def test_only_a_window_around_the_mask_is_denoised(images, tmp_path):
    model = train_ddpm(images, tmp_path, TINY, device="cpu", progress=False, stop_after=2)
    gen = DdpmDefectGenerator(model, DdpmDefectSettings(steps=2, margin=3))
    mask = np.zeros((32, 32), bool)
    mask[10:13, 20:22] = True
    y0, y1, x0, x1 = gen._window(mask)
    assert y0 <= 10 - 3 and y1 >= 13 + 3 and x0 <= 20 - 3 and x1 >= 22 + 3  # the mask and its margin
    assert (y1 - y0) % 2 == 0 and (x1 - x0) % 2 == 0  # the UNet (2 levels) downsamples by 2
    assert (y1 - y0) < 32 and (x1 - x0) < 32
    d = make_defect(gen, images[0].numpy(), np.random.default_rng(0), mask=mask)
    assert np.array_equal(d.image[~mask], images[0].numpy()[~mask])
