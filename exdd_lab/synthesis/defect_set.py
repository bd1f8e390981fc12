"""Synthetic defect sets on disk: make many defects, write them, read them back as a dataset.

Layout of a set folder (written atomically, whole)::

    images/0000.png  masks/0000.png  ...   the defective images and their exact masks
    samples.json                           generator, settings, seed, and per sample: source image, seed, params

:func:`load_defect_set` returns a :class:`~exdd_lab.data.DefectDataset` whose ``test`` split holds the
synthetic defects (label 1, ``defect_type`` = the generator's name, masks present) and whose ``train``
split holds the normal images they were made from, so the dual-bank and student-teacher code consume
any generator's output the same way. Taught in ``notebooks/03_diffusion_defect_synthesis.ipynb``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from exdd_lab.data.imageio import load_image
from exdd_lab.data.records import DefectDataset, Sample
from exdd_lab.errors import DatasetError
from exdd_lab.storage import atomic_directory, atomic_write_json
from exdd_lab.synthesis.generators import DefectGenerator, SyntheticDefect, make_defect
from exdd_lab.synthesis.masks import MaskSettings

INDEX = "samples.json"


def synthesize(
    sources: Sequence[Sample | str | Path],
    generator: DefectGenerator,
    n: int,
    seed: int = 0,
    image_size: int | None = 256,
    mask_settings: MaskSettings | None = None,
    masks: Sequence[np.ndarray] | None = None,
    progress: bool = False,
    start: int = 0,
) -> list[SyntheticDefect]:
    """``n`` defects on normal ``sources`` (cycled in a seeded order), each with its own seed.

    Defect ``i`` uses ``numpy.random.default_rng([seed, i])``, so a set is reproducible and a longer set
    starts with the shorter one. ``masks`` (e.g. real defect masks, resized) replace the Perlin masks,
    used in turn. ``start`` skips the first defects (they are the same whatever ``n``): extending a set.
    """
    from tqdm.auto import tqdm

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    paths = [s.image_path if isinstance(s, Sample) else Path(s) for s in sources]
    if not paths:
        raise DatasetError("no normal images to put synthetic defects on", "pass the training split's normal images")
    order = np.random.default_rng(seed).permutation(len(paths))
    defects = []
    for i in tqdm(range(start, n), desc=f"{generator.name} defects", disable=not progress):
        path = paths[order[i % len(paths)]]
        rng = np.random.default_rng([seed, i])
        image = load_image(path, size=image_size)
        mask = None if masks is None else np.asarray(masks[i % len(masks)], bool)
        defects.append(make_defect(generator, image, rng, mask, mask_settings, source=str(path), seed=seed))
        defects[-1].params["index"] = i
    return defects


def write_defect_set(defects: Sequence[SyntheticDefect], out: str | Path, info: dict | None = None) -> Path:
    """Write defects as a set folder (see the module docstring); an existing folder is refused."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} already exists and is not empty", "choose a new --out folder, or delete the old set")
    if out.exists():
        out.rmdir()
    records = []
    with atomic_directory(out) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        for i, d in enumerate(defects):
            name = f"{i:04d}.png"
            Image.fromarray(d.image).save(tmp / "images" / name)
            Image.fromarray(d.mask.astype(np.uint8) * 255).save(tmp / "masks" / name)
            records.append({"image": f"images/{name}", "mask": f"masks/{name}", "source": d.source,
                            "generator": d.generator, "seed": d.seed, "params": d.params})
        atomic_write_json(tmp / INDEX, {"info": info or {}, "samples": records})
    return out


def load_defect_set(folder: str | Path) -> DefectDataset:
    """A set folder as a dataset: ``test`` = the synthetic defects, ``train`` = their normal sources."""
    folder = Path(folder)
    index = folder / INDEX
    if not index.is_file():
        raise DatasetError(
            f"{index} not found: {folder} is not a synthetic defect set",
            "make one with `exdd-lab synthesize ... --out DIR` or exdd_lab.synthesis.write_defect_set",
        )
    blob = json.loads(index.read_text())
    test, sources = [], []
    for r in blob["samples"]:
        image, mask = folder / r["image"], folder / r["mask"]
        for p in (image, mask):
            if not p.is_file():
                raise DatasetError(f"{p} listed in {index} is missing", "re-create the set; sets are written whole")
        test.append(Sample(image, 1, f"synthetic_{r['generator']}", mask))
        if r.get("source") and r["source"] not in sources:
            sources.append(r["source"])
    train = [Sample(Path(s), 0) for s in sources]
    info = dict(blob.get("info", {}), records=blob["samples"])
    return DefectDataset(f"synthetic-{folder.name}", folder, "synthetic", train, test, {}, info)


def cached_defect_set(
    normals: Sequence[Sample],
    generator: str,
    n: int,
    seed: int = 0,
    image_size: int = 256,
    model_dir: str | Path | None = None,
    ddpm_config=None,
    progress: bool = False,
) -> DefectDataset:
    """A synthetic set of ``n`` defects on ``normals`` from the named generator, made once and cached.

    The cache key covers the normal images' content, the generator, its model folder or DDPM config,
    the seed and the image size. A cached set of at least ``n`` defects is reused (defect ``i`` depends
    only on ``seed`` and ``i``, so its first ``n`` are exactly a set of ``n``): the count sweep of
    notebook 07 makes the largest set once.
    """
    from exdd_lab.storage import cache_root, file_digest, stable_hash
    from exdd_lab.synthesis.ddpm import DdpmConfig
    from exdd_lab.synthesis.registry import build_generator

    ddpm_config = ddpm_config or DdpmConfig(image_size=image_size, seed=seed)
    key = stable_hash({"normals": sorted(file_digest(s.image_path) for s in normals), "generator": generator,
                       "model_dir": str(model_dir) if model_dir else None, "seed": seed, "image_size": image_size,
                       "ddpm": ddpm_config.to_dict() if generator == "ddpm" else None})
    root = cache_root() / "synthetic" / f"{generator}-{key}"
    existing = sorted((p for p in root.glob("n*") if (p / INDEX).is_file()), key=lambda p: int(p.name[1:]))
    for folder in existing:
        if int(folder.name[1:]) >= n:
            return _first(load_defect_set(folder), n)
    done = _read_defects(existing[-1]) if existing else []  # a smaller set: only the missing defects are made
    gen = build_generator(generator, normals, model_dir, ddpm_config=ddpm_config, progress=progress)
    defects = done + synthesize(normals, gen, n, seed=seed, image_size=image_size, progress=progress, start=len(done))
    info = {"generator": generator, "seed": seed, "n": n, "image_size": image_size}
    folder = root / f"n{n}"
    if not folder.exists():
        write_defect_set(defects, folder, info)
    return load_defect_set(folder)


def combine_defect_sets(sets: Sequence[DefectDataset]) -> DefectDataset:
    """One training set from several sets (e.g. DDPM-made defects and Perlin blends): defects and records in order.

    More varied defects are one way to keep a model trained on them from learning one generator's look.
    """
    if not sets:
        raise DatasetError("no defect sets to combine", "pass at least one set from cached_defect_set")
    test = [s for ds in sets for s in ds.test]
    records = [r for ds in sets for r in ds.split_info.get("records", [])[: len(ds.test)]]
    seen: dict[str, Sample] = {}
    for ds in sets:
        seen.update({str(s.image_path): s for s in ds.train if str(s.image_path) not in seen})
    info = {"records": records, "parts": [{"name": ds.name, "n": len(ds.test)} for ds in sets]}
    return DefectDataset("+".join(ds.name for ds in sets), sets[0].root, "synthetic", list(seen.values()), test, {}, info)


def _read_defects(folder: Path) -> list[SyntheticDefect]:
    """The defects of a set folder back in memory (images, masks, provenance)."""
    from exdd_lab.data.imageio import load_mask

    blob = json.loads((folder / INDEX).read_text())
    return [SyntheticDefect(load_image(folder / r["image"]), load_mask(folder / r["mask"]), r["generator"], r["params"],
                            r["source"], r["seed"]) for r in blob["samples"]]


def _first(ds: DefectDataset, n: int) -> DefectDataset:
    """The first ``n`` defects of a loaded set, with only the normal images they were made from as ``train``."""
    records = ds.split_info.get("records", [])[:n]
    sources = {str(r["source"]) for r in records if r.get("source")}
    return DefectDataset(ds.name, ds.root, ds.layout, [s for s in ds.train if str(s.image_path) in sources],
                         ds.test[:n], {}, dict(ds.split_info, n=n, records=records))
