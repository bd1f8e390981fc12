"""Generators by name, so the command line, notebooks and later methods pick one with a string.

``perlin``: classical blend (no model); ``ddpm``: the DDPM trained on the normal images (cached;
trained on first use); ``ldm``: text-guided inpainting from ``model_dir`` (or, with
``model_dir="tiny"``, a tiny random pipeline that only exercises the code path, said loudly).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from exdd_lab.data.records import Sample
from exdd_lab.errors import ExddError
from exdd_lab.synthesis.ddpm import DdpmConfig, DdpmDefectGenerator, DdpmDefectSettings, train_or_load_ddpm
from exdd_lab.synthesis.generators import DefectGenerator, PerlinBlendGenerator
from exdd_lab.synthesis.ldm import InpaintingDefectGenerator, InpaintSettings, load_inpainting_pipeline, tiny_pipeline_folder

GENERATORS = ("perlin", "ddpm", "ldm")


def build_generator(
    name: str,
    normals: Sequence[Sample],
    model_dir: str | Path | None = None,
    ddpm_config: DdpmConfig | None = None,
    ddpm_settings: DdpmDefectSettings | None = None,
    inpaint_settings: InpaintSettings | None = None,
    progress: bool = True,
) -> DefectGenerator:
    """The named generator, ready to use on images of ``normals`` (training normals only)."""
    paths = [s.image_path for s in normals]
    if name == "perlin":
        return PerlinBlendGenerator(textures=paths)
    if name == "ddpm":
        return DdpmDefectGenerator(train_or_load_ddpm(paths, ddpm_config, progress=progress), ddpm_settings)
    if name == "ldm":
        if str(model_dir) == "tiny":
            print("ldm: using a TINY RANDOMLY INITIALISED inpainting pipeline (code path only, not realistic defects)")
            model_dir = tiny_pipeline_folder()
        return InpaintingDefectGenerator(load_inpainting_pipeline(model_dir), inpaint_settings)
    raise ExddError(f"unknown generator {name!r}", f"choose one of {', '.join(GENERATORS)}")
