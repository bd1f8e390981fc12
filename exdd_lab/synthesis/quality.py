"""How defect-like synthetic defects are, measured in the backbone's feature space.

A useful synthetic defect is *off the normal manifold* and *near real defects*. For the patches inside
the masks (a patch counts when at least ``min_fraction`` of its cell is masked) we report:

- ``closer_to_defect``: the share of patches whose nearest real-defect patch is nearer than their
  nearest normal patch (0..1; higher is more defect-like);
- ``median_d_normal`` / ``median_d_defect``: median distance to the nearest normal / real-defect patch;
- ``frechet_to_defect``: the Fréchet distance between Gaussian fits of these patches and of the real
  defect patches (as FID, but on patch features; lower is closer).

Real defects come from the dataset's test split; they are split by image into a *reference* half
(the bank compared against) and a *held-out* half, which gets the same statistics as the ceiling a
generator could reach; patches of held-out normal images give the floor. Nothing here
trains on real defects. Taught in ``notebooks/03_diffusion_defect_synthesis.ipynb``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import linalg

from exdd_lab.data.imageio import load_masks
from exdd_lab.data.records import Sample
from exdd_lab.errors import ExddError
from exdd_lab.features.cache import extract_features
from exdd_lab.features.patch_labels import patch_labels
from exdd_lab.components.neighbours import knn
from exdd_lab.synthesis.generators import SyntheticDefect


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets ``(n, C)`` and ``(m, C)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least two features on each side")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))
    return max(value, 0.0)


def masked_patches(extractor, samples: Sequence[Sample] | Sequence[SyntheticDefect], min_fraction: float = 0.5,
                   batch_size: int = 16) -> np.ndarray:
    """Features ``(P, C)`` of the patches inside the masks of samples (files) or synthetic defects (in
    memory, at the extractor's image size); samples without masks give all their patches."""
    size = extractor.config.image_size
    if samples and isinstance(samples[0], SyntheticDefect):
        feats = torch.cat([extractor(np.stack([d.image for d in samples[i : i + batch_size]]))
                           for i in range(0, len(samples), batch_size)])
        masks = np.stack([d.mask for d in samples])
    else:
        feats = extract_features(extractor, [s.image_path for s in samples])
        if all(s.mask_path is None for s in samples):
            return feats.reshape(-1, feats.shape[-1]).numpy()
        masks = load_masks([s.mask_path for s in samples], size=size, image_paths=[s.image_path for s in samples])
    keep = torch.from_numpy(patch_labels(masks, feats.shape[1], min_fraction))
    return feats[keep].numpy()


def _stats(patches: np.ndarray, normal: np.ndarray, defect_ref: np.ndarray) -> dict[str, float]:
    if len(patches) == 0:
        return {"patches": 0, "closer_to_defect": float("nan"), "median_d_normal": float("nan"),
                "median_d_defect": float("nan"), "frechet_to_defect": float("nan")}
    d_norm = knn(patches, normal, 1)[0][:, 0]
    d_def = knn(patches, defect_ref, 1)[0][:, 0]
    return {
        "patches": int(len(patches)),
        "closer_to_defect": float((d_def < d_norm).mean()),
        "median_d_normal": float(np.median(d_norm)),
        "median_d_defect": float(np.median(d_def)),
        "frechet_to_defect": frechet_distance(patches, defect_ref) if len(patches) > 1 else float("nan"),
    }


def defect_likeness(
    extractor,
    synthetic: dict[str, Sequence[Sample] | Sequence[SyntheticDefect]],
    real_defects: Sequence[Sample],
    normals: Sequence[Sample],
    min_fraction: float = 0.5,
    max_normal_patches: int = 50_000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per synthetic set (by name), plus ``real (held out)`` and ``normal (held out)`` rows.

    ``real_defects``: test-split defect images with masks; ``normals``: normal images (the first half
    of them gives the held-out normal row, the second half the normal bank, subsampled to
    ``max_normal_patches``). See the module docstring.
    """
    real = [s for s in real_defects if s.is_defect and s.mask_path is not None]
    if len(real) < 2:
        raise ExddError("need at least two real defect images with masks to compare against",
                        "use a dataset whose test split has pixel masks (e.g. MTD, MVTec)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(real))
    reference = [real[i] for i in order[: len(real) // 2]]
    held_out = [real[i] for i in order[len(real) // 2 :]]
    defect_ref = masked_patches(extractor, reference, min_fraction)
    if len(defect_ref) < 2:
        raise ExddError("the real defect masks cover fewer than two feature patches",
                        f"lower min_fraction (now {min_fraction}) or use a dataset with larger defects")
    normal_all = masked_patches(extractor, [Sample(s.image_path, 0) for s in normals])
    half = (len(normals) // 2) * (len(normal_all) // max(1, len(normals)))  # split by image: probe | bank
    probe, normal = normal_all[:half], normal_all[half:]
    if len(normal) > max_normal_patches:
        normal = normal[rng.choice(len(normal), max_normal_patches, replace=False)]
    rows = {name: _stats(masked_patches(extractor, list(samples), min_fraction), normal, defect_ref)
            for name, samples in synthetic.items()}
    rows["real (held out)"] = _stats(masked_patches(extractor, held_out, min_fraction), normal, defect_ref)
    if len(probe):
        probe = probe[rng.choice(len(probe), min(len(probe), 5000), replace=False)]
    rows["normal (held out)"] = _stats(probe, normal, defect_ref)
    return pd.DataFrame.from_dict(rows, orient="index")
