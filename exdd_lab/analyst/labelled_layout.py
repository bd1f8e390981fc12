"""Is a folder of "normal images" really a labelled data set? Then fitting on it trains on defects and masks.

``exdd-lab fit --normals ROOT`` reads every image below ``ROOT``. Pointed at an MVTec-like root (``good/`` beside
``crack/`` and ``ground_truth/``), at the Magnetic Tile Defects root (``MT_Free`` beside ``MT_Crack``), or at a folder
whose masks lie beside the images (MTD keeps each mask as a PNG of the same name beside its JPEG), it would fit the
detector on defects and masks as if they were normal parts, and say nothing. These checks look only at names and
folders -- nothing is decoded -- and name the folder to use instead.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable

from exdd_lab.errors import DatasetError

#: Folder names that mean "the normal class" in the layouts the kit reads (MVTec, VisA-like, MTD, KSDD2-like).
NORMAL_FOLDER_NAMES = frozenset({"good", "ok", "normal", "normals", "mt_free", "free", "defect_free", "non_defect"})
MASK_FOLDER_NAMES = frozenset({"ground_truth", "masks", "mask", "gt"})
IMAGE_TWIN_SUFFIXES = frozenset({".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})  # an image whose mask is a PNG of its name


def _is_mask_name(path: Path) -> bool:
    stem = path.stem.lower()
    return stem.endswith(("_mask", "-mask", "_gt", "_label")) or any(p.lower() in MASK_FOLDER_NAMES for p in path.parts[:-1])


def check_normals_layout(files: Iterable[str | Path], root: str | Path, argument: str = "--normals") -> None:
    """Raise :class:`DatasetError` naming the folder to use when ``files`` (image paths found below ``root``) look
    like a labelled data set: masks among them, a normal-class folder beside other class folders, or each image
    with a same-named PNG beside it (MTD's masks)."""
    root = Path(root)
    paths = [Path(f) for f in files]
    masks = [p for p in paths if _is_mask_name(p.relative_to(root) if p.is_relative_to(root) else p)]
    if masks:
        raise DatasetError(f"{argument} {root}: {len(masks)} of its files look like masks (e.g. {masks[0]})",
                           "point it at the folder of the normal images alone (masks would be fitted as normal parts), "
                           "or give a list file or a quoted glob of just those images")
    children: dict[Path, set[str]] = defaultdict(set)  # a folder -> its sub-folders that hold images
    for path in paths:
        if not path.is_relative_to(root):
            continue
        parts = path.relative_to(root).parts[:-1]
        for depth in range(len(parts)):
            children[root.joinpath(*parts[:depth])].add(parts[depth])
    normal_folders = sorted(parent / n for parent, names in children.items() for n in names if n.lower() in NORMAL_FOLDER_NAMES)
    training = [f for f in normal_folders if f.parent.name.lower() == "train"]  # MVTec: train/good holds the normals
    for parent, names in sorted(children.items()):
        normal = sorted(n for n in names if n.lower() in NORMAL_FOLDER_NAMES)
        others = sorted(n for n in names if n.lower() not in NORMAL_FOLDER_NAMES)
        if normal and others:
            use = training[0] if training else parent / normal[0]
            raise DatasetError(f"{argument} {root} is a labelled layout: {parent / normal[0]} beside "
                               f"{', '.join(others[:4])}{' ...' if len(others) > 4 else ''} (other classes would be "
                               "fitted as normal parts)", f"point it at the normal images' own folder: {use}")
    by_folder: dict[Path, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in paths:
        by_folder[path.parent][path.stem].add(path.suffix.lower())
    for folder, stems in sorted(by_folder.items()):
        twins = [s for s, suffixes in stems.items() if ".png" in suffixes and suffixes & IMAGE_TWIN_SUFFIXES]
        if twins and len(twins) * 2 >= len(stems):
            image_suffix = sorted(stems[twins[0]] & IMAGE_TWIN_SUFFIXES)[0]
            raise DatasetError(f"{argument} {root}: {len(twins)} images in {folder} have a PNG of the same name beside "
                               f"them (e.g. {twins[0]}{image_suffix} and {twins[0]}.png), as masks are kept in the MTD layout",
                               f"give just the images as a quoted glob: '{folder}/*{image_suffix}'")
