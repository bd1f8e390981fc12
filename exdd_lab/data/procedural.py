"""The embedded default dataset: procedural surfaces written to disk in the MVTec AD layout.

Nothing is downloaded. The images are written once into the cache (atomically, as a whole
folder) and then loaded with the ordinary MVTec loader, so the default dataset goes through
exactly the code path a real dataset does. Taught in ``notebooks/00_data_tour.ipynb``.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from exdd_lab.data.layouts import load_mvtec
from exdd_lab.data.records import DefectDataset, Sample
from exdd_lab.data.surfaces import MATERIAL_DEFECTS, MATERIALS, add_defect, render_surface, to_uint8
from exdd_lab.errors import DatasetError
from exdd_lab.storage import atomic_directory, atomic_write_json, cache_root, stable_hash


def write_procedural_dataset(
    out_dir: str | Path,
    material: str = "brushed_metal",
    n_train: int = 100,
    n_test_good: int = 40,
    n_test_defect: int = 60,
    image_size: int = 256,
    seed: int = 0,
    defect_types: tuple[str, ...] | None = None,
) -> Path:
    """Render a dataset into ``out_dir/<material>/`` (MVTec layout) and return that category folder.

    Defect images cycle through ``defect_types`` (default: the material's typical ones). Every
    image has its own seed derived from ``seed``, so one image never depends on how many others
    were asked for.
    """
    if material not in MATERIALS:
        raise DatasetError(f"unknown material {material!r} for the procedural default",
                           f"choose --category from {', '.join(sorted(MATERIALS))} (or pass --data DIR --layout ... for your own images)")
    kinds = tuple(defect_types or MATERIAL_DEFECTS[material])
    cat = Path(out_dir) / material
    (cat / "train" / "good").mkdir(parents=True, exist_ok=True)
    (cat / "test" / "good").mkdir(parents=True, exist_ok=True)

    def save(arr, path: Path) -> None:
        Image.fromarray(arr).save(path, compress_level=1)

    for i in range(n_train):
        save(to_uint8(render_surface(material, _seed(seed, "train", i), image_size)), cat / "train" / "good" / f"{i:03d}.png")
    for i in range(n_test_good):
        save(to_uint8(render_surface(material, _seed(seed, "good", i), image_size)), cat / "test" / "good" / f"{i:03d}.png")
    for i in range(n_test_defect):
        kind = kinds[i % len(kinds)]
        clean = render_surface(material, _seed(seed, "defect", i), image_size)
        img, mask = add_defect(clean, kind, _seed(seed, kind, i))
        (cat / "test" / kind).mkdir(exist_ok=True)
        (cat / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
        save(to_uint8(img), cat / "test" / kind / f"{i:03d}.png")
        save((mask * 255).astype("uint8"), cat / "ground_truth" / kind / f"{i:03d}_mask.png")
    atomic_write_json(cat / "generator.json", {
        "generator": "exdd_lab.data.surfaces", "material": material, "seed": seed, "image_size": image_size,
        "n_train": n_train, "n_test_good": n_test_good, "n_test_defect": n_test_defect, "defect_types": list(kinds),
    })
    return cat


def _seed(seed: int, role: str, index: int) -> int:
    return int(stable_hash([seed, role, index], 8), 16)


def procedural_dataset(
    material: str = "brushed_metal",
    n_train: int = 100,
    n_test_good: int = 40,
    n_test_defect: int = 60,
    image_size: int = 256,
    seed: int = 0,
    root: str | Path | None = None,
    n_val_good: int = 40,
) -> DefectDataset:
    """The default dataset: rendered on first use into the cache, then reused.

    Besides the MVTec-layout category it renders ``n_val_good`` further normal images into
    ``extra["val_good"]`` (held out from training and testing, as MTD's are), so normal-only
    thresholds work on the default too. The folder name encodes every parameter, so different
    settings never collide and the same settings are rendered only once.
    """
    params = [material, n_train, n_test_good, n_test_defect, image_size, seed]
    if n_val_good:
        params.append(n_val_good)
    base = Path(root) if root else cache_root() / "procedural"
    folder = base / f"{material}-{stable_hash(params, 10)}"
    if not (folder / material / "generator.json").is_file():
        with atomic_directory(folder) as tmp:
            write_procedural_dataset(tmp, material, n_train, n_test_good, n_test_defect, image_size, seed)
            (tmp / "val_good").mkdir()
            for i in range(n_val_good):
                Image.fromarray(to_uint8(render_surface(material, _seed(seed, "val", i), image_size))).save(
                    tmp / "val_good" / f"{i:03d}.png", compress_level=1)
    ds = load_mvtec(folder / material)
    ds.name = f"procedural-{material}"
    ds.layout = "procedural"
    ds.split_info = {"protocol": "procedural (exdd_lab.data.surfaces)", "seed": seed, "material": material,
                     "image_size": image_size, "n_val_good": n_val_good}
    if n_val_good:
        ds.extra["val_good"] = [Sample(p, 0) for p in sorted((folder / "val_good").glob("*.png"))]
    return ds
