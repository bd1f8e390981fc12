"""Generators by name, so the command line, notebooks and later methods pick one with a string.

``perlin``: classical blend (no model); ``ddpm``: the DDPM trained on the normal images (cached;
trained on first use); ``ldm``: text-guided inpainting from ``model_dir`` (or, with
``model_dir="tiny"``, a tiny random pipeline that only exercises the code path, said loudly).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from exdd_lab.components.registry import Registry
from exdd_lab.data.records import Sample
from exdd_lab.synthesis.ddpm import DdpmConfig, DdpmDefectGenerator, DdpmDefectSettings, train_or_load_ddpm
from exdd_lab.synthesis.generators import DefectGenerator, PerlinBlendGenerator
from exdd_lab.synthesis.ldm import InpaintingDefectGenerator, InpaintSettings, load_inpainting_pipeline, tiny_pipeline_folder

#: Defect generators by name: ``GENERATORS[name](normal_paths, options) -> DefectGenerator``.
GENERATORS: Registry[Callable[[list, GeneratorOptions], DefectGenerator]] = Registry("generator")


@dataclass(frozen=True)
class GeneratorOptions:
    """What a generator may need beyond the normal images (each uses its own)."""

    model_dir: str | Path | None = None
    ddpm_config: DdpmConfig | None = None
    ddpm_settings: DdpmDefectSettings | None = None
    inpaint_settings: InpaintSettings | None = None
    progress: bool = True


@GENERATORS.register("perlin")
def perlin_generator(paths: list, options: GeneratorOptions) -> DefectGenerator:
    """Classical Perlin-mask blend of another normal image's texture (no model)."""
    return PerlinBlendGenerator(textures=paths)


@GENERATORS.register("ddpm")
def ddpm_generator(paths: list, options: GeneratorOptions) -> DefectGenerator:
    """The DDPM trained on the normal images (trained on first use, then cached)."""
    return DdpmDefectGenerator(train_or_load_ddpm(paths, options.ddpm_config, progress=options.progress), options.ddpm_settings)


@GENERATORS.register("ldm")
def ldm_generator(paths: list, options: GeneratorOptions) -> DefectGenerator:
    """Text-guided inpainting from a local pipeline folder (``"tiny"``: a random one, code path only)."""
    model_dir = options.model_dir
    if str(model_dir) == "tiny":
        print("ldm: using a TINY RANDOMLY INITIALISED inpainting pipeline (code path only, not realistic defects)")
        model_dir = tiny_pipeline_folder()
    return InpaintingDefectGenerator(load_inpainting_pipeline(model_dir), options.inpaint_settings)


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
    build = GENERATORS[name]
    return build([s.image_path for s in normals],
                 GeneratorOptions(model_dir, ddpm_config, ddpm_settings, inpaint_settings, progress))
