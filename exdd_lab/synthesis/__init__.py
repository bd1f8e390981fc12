"""Synthetic defects with exact masks: Perlin masks, a classical blend, a DDPM, latent-diffusion inpainting.

Never fits a detector nor evaluates one: it makes defect images and masks (and measures how defect-like they are).

Taught in ``notebooks/03_diffusion_defect_synthesis.ipynb``.
"""
from exdd_lab.synthesis.blend import augment_texture, blend_texture
from exdd_lab.synthesis.ddpm import (
    DdpmConfig, DdpmDefectGenerator, DdpmDefectSettings, DdpmModel, load_ddpm, train_ddpm, train_or_load_ddpm,
)
from exdd_lab.synthesis.defect_set import (
    cached_defect_set, combine_defect_sets, load_defect_set, synthesize, write_defect_set,
)
from exdd_lab.synthesis.generators import (
    DefectGenerator, PerlinBlendGenerator, SynthesisError, SyntheticDefect, check_image_and_mask, make_defect,
)
from exdd_lab.synthesis.ldm import (
    InpaintingDefectGenerator, InpaintSettings, ModelFolderError, build_tiny_inpainting_pipeline, load_inpainting_pipeline,
    tiny_pipeline_folder,
)
from exdd_lab.synthesis.masks import MaskSettings, mask_area_statistics, perlin_mask, perlin_noise
from exdd_lab.synthesis.quality import defect_likeness, frechet_distance
from exdd_lab.synthesis.registry import GENERATORS, build_generator

__all__ = [
    "GENERATORS", "DdpmConfig", "DdpmDefectGenerator", "DdpmDefectSettings", "DdpmModel", "DefectGenerator",
    "InpaintSettings", "InpaintingDefectGenerator", "MaskSettings", "ModelFolderError", "PerlinBlendGenerator",
    "SynthesisError", "SyntheticDefect", "augment_texture", "blend_texture", "build_generator",
    "build_tiny_inpainting_pipeline", "cached_defect_set", "check_image_and_mask", "combine_defect_sets",
    "defect_likeness", "frechet_distance",
    "load_ddpm", "load_defect_set", "load_inpainting_pipeline", "make_defect", "mask_area_statistics",
    "perlin_mask", "perlin_noise", "synthesize", "tiny_pipeline_folder", "train_ddpm", "train_or_load_ddpm", "write_defect_set",
]
