"""The sample record and the dataset type every loader returns.

Taught in ``notebooks/00_data_tour.ipynb``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from exdd_lab.errors import DatasetError

GOOD = "good"


@dataclass(frozen=True)
class Sample:
    """One image: where it is, whether it is defective, of which type, and its pixel mask (if any).

    ``label`` is 0 for a normal (good) image and 1 for a defect image; ``defect_type`` is
    ``"good"`` for normal images. ``mask_path`` is ``None`` where no mask exists (normal images
    usually, or folder layouts without masks); an absent mask of a good image means "all normal".
    """

    image_path: Path
    label: int
    defect_type: str = GOOD
    mask_path: Path | None = None

    @property
    def is_defect(self) -> bool:
        return self.label == 1

    @property
    def stem(self) -> str:
        return self.image_path.stem

    def to_dict(self) -> dict:
        return {
            "image_path": str(self.image_path),
            "label": self.label,
            "defect_type": self.defect_type,
            "mask_path": str(self.mask_path) if self.mask_path else None,
        }


@dataclass
class DefectDataset:
    """A named dataset with a training split (normal images) and a test split (normal + defect).

    ``extra`` holds further named sample lists that some layouts provide, e.g. KSDD2's labelled
    training positives (``"train_defects"``) or MTD's held-out normals (``"val_good"``) that a
    normal-only threshold can be chosen on. ``split_info`` records how the split was made
    (seed, counts) so a run can write it down.
    """

    name: str
    root: Path
    layout: str
    train: list[Sample]
    test: list[Sample]
    extra: dict[str, list[Sample]] = field(default_factory=dict)
    split_info: dict = field(default_factory=dict)

    def splits(self) -> dict[str, list[Sample]]:
        """All sample lists by name: ``train``, ``test`` and every extra list."""
        return {"train": self.train, "test": self.test, **self.extra}

    @property
    def defect_types(self) -> list[str]:
        return sorted({s.defect_type for s in self.test if s.is_defect})

    def summary(self) -> pd.DataFrame:
        """Counts per split, label and defect type, with how many masks were found."""
        rows = []
        for split, samples in self.splits().items():
            for s in samples:
                rows.append((split, "defect" if s.is_defect else "good", s.defect_type, s.mask_path is not None))
        frame = pd.DataFrame(rows, columns=["split", "label", "defect_type", "has_mask"])
        if frame.empty:
            return pd.DataFrame(columns=["split", "label", "defect_type", "images", "masks"])
        table = (
            frame.groupby(["split", "label", "defect_type"], sort=True)
            .agg(images=("has_mask", "size"), masks=("has_mask", "sum"))
            .reset_index()
        )
        return table

    def counts(self) -> dict[str, int]:
        """Flat counts used in metrics files: images per split and label."""
        out: dict[str, int] = {}
        for split, samples in self.splits().items():
            out[f"{split}_good"] = sum(not s.is_defect for s in samples)
            out[f"{split}_defect"] = sum(s.is_defect for s in samples)
        return out

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> DefectDataset:
        """A smaller copy for fast runs: a seeded sample of the splits, keeping every defect type.

        The test subset takes about ``n_test`` images, stratified by defect type so each type
        keeps at least one image.
        """
        import numpy as np

        rng = np.random.default_rng(seed)

        def pick(samples: list[Sample], n: int) -> list[Sample]:
            if n >= len(samples):
                return list(samples)
            idx = sorted(rng.choice(len(samples), size=n, replace=False))
            return [samples[i] for i in idx]

        train = pick(self.train, n_train) if n_train is not None else list(self.train)
        test = list(self.test)
        if n_test is not None and n_test < len(test):
            groups: dict[str, list[Sample]] = {}
            for s in test:
                groups.setdefault(s.defect_type, []).append(s)
            test = []
            for kind in sorted(groups):
                share = max(1, round(n_test * len(groups[kind]) / len(self.test)))
                test.extend(pick(groups[kind], share))
        info = dict(self.split_info, subset={"n_train": n_train, "n_test": n_test, "seed": seed})
        return DefectDataset(self.name, self.root, self.layout, train, test, dict(self.extra), info)

    def with_training_defects(self, k: int, seed: int = 0) -> tuple[DefectDataset, list[Sample]]:
        """``k`` real labelled defects for training, never evaluated on: a copy of the dataset and the defects.

        Taken from ``extra["train_defects"]`` when the layout has it (KSDD2); otherwise ``k`` masked test
        defects (stratified by type, seeded) are **moved out of the test split** into
        ``extra["train_defects"]``, so no image is both in a bank and in the evaluation.
        """
        import numpy as np

        if k <= 0:
            return self, []
        rng = np.random.default_rng(seed)
        own = [s for s in self.extra.get("train_defects", []) if s.mask_path is not None]
        if own:
            chosen = [own[i] for i in sorted(rng.choice(len(own), min(k, len(own)), replace=False))]
            return self, chosen
        pool = [i for i, s in enumerate(self.test) if s.is_defect and s.mask_path is not None]
        if len(pool) <= k:
            raise DatasetError(f"{self.name} has {len(pool)} masked test defects; cannot move {k} to training",
                               "ask for fewer real defects")
        by_type: dict[str, list[int]] = {}
        for i in pool:
            by_type.setdefault(self.test[i].defect_type, []).append(i)
        picked: list[int] = []
        types = sorted(by_type)
        order = {t: list(rng.permutation(by_type[t])) for t in types}
        while len(picked) < k:  # round-robin over types, so every type contributes
            for t in types:
                if order[t] and len(picked) < k:
                    picked.append(int(order[t].pop()))
        moved = set(picked)
        chosen = [self.test[i] for i in sorted(moved)]
        test = [s for i, s in enumerate(self.test) if i not in moved]
        info = dict(self.split_info, train_defects={"k": k, "seed": seed, "moved_from_test": True})
        return DefectDataset(self.name, self.root, self.layout, list(self.train), test,
                             dict(self.extra, train_defects=chosen), info), chosen

    def with_held_out_normals(self, n: int, seed: int = 0) -> DefectDataset:
        """A copy with ``n`` held-out normal images in ``extra["val_good"]``, for normal-only thresholds.

        A seeded sample of the layout's own held-out normals when it has them (MTD, folder); otherwise
        ``n`` training normals are **moved out of the training split** (``split_info`` says so), so a
        threshold is never set on images a method was fitted on.
        """
        import numpy as np

        if n <= 0:
            raise DatasetError(f"asked for {n} held-out normals", "ask for at least one (e.g. 20)")
        rng = np.random.default_rng(seed)
        own = self.extra.get("val_good", [])
        if own:
            chosen = [own[i] for i in sorted(rng.choice(len(own), min(n, len(own)), replace=False))]
            info = dict(self.split_info, held_out_normals={"n": len(chosen), "seed": seed, "moved_from_train": False})
            return DefectDataset(self.name, self.root, self.layout, list(self.train), list(self.test),
                                 dict(self.extra, val_good=chosen), info)
        if len(self.train) <= n:
            raise DatasetError(f"{self.name} has {len(self.train)} training normals; cannot hold out {n}",
                               "ask for fewer held-out normals, or add normal images")
        moved = set(int(i) for i in rng.choice(len(self.train), n, replace=False))
        train = [s for i, s in enumerate(self.train) if i not in moved]
        held = [s for i, s in enumerate(self.train) if i in moved]
        info = dict(self.split_info, held_out_normals={"n": n, "seed": seed, "moved_from_train": True})
        return DefectDataset(self.name, self.root, self.layout, train, list(self.test), dict(self.extra, val_good=held), info)

    def save_split(self, path: str | Path) -> None:
        """Write the split (every sample of every list) as JSON, so a run can be reproduced exactly."""
        from exdd_lab.storage import atomic_write_json

        atomic_write_json(
            path,
            {
                "name": self.name,
                "root": str(self.root),
                "layout": self.layout,
                "split_info": self.split_info,
                "splits": {k: [s.to_dict() for s in v] for k, v in self.splits().items()},
            },
        )

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"DefectDataset({self.name!r}, layout={self.layout!r}, train={len(self.train)}, "
            f"test={len(self.test)} ({c['test_defect']} defect), extra={ {k: len(v) for k, v in self.extra.items()} })"
        )


def pick_per_type(samples: list[Sample], per_type: int = 1, defects_only: bool = True) -> list[int]:
    """Indices of the first ``per_type`` samples of each defect type, in type order: for example figures."""
    chosen: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        if s.is_defect or not defects_only:
            group = chosen.setdefault(s.defect_type, [])
            if len(group) < per_type:
                group.append(i)
    return [i for kind in sorted(chosen) for i in chosen[kind]]


def load_split(path: str | Path) -> DefectDataset:
    """Read a split written by :meth:`DefectDataset.save_split`."""
    blob = json.loads(Path(path).read_text())

    def sample(d: dict) -> Sample:
        mask = d.get("mask_path")
        return Sample(Path(d["image_path"]), int(d["label"]), d["defect_type"], Path(mask) if mask else None)

    splits = {k: [sample(d) for d in v] for k, v in blob["splits"].items()}
    train, test = splits.pop("train"), splits.pop("test")
    return DefectDataset(blob["name"], Path(blob["root"]), blob["layout"], train, test, splits, blob.get("split_info", {}))
