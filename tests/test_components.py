"""The shared components: one frozen front-end, one checkpointer, one projection, one device choice.

The package's import structure (no cycles, floors that import only downwards) is tests/test_package_layers.py."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from exdd_lab.components.checkpoints import Checkpointer
from exdd_lab.components.device import pick_device
from exdd_lab.components.frontend import FrozenBackbone
from exdd_lab.components.projection import gaussian_projection
from exdd_lab.errors import ImageError
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor
from exdd_lab.student_teacher import Teacher



def test_extractor_and_teacher_share_one_frozen_front_end():
    extractor, teacher = PatchFeatureExtractor(FeatureConfig(image_size=64)), Teacher(layers=(2, 3))  # the same layers
    assert isinstance(extractor, FrozenBackbone) and isinstance(teacher, FrozenBackbone)
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    assert torch.equal(extractor.preprocess(images), teacher.preprocess(images))
    for a, b in zip(extractor.layer_maps(images), teacher(teacher.preprocess(images))):
        assert torch.equal(a, b)
    for module in (extractor, teacher):
        module.train()
        assert not module.training and not module.backbone.training
        assert not any(p.requires_grad for p in module.parameters())
        with pytest.raises(ImageError, match=r"\(N, H, W, 3\)"):
            module.preprocess(np.zeros((2, 64, 64), np.uint8))


def test_imagenet_normalisation_overrides_the_weights_statistics():
    own = PatchFeatureExtractor(FeatureConfig(image_size=64))
    imagenet = PatchFeatureExtractor(FeatureConfig(image_size=64, normalisation="imagenet"))
    assert torch.allclose(imagenet.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert not torch.equal(own.mean, imagenet.mean)  # EfficientNet-Lite's weights use 0.5 / 0.5


@pytest.mark.parametrize("as_folder", [False, True])
def test_checkpointer_keeps_the_newest_and_restores_optimizer_and_generator(tmp_path, as_folder):
    store = Checkpointer(tmp_path / "run", as_folder=as_folder)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters())
    gen = torch.Generator().manual_seed(5)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    store.save(1, {"note": "first"}, optimizer, gen)
    torch.rand(3, generator=gen)
    path = store.save(2, {"note": "second"}, optimizer, gen,
                      write_model=(lambda folder: (folder / "weights.txt").write_text("w")) if as_folder else None)
    expected_next = torch.rand(4, generator=gen)
    assert [step for step, _ in store.checkpoints()] == [2] and store.latest() == path and store.latest_step() == 2
    assert not as_folder or (path / "weights.txt").is_file()
    state = Checkpointer.load_state(path, as_folder)
    assert state["note"] == "second" and state["step"] == 2
    fresh_optimizer, fresh_gen = torch.optim.Adam(torch.nn.Linear(3, 1).parameters()), torch.Generator()
    Checkpointer.restore(state, fresh_optimizer, fresh_gen)
    assert torch.equal(torch.rand(4, generator=fresh_gen), expected_next)
    assert fresh_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert not list((tmp_path / "run").glob(".*tmp"))  # nothing half-written left
    store.clear()
    assert store.checkpoints() == [] and store.latest() is None and store.latest_step() == 0


def test_projection_continues_a_generator_stream():
    gen = torch.Generator().manual_seed(3)
    first = gaussian_projection(8, 4, gen)
    second = gaussian_projection(8, 4, gen)
    assert not torch.equal(first, second) and torch.equal(first, gaussian_projection(8, 4, 3))


def test_explicit_device_wins():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
