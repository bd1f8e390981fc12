"""Latent-diffusion inpainting: the real pipeline code path on a tiny random pipeline; clear errors for folders."""
from __future__ import annotations

import json

import numpy as np
import pytest

from exdd_lab.synthesis import (
    InpaintingDefectGenerator, InpaintSettings, ModelFolderError, build_tiny_inpainting_pipeline,
    load_inpainting_pipeline, make_defect,
)


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    folder = build_tiny_inpainting_pipeline(tmp_path_factory.mktemp("ldm") / "tiny")
    return load_inpainting_pipeline(folder, device="cpu")


def test_tiny_pipeline_is_a_saved_diffusers_inpainting_pipeline(tiny_pipeline, tmp_path):
    folder = build_tiny_inpainting_pipeline(tmp_path / "p")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInpaintPipeline"
    assert tiny_pipeline.unet.config.in_channels == 9  # latents + mask + masked-image latents
    assert type(tiny_pipeline).__name__ == "StableDiffusionInpaintPipeline"


def test_inpainted_defects_are_exact_seeded_and_record_the_prompt(tiny_pipeline):
    settings = InpaintSettings(prompts=("copper metal scratches",), num_inference_steps=2, size=32)
    gen = InpaintingDefectGenerator(tiny_pipeline, settings)
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    a = make_defect(gen, image, np.random.default_rng(3))
    b = make_defect(gen, image, np.random.default_rng(3))
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.image[~a.mask], image[~a.mask])
    assert not np.array_equal(a.image[a.mask], image[a.mask])
    assert a.params["prompt"] == "copper metal scratches" and a.params["guidance_scale"] == 20.0


def test_exdd_settings_are_the_defaults():
    s = InpaintSettings()
    assert (s.num_inference_steps, s.guidance_scale, s.strength) == (30, 20.0, 0.99)


def test_missing_or_wrong_model_folder_says_what_to_download(tmp_path):
    with pytest.raises(ModelFolderError, match="huggingface-cli download"):
        load_inpainting_pipeline(tmp_path / "nope")
    with pytest.raises(ModelFolderError, match="no model_index.json"):
        load_inpainting_pipeline(tmp_path)
