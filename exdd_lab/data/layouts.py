"""Loaders for the folder layouts of public defect datasets, and a generic one for your own images.

Each loader returns a :class:`~exdd_lab.data.records.DefectDataset`. Layouts (details and sources
in ``datasets.md``):

- ``mvtec``: ``CATEGORY/train/good``, ``CATEGORY/test/<type>``, ``CATEGORY/ground_truth/<type>/<stem>_mask.png``
- ``ksdd2``: ``train|test/ID.png`` with ``ID_GT.png``; training positives go to ``extra["train_defects"]``
- ``mtd``: ``MT_*/Imgs/*.jpg`` with ``*.png`` masks; ``MT_Free`` is normal; a seeded split
- ``folder``: ``good/``, ``defect/`` or ``defect/<type>/``, optional ``masks/`` mirroring ``defect/``

Taught in ``notebooks/00_data_tour.ipynb``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from exdd_lab.components.registry import Registry
from exdd_lab.data.imageio import list_images, load_mask
from exdd_lab.data.records import GOOD, DefectDataset, Sample
from exdd_lab.errors import DatasetError

#: Folder layouts by name: ``LAYOUTS[name](root, category=..., seed=..., **loader_options)``. The procedural
#: default (no folder) is not one of them. A new layout: a loader here, registered once (datasets.md documents it).
LAYOUTS: Registry[Callable[..., DefectDataset]] = Registry("layout", DatasetError, " (see datasets.md)")


def _require_dir(path: Path, what: str, fix: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found: {path}", fix)
    return path


def _require_images(folder: Path, what: str) -> list[Path]:
    images = list_images(folder)
    if not images:
        raise DatasetError(f"empty class: no images in {folder} ({what})", "put images there or remove the folder")
    return images


def seeded_normal_split(
    paths: list[Path], seed: int, n_train: int | None, n_test: int | None, train_fraction: float = 0.5
) -> tuple[list[Path], list[Path], list[Path]]:
    """Split normal images into (train, test, held-out) by a seeded permutation of sorted names.

    ``n_train``/``n_test`` of ``None`` fall back to ``train_fraction`` and "all the rest". If the
    folder holds fewer images than asked, the counts shrink proportionally (never an empty train).
    """
    paths = sorted(paths)
    n = len(paths)
    if n_train is None:
        n_train = max(1, int(round(n * train_fraction)))
    if n_test is None:
        n_test = n - n_train
    if n_train + n_test > n:
        scale = n / (n_train + n_test)
        n_train = max(1, int(n_train * scale))
        n_test = n - n_train
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [paths[i] for i in order]
    train = sorted(shuffled[:n_train])
    test = sorted(shuffled[n_train : n_train + n_test])
    rest = sorted(shuffled[n_train + n_test :])
    return train, test, rest


def load_mvtec(root: str | Path, category: str | None = None, require_masks: bool = True) -> DefectDataset:
    """MVTec AD layout. ``root`` is the category folder, or the dataset folder plus ``category``."""
    root = Path(root)
    if category:
        root = root / category
    _require_dir(root, "MVTec category folder", "pass --data DATASET_DIR --category NAME (e.g. bottle), see datasets.md")
    train_dir = _require_dir(root / "train" / "good", "MVTec training folder", f"expected {root}/train/good with normal images")
    test_dir = _require_dir(root / "test", "MVTec test folder", f"expected {root}/test/<defect type>/ folders")
    train = [Sample(p, 0) for p in _require_images(train_dir, "training normals")]
    test: list[Sample] = []
    for type_dir in sorted(d for d in test_dir.iterdir() if d.is_dir()):
        kind = type_dir.name
        for p in _require_images(type_dir, f"test images of type {kind!r}"):
            if kind == GOOD:
                test.append(Sample(p, 0))
                continue
            mask = root / "ground_truth" / kind / f"{p.stem}_mask.png"
            if not mask.is_file():
                if require_masks:
                    raise DatasetError(
                        f"defect image {p} has no mask at {mask}",
                        "add the mask, or load with require_masks=False (pixel metrics then skip this image)",
                    )
                mask = None
            test.append(Sample(p, 1, kind, mask))
    if not test:
        raise DatasetError(f"no test images under {test_dir}", "expected test/good and test/<defect type> folders")
    return DefectDataset(root.name, root, "mvtec", train, test, split_info={"protocol": "official MVTec AD split"})


def load_ksdd2(root: str | Path) -> DefectDataset:
    """KolektorSDD2 layout: ``train|test/ID.png`` and ``ID_GT.png``; a non-empty mask means defect."""
    root = Path(root)
    _require_dir(root, "KSDD2 folder", "pass the folder that holds train/ and test/, see datasets.md")
    splits: dict[str, tuple[list[Sample], list[Sample]]] = {}
    for split in ("train", "test"):
        folder = _require_dir(root / split, f"KSDD2 {split} folder", f"expected {root}/{split}/ID.png + ID_GT.png")
        good, bad = [], []
        for p in list_images(folder):
            if p.stem.endswith("_GT"):
                continue
            gt = p.with_name(f"{p.stem}_GT.png")
            if not gt.is_file():
                raise DatasetError(f"KSDD2 image {p} has no mask {gt.name}", "every KSDD2 image needs its ID_GT.png")
            if load_mask(gt).any():
                bad.append(Sample(p, 1, "defect", gt))
            else:
                good.append(Sample(p, 0, GOOD, gt))
        if not good:
            raise DatasetError(f"empty class: no normal images in {folder}", "check that the GT masks are not all non-empty")
        splits[split] = (good, bad)
    train_good, train_bad = splits["train"]
    test = splits["test"][0] + splits["test"][1]
    return DefectDataset(
        "ksdd2", root, "ksdd2", train_good, test, {"train_defects": train_bad},
        {"protocol": "official KSDD2 split; training positives kept apart in extra['train_defects']"},
    )


#: Named published protocols for MTD: the training-list file each reads, relative to the MTD folder.
MTD_SPLITS = {"seeded": None, "differnet": Path("splits") / "differnet_train.txt"}


def read_split_list(path: Path, folder: Path) -> list[Path]:
    """The image files named one per line in ``path`` (blank lines and ``#`` comments skipped), inside ``folder``."""
    names = [line.strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise DatasetError(f"split list {path} names no images", "one file name per line, e.g. exp0_num_743.jpg")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DatasetError(f"split list {path} names {len(missing)} file(s) not in {folder}, e.g. {missing[0]}",
                           "point --data at the MTD folder the list was written for (MT_Free/Imgs holds the names)")
    if len(set(names)) != len(names):
        raise DatasetError(f"split list {path} names a file twice", "remove the duplicate lines")
    return sorted(folder / n for n in names)


def load_mtd(root: str | Path, seed: int = 0, n_train: int = 400, n_test_good: int = 200,
             split: str = "seeded", split_file: str | Path | None = None) -> DefectDataset:
    """Magnetic Tile Defects: ``MT_Free`` normals for training; every defect image goes to test.

    ``split="seeded"`` (default; written into ``split_info``): 400 training normals chosen by ``seed``,
    200 test normals, the other normals held out in ``extra["val_good"]`` (for normal-only thresholds).
    ``split="differnet"``: the published protocol behind the literature's MTD numbers (DifferNet, reused
    by CS-Flow and PatchCore): the 761 ``MT_Free`` images named in ``split_file`` (default
    ``ROOT/splits/differnet_train.txt``) train, the other normals and all defects test; nothing is held out.
    """
    root = Path(root)
    _require_dir(root, "MTD folder", "pass the folder that holds MT_Free/, MT_Blowhole/, ... (see datasets.md)")
    if split not in MTD_SPLITS:
        raise DatasetError(f"unknown MTD split {split!r}", f"use one of {', '.join(MTD_SPLITS)} (see datasets.md)")
    free = _require_dir(root / "MT_Free" / "Imgs", "MTD normal folder", f"expected {root}/MT_Free/Imgs/*.jpg")
    normals = [p for p in list_images(free) if p.suffix.lower() == ".jpg"]
    if not normals:
        raise DatasetError(f"empty class: no .jpg images in {free}", "MTD images are .jpg with .png masks beside them")
    if split == "seeded":
        train_p, test_p, rest_p = seeded_normal_split(normals, seed, n_train, n_test_good)
        info = {"protocol": "seeded split of MT_Free", "seed": seed, "n_train": len(train_p),
                "n_test_good": len(test_p), "n_val_good": len(rest_p)}
    else:
        list_file = Path(split_file) if split_file else root / MTD_SPLITS[split]
        if not list_file.is_file():
            raise DatasetError(f"the {split} training list was not found at {list_file}",
                               "put the published list there (one MT_Free file name per line; see datasets.md), "
                               "or give its path with --split-file")
        train_p = read_split_list(list_file, free)
        chosen = set(train_p)
        test_p, rest_p = [p for p in sorted(normals) if p not in chosen], []
        info = {"protocol": f"published {split} split of MT_Free (train = the list, test = the other normals + all defects)",
                "split": split, "split_file": str(list_file.resolve()), "n_train": len(train_p),
                "n_test_good": len(test_p), "n_val_good": 0,
                "published_image_auroc": dict(PUBLISHED_MTD_IMAGE_AUROC) if split == "differnet" else {}}
    test = [Sample(p, 0) for p in test_p]
    kinds = sorted(d for d in root.iterdir() if d.is_dir() and d.name.startswith("MT_") and d.name != "MT_Free")
    for d in kinds:
        kind = d.name[3:].lower()
        imgs = [p for p in list_images(d / "Imgs") if p.suffix.lower() == ".jpg"] if (d / "Imgs").is_dir() else []
        if not imgs:
            raise DatasetError(f"empty class: no .jpg images in {d / 'Imgs'}", "remove the folder or restore its images")
        for p in imgs:
            mask = p.with_suffix(".png")
            if not mask.is_file():
                raise DatasetError(f"MTD defect image {p} has no mask {mask.name}", "restore the .png mask beside the .jpg")
            test.append(Sample(p, 1, kind, mask))
    extra = {"val_good": [Sample(p, 0) for p in rest_p]} if rest_p else {}
    return DefectDataset("mtd", root, "mtd", [Sample(p, 0) for p in train_p], test, extra, info)


#: Image AUROC (%) published on MTD's DifferNet split (pixel metrics are not published).
PUBLISHED_MTD_IMAGE_AUROC = {"DifferNet (Rudolph et al., WACV 2021)": 97.7,
                             "PatchCore-10%, WideResNet-50 (Roth et al., CVPR 2022)": 97.9,
                             "CS-Flow (Rudolph et al., WACV 2022)": 99.3}


def _folder_mask(root: Path, image: Path) -> Path | None:
    rel = image.relative_to(root / "defect")
    for cand in (root / "masks" / rel.with_suffix(".png"), root / "masks" / rel.parent / f"{image.stem}_mask.png"):
        if cand.is_file():
            return cand
    return None


def load_folder(root: str | Path, seed: int = 0, train_fraction: float = 0.5, require_masks: bool = False) -> DefectDataset:
    """Your own images: ``good/`` (normal), ``defect/`` or ``defect/<type>/``, optional ``masks/``.

    Masks mirror ``defect/`` (``masks/<type>/<stem>.png`` or ``<stem>_mask.png``). If a
    ``train/`` folder of normals exists it is the training set; otherwise ``good/`` is split by
    seed (``train_fraction`` to train, the rest to test). Normals in an optional ``val_good/`` folder
    are held out (``extra["val_good"]``, for normal-only thresholds); without it there are none, and
    :meth:`DefectDataset.with_held_out_normals` moves some out of training instead.
    """
    root = Path(root)
    _require_dir(root, "dataset folder", "pass a folder with good/ and defect/ subfolders (see datasets.md)")
    good_dir = _require_dir(root / "good", "normal-image folder", f"put normal images in {root}/good/")
    goods = _require_images(good_dir, "normal images")
    if (root / "train").is_dir():
        train_p, test_good, rest = _require_images(root / "train", "training normals"), goods, []
    else:
        train_p, test_good, rest = seeded_normal_split(goods, seed, None, None, train_fraction)
    if (root / "val_good").is_dir():
        rest = _require_images(root / "val_good", "held-out normals")
    test = [Sample(p, 0) for p in test_good]
    defect_dir = root / "defect"
    if defect_dir.is_dir():
        groups = [(defect_dir, "defect")] + [(d, d.name) for d in sorted(defect_dir.iterdir()) if d.is_dir()]
        for folder, kind in groups:
            images = list_images(folder)
            if folder != defect_dir and not images:
                raise DatasetError(f"empty class: no images in {folder}", "put defect images there or remove the folder")
            for p in images:
                mask = _folder_mask(root, p)
                if mask is None and require_masks:
                    raise DatasetError(f"defect image {p} has no mask under {root / 'masks'}",
                                       "add masks/<type>/<stem>.png or load with require_masks=False")
                test.append(Sample(p, 1, kind, mask))
    info = {"protocol": "train/ folder" if (root / "train").is_dir() else "seeded split of good/",
            "seed": seed, "train_fraction": train_fraction, "n_val_good": len(rest)}
    return DefectDataset(root.name, root, "folder", [Sample(p, 0) for p in train_p], test,
                         {"val_good": [Sample(p, 0) for p in rest]} if rest else {}, info)


LAYOUTS.register("mvtec")(lambda root, category=None, seed=0, **options: load_mvtec(root, category, **options))
LAYOUTS.register("ksdd2")(lambda root, category=None, seed=0, **options: load_ksdd2(root, **options))
LAYOUTS.register("mtd")(lambda root, category=None, seed=0, **options: load_mtd(root, seed=seed, **options))
LAYOUTS.register("folder")(lambda root, category=None, seed=0, **options: load_folder(root, seed=seed, **options))
