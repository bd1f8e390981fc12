"""A DDPM trained only on normal images, and the defects it makes (the student-teacher paper's generator).

**Training** (:func:`train_ddpm`): a small diffusers ``UNet2DModel`` learns to predict the noise that a
``DDPMScheduler`` added to random crops of the normal images (the standard epsilon loss). The UNet
has no attention layers, so it is fully convolutional: trained on ``resolution``-pixel crops (cheap
on two CPU cores), it denoises whole images of any size. Checkpoints (``checkpoint-<step>/``: the
UNet as safetensors plus the optimizer and random-generator state) are written atomically every
``checkpoint_every`` steps; training resumes from the newest one and then takes exactly the steps
it would have taken without the interruption.

**Defects** (:class:`DdpmDefectGenerator`): a normal image is diffused forward to step
``t0 = noise_level * T``; inside the mask a constant-variance Gaussian perturbation (plus a random
brightness offset) is added; DDIM then denoises back to step 0. The model only knows normal
texture, so it turns the perturbed region into something surface-like but wrong: a defect. Outside
the mask the original pixels are kept (:func:`~exdd_lab.synthesis.generators.make_defect`).
Shapes: images ``(H, W, 3) uint8``; model tensors ``(B, 3, H, W)`` in [-1, 1].
Taught in ``notebooks/03_diffusion_defect_synthesis.ipynb``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from exdd_lab.components.checkpoints import STATE_FILE, Checkpointer, SavedConfig
from exdd_lab.components.device import pick_device
from exdd_lab.data.imageio import load_image
from exdd_lab.errors import ExddError
from exdd_lab.storage import cache_root, file_digest, stable_hash



@dataclass(frozen=True)
class DdpmConfig(SavedConfig):
    """Model size and training budget. The defaults train in minutes on two CPU cores."""

    resolution: int = 32  # training crop size (pixels)
    image_size: int = 256  # images are resized to this before cropping
    block_out_channels: tuple[int, ...] = (16, 32, 64)
    layers_per_block: int = 1
    num_train_timesteps: int = 1000
    train_steps: int = 2500
    batch_size: int = 16
    learning_rate: float = 5e-4
    checkpoint_every: int = 250
    seed: int = 0



def build_unet(config: DdpmConfig):
    """The attention-free ``UNet2DModel`` of ``config`` (randomly initialised)."""
    from diffusers import UNet2DModel

    n = len(config.block_out_channels)
    return UNet2DModel(
        sample_size=config.resolution,
        in_channels=3,
        out_channels=3,
        layers_per_block=config.layers_per_block,
        block_out_channels=config.block_out_channels,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        norm_num_groups=8,
    )


def build_scheduler(config: DdpmConfig):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=config.num_train_timesteps)


def to_model_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(N, H, W, 3) uint8`` -> ``(N, 3, H, W) float`` in [-1, 1]."""
    x = torch.as_tensor(np.asarray(images))
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` in [-1, 1] -> ``(N, H, W, 3) uint8``."""
    return x.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class DdpmModel:
    """A trained (or training) DDPM: the UNet, its noise schedule, its config and its loss curve."""

    unet: torch.nn.Module
    scheduler: object
    config: DdpmConfig
    step: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    path: Path | None = None

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device


def checkpointer(folder: str | Path) -> Checkpointer:
    """The DDPM's checkpoints in ``folder``: ``checkpoint-<step>/`` with the UNet and the training state."""
    return Checkpointer(Path(folder), as_folder=True)


def load_ddpm(folder: str | Path, device: str | torch.device = "cpu") -> DdpmModel:
    """The newest checkpoint under ``folder`` (a training folder or one ``checkpoint-<step>``)."""
    from diffusers import UNet2DModel

    folder = Path(folder)
    path = checkpointer(folder).latest() or (folder if (folder / STATE_FILE).is_file() else None)
    if path is None:
        raise ExddError(
            f"no DDPM checkpoint in {folder}",
            "train one with exdd_lab.synthesis.train_ddpm (or `exdd-lab synthesize --generator ddpm`), or point at its folder",
        )
    state = Checkpointer.load_state(path, as_folder=True)
    config = DdpmConfig.from_dict(state["config"])
    unet = UNet2DModel.from_pretrained(path / "unet").to(device).eval()
    return DdpmModel(unet, build_scheduler(config), config, state["step"], list(state["losses"]), state["seconds"], path)


def load_training_images(paths: Sequence[str | Path], size: int) -> torch.Tensor:
    """The normal images as one ``(N, H, W, 3) uint8`` tensor (400 MTD images at 256 px: 79 MB)."""
    if not paths:
        raise ExddError("no normal images to train the DDPM on", "pass the training split's normal images")
    return torch.from_numpy(np.stack([load_image(p, size=size) for p in paths]))


def _batch(images: torch.Tensor, config: DdpmConfig, gen: torch.Generator) -> torch.Tensor:
    """Random crops with random flips, ``(B, 3, r, r)`` in [-1, 1], drawn from ``gen`` only."""
    n, h, w, _ = images.shape
    r = min(config.resolution, h, w)
    idx = torch.randint(n, (config.batch_size,), generator=gen)
    ys = torch.randint(h - r + 1, (config.batch_size,), generator=gen)
    xs = torch.randint(w - r + 1, (config.batch_size,), generator=gen)
    flips = torch.rand(config.batch_size, 2, generator=gen) < 0.5
    crops = []
    for i, y, x, (fv, fh) in zip(idx.tolist(), ys.tolist(), xs.tolist(), flips.tolist()):
        c = images[i, y : y + r, x : x + r]
        if fv:
            c = c.flip(0)
        if fh:
            c = c.flip(1)
        crops.append(c)
    return to_model_range(torch.stack(crops))


def train_ddpm(
    images: Sequence[str | Path] | torch.Tensor,
    folder: str | Path,
    config: DdpmConfig | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> DdpmModel:
    """Train (or resume training) a DDPM on normal images; checkpoints go to ``folder``.

    ``images`` are paths of normal images or an ``(N, H, W, 3) uint8`` tensor. If ``folder`` holds a
    checkpoint, training continues from it up to ``config.train_steps``. ``stop_after`` ends this
    call after that many steps in total (a checkpoint is written), as an interruption would.
    """
    from tqdm.auto import tqdm

    config = config or DdpmConfig()
    folder = Path(folder)
    device = pick_device(device)
    data = images if isinstance(images, torch.Tensor) else load_training_images(images, config.image_size)
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the UNet's initial weights
    unet = build_unet(config).to(device)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.learning_rate)
    model = DdpmModel(unet, build_scheduler(config), config, path=folder)
    checkpoints = checkpointer(folder)
    path = checkpoints.latest()
    if path is not None:
        state = Checkpointer.load_state(path, as_folder=True)
        if DdpmConfig.from_dict(state["config"]) != config:
            raise ExddError(
                f"the checkpoint in {path} was trained with another configuration",
                "use another folder for this configuration, or delete the old checkpoints",
            )
        from diffusers import UNet2DModel

        model.unet = unet = UNet2DModel.from_pretrained(path / "unet").to(device)
        optimizer = torch.optim.AdamW(unet.parameters(), lr=config.learning_rate)
        Checkpointer.restore(state, optimizer, gen)
        model.step, model.losses, model.seconds = state["step"], list(state["losses"]), state["seconds"]
    end = min(config.train_steps, stop_after if stop_after is not None else config.train_steps)
    unet.train()
    bar = tqdm(total=end, initial=model.step, desc="DDPM training", disable=not progress)
    while model.step < end:
        start = time.perf_counter()
        clean = _batch(data, config, gen).to(device)
        noise = torch.randn(clean.shape, generator=gen).to(device)
        t = torch.randint(config.num_train_timesteps, (clean.shape[0],), generator=gen).to(device)
        noisy = model.scheduler.add_noise(clean, noise, t)
        loss = F.mse_loss(unet(noisy, t).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.step += 1
        model.losses.append(loss.item())
        model.seconds += time.perf_counter() - start
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(model.losses[-50:]):.4f}")
        if model.step % config.checkpoint_every == 0 or model.step == end:
            model.path = checkpoints.save(
                model.step, {"losses": model.losses, "seconds": model.seconds, "config": config.to_dict()},
                optimizer, gen, write_model=lambda tmp: unet.save_pretrained(tmp / "unet", safe_serialization=True))
    bar.close()
    unet.eval()
    return model


def ddpm_cache_folder(image_paths: Sequence[str | Path], config: DdpmConfig) -> Path:
    """Where the DDPM for these images and this config is cached (keyed by image content and config)."""
    key = stable_hash({"images": sorted(file_digest(p) for p in image_paths), "config": config.to_dict()})
    return cache_root() / "ddpm" / key


def train_or_load_ddpm(
    image_paths: Sequence[str | Path],
    config: DdpmConfig | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> DdpmModel:
    """The cached DDPM for these normal images if it finished training, else train (or resume) it."""
    config = config or DdpmConfig()
    folder = ddpm_cache_folder(image_paths, config)
    if checkpointer(folder).latest_step() >= config.train_steps:
        return load_ddpm(folder, pick_device(device))
    return train_ddpm(list(image_paths), folder, config, device, progress)


@dataclass(frozen=True)
class DdpmDefectSettings:
    """How a normal image becomes a defect (see the module docstring).

    ``noise_level``: how far into the diffusion the image is pushed (0..1 of ``T``): higher lets the
    model invent more, lower keeps more of the original structure. ``perturbation_std``: standard
    deviation of the Gaussian added inside the mask at that step (constant variance, in the model's
    [-1, 1] units). ``perturbation_shift``: largest random brightness offset added with it (sign and
    size drawn per defect). ``steps``: DDIM denoising steps from ``t0`` back to 0.
    """

    noise_level: float = 0.5
    perturbation_std: float = 1.0
    perturbation_shift: float = 1.0
    steps: int = 6
    margin: int = 16

    def to_dict(self) -> dict:
        return asdict(self)


class DdpmDefectGenerator:
    """Defects from a DDPM trained on normal images: perturb inside the mask at ``t0``, denoise with DDIM."""

    name = "ddpm"

    def __init__(self, model: DdpmModel, settings: DdpmDefectSettings | None = None):
        from diffusers import DDIMScheduler

        self.model = model
        self.settings = settings or DdpmDefectSettings()
        if not 0 < self.settings.noise_level <= 1:
            raise ValueError(f"noise_level must lie in (0, 1], got {self.settings.noise_level}")
        self.ddim = DDIMScheduler.from_config(model.scheduler.config)

    @torch.no_grad()
    def generate(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        s = self.settings
        device = self.model.device
        gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        y0, y1, x0_, x1 = self._window(mask)
        x0 = to_model_range(image[None, y0:y1, x0_:x1]).to(device)
        m = torch.from_numpy(np.asarray(mask[y0:y1, x0_:x1], np.float32))[None, None].to(device)
        total = max(s.steps, int(round(s.steps / s.noise_level)))
        self.ddim.set_timesteps(total)
        timesteps = self.ddim.timesteps[-s.steps :]
        noise = torch.randn(x0.shape, generator=gen).to(device)
        x = self.ddim.add_noise(x0, noise, timesteps[:1])
        shift = float(rng.uniform(-1, 1)) * s.perturbation_shift
        perturbation = shift + s.perturbation_std * torch.randn(x0.shape, generator=gen).to(device)
        x = x + m * perturbation
        for t in timesteps:
            eps = self.model.unet(x, t).sample
            x = self.ddim.step(eps, t, x, eta=0.0).prev_sample
        out = image.copy()
        out[y0:y1, x0_:x1] = to_uint8(x)[0]
        params = {**s.to_dict(), "t0": int(timesteps[0]), "shift": shift}
        return out, params

    def _window(self, mask: np.ndarray) -> tuple[int, int, int, int]:
        """Rows and columns ``(y0, y1, x0, x1)`` of the mask's bounding box plus the margin, sized so the
        UNet's downsampling divides it."""
        h, w = mask.shape
        unit = 2 ** (len(self.model.config.block_out_channels) - 1)
        ys, xs = np.nonzero(mask)

        def span(lo: int, hi: int, size: int) -> tuple[int, int]:
            lo, hi = max(0, lo - self.settings.margin), min(size, hi + 1 + self.settings.margin)
            length = min(size - size % unit, -(-(hi - lo) // unit) * unit)  # round up to a multiple of unit
            lo = max(0, min(lo, size - length))
            return lo, lo + length

        return (*span(int(ys.min()), int(ys.max()), h), *span(int(xs.min()), int(xs.max()), w))
