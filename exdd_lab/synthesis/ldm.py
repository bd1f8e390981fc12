"""Text-guided latent-diffusion inpainting (the ExDD paper's generator), loaded from a local folder.

A Stable Diffusion inpainting pipeline repaints the masked region of a normal image following a
prompt such as "copper metal scratches"; ExDD's settings are the defaults (30 steps, guidance 20,
strength 0.99). No weights can be downloaded at run time, so the pipeline comes from a folder the
user provides (SD 1.5 / 2 / SDXL inpainting, saved with ``save_pretrained`` or downloaded with
``huggingface-cli download <repo> --local-dir DIR``). :func:`build_tiny_inpainting_pipeline` writes a
tiny randomly initialised pipeline of the same kind: it runs the real code path offline (its
"defects" are noise, not realism). Outside the mask the original pixels are kept by
:func:`~exdd_lab.synthesis.generators.make_defect` (the VAE would otherwise alter every pixel).
Taught in ``notebooks/03_diffusion_defect_synthesis.ipynb``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from exdd_lab.components.device import pick_device
from exdd_lab.errors import ExddError
from exdd_lab.storage import atomic_directory

DEFAULT_PROMPTS = ("copper metal scratches", "white marks on the wall", "dark cracks on a metal surface", "rust stains")
DOWNLOAD_HINT = (
    "on a machine with internet run `huggingface-cli download stable-diffusion-v1-5/stable-diffusion-inpainting "
    "--local-dir DIR` (or stabilityai/stable-diffusion-2-inpainting, or "
    "diffusers/stable-diffusion-xl-1.0-inpainting-0.1), copy DIR here and pass it as --model-dir DIR"
)


class ModelFolderError(ExddError):
    """The inpainting model folder is missing or incomplete."""


@dataclass(frozen=True)
class InpaintSettings:
    """ExDD's generation settings; ``size`` is the pipeline's working resolution (512 for SD 1.5)."""

    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    negative_prompt: str = ""
    num_inference_steps: int = 30
    guidance_scale: float = 20.0
    strength: float = 0.99
    size: int = 512

    def to_dict(self) -> dict:
        d = asdict(self)
        d["prompts"] = list(self.prompts)
        return d


def load_inpainting_pipeline(model_dir: str | Path, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
    """A diffusers inpainting pipeline from a local folder (never the network); GPU when present."""
    from diffusers import AutoPipelineForInpainting

    folder = Path(model_dir) if model_dir else None
    if folder is None or not folder.is_dir():
        raise ModelFolderError(f"inpainting model folder not found: {model_dir}", DOWNLOAD_HINT)
    index = folder / "model_index.json"
    if not index.is_file():
        raise ModelFolderError(f"{folder} has no model_index.json, so it is not a diffusers pipeline folder", DOWNLOAD_HINT)
    device = pick_device(device)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    extra = {"safety_checker": None, "requires_safety_checker": False} if "safety_checker" in json.loads(index.read_text()) else {}
    try:
        pipe = AutoPipelineForInpainting.from_pretrained(folder, dtype=dtype, local_files_only=True, **extra)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFolderError(f"cannot load the inpainting pipeline in {folder}: {exc}", DOWNLOAD_HINT) from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


class InpaintingDefectGenerator:
    """Defects painted by a text-guided inpainting pipeline inside the mask; the prompt is drawn per defect."""

    name = "ldm"

    def __init__(self, pipeline, settings: InpaintSettings | None = None):
        self.pipe = pipeline
        self.settings = settings or InpaintSettings()
        if not self.settings.prompts:
            raise ValueError("give at least one prompt")

    def generate(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        s = self.settings
        prompt = s.prompts[int(rng.integers(len(s.prompts)))]
        seed = int(rng.integers(2**31 - 1))
        h, w = image.shape[:2]
        device = self.pipe.device
        out = self.pipe(
            prompt=prompt,
            negative_prompt=s.negative_prompt or None,
            image=Image.fromarray(image).resize((s.size, s.size), Image.BICUBIC),
            mask_image=Image.fromarray(np.asarray(mask, np.uint8) * 255).resize((s.size, s.size), Image.NEAREST),
            num_inference_steps=s.num_inference_steps,
            guidance_scale=s.guidance_scale,
            strength=s.strength,
            height=s.size,
            width=s.size,
            generator=torch.Generator(device=device.type).manual_seed(seed),
        ).images[0]
        result = np.asarray(out.convert("RGB").resize((w, h), Image.BICUBIC), dtype=np.uint8)
        return result, {**s.to_dict(), "prompt": prompt, "pipeline_seed": seed}


def _tiny_tokenizer(words: Sequence[str]):
    """A CLIP BPE tokenizer over single characters plus the given words (no merges beyond those)."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789.,!-'":
        for tok in (ch, ch + "</w>"):
            vocab.setdefault(tok, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_pipeline_folder() -> Path:
    """Where the kit keeps its tiny random inpainting pipeline (in the cache; built on first use)."""
    from exdd_lab.storage import cache_root

    return build_tiny_inpainting_pipeline(cache_root() / "tiny-inpainting-v2")


def build_tiny_inpainting_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny, randomly initialised Stable-Diffusion inpainting pipeline to ``folder`` (atomically).

    Same classes as the real one (``UNet2DConditionModel`` with 9 input channels, ``AutoencoderKL``,
    ``CLIPTextModel``, a CLIP tokenizer, a DDIM scheduler), a few hundred thousand weights: it runs the
    full inpainting code path in seconds on a CPU. Its output is noise-like; it is not a defect model.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    if (folder / "model_index.json").is_file():
        return folder
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=9, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )
    vae = AutoencoderKL(  # four blocks: latents are 1/8 of the image size, as in Stable Diffusion
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 16, 32), norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64,
    )
    tokenizer = _tiny_tokenizer(DEFAULT_PROMPTS)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=32,
    ))
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    with atomic_directory(folder) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
    return folder
