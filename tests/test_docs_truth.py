"""What the docs say is what the code does: defaults, layouts, versions, formats."""
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from exdd_lab.cli import build_parser
from exdd_lab.data import load_dataset
from exdd_lab.data.imageio import IMAGE_SUFFIXES
from exdd_lab.errors import DatasetError

REPO = Path(__file__).resolve().parents[1]


def _help(command: str) -> str:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[command].format_help()


def test_ddpm_steps_default_is_one_number_everywhere():
    from exdd_lab.synthesis.ddpm import DdpmConfig

    steps = DdpmConfig.train_steps
    assert build_parser().parse_args(["synthesize", "--generator", "ddpm", "--out", "x"]).ddpm_steps is None  # -> DdpmConfig
    assert f"DdpmConfig.train_steps, {steps}" in " ".join(_help("synthesize").split())
    assert f"--ddpm-steps {steps}" in (REPO / "README.md").read_text()


def test_folder_layout_has_held_out_normals_exactly_when_it_has_val_good(tmp_path, make_png):
    for folder, n in (("good", 4), ("defect", 2)):
        for i in range(n):
            make_png(tmp_path / folder / f"{i}.png", np.full((8, 8), 9 * i, np.uint8))
    assert "val_good" not in load_dataset(tmp_path, "folder").extra
    for i in range(3):
        make_png(tmp_path / "val_good" / f"v{i}.png", np.zeros((8, 8), np.uint8))
    ds = load_dataset(tmp_path, "folder")
    assert len(ds.extra["val_good"]) == 3 and ds.split_info["n_val_good"] == 3
    assert "ROOT/val_good/*" in (REPO / "datasets.md").read_text()


def test_python_version_requirement_matches_what_the_code_uses():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert re.match(r">=\s*3\.11", project["requires-python"])  # tomllib, the tests' and CI's Python
    assert "python=3.11" in (REPO / "environment.yml").read_text()


def test_image_formats_are_those_pillow_opens():
    from PIL import Image

    for fmt in ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "PPM", "GIF"):
        assert any(Image.registered_extensions()[ext] == fmt for ext in IMAGE_SUFFIXES), fmt
    assert "any format Pillow reads" not in (REPO / "datasets.md").read_text()


def test_every_registered_layout_is_documented_and_offered():
    from exdd_lab.cli import LAYOUT_CHOICES
    from exdd_lab.data.layouts import LAYOUTS

    text = (REPO / "datasets.md").read_text()
    assert LAYOUT_CHOICES == ("procedural", *LAYOUTS.names()) and len(LAYOUTS) >= 4
    for name in LAYOUT_CHOICES:
        assert f'(`layout = "{name}"`)' in text, f"datasets.md has no section for layout {name!r}"
    with pytest.raises(DatasetError, match="(?s)unknown layout 'voc'.*mvtec, ksdd2, mtd, folder.*datasets.md"):
        load_dataset("somewhere", "voc")


def test_readme_lists_exactly_the_registered_choices():
    from exdd_lab.bank.index import BANK_INDEXES
    from exdd_lab.bank.coreset import CORESET_METHODS
    from exdd_lab.methods import exdd, patchcore, student_teacher
    from exdd_lab.methods.exdd.positive_patches import POSITIVE_PATCHES
    from exdd_lab.synthesis.registry import GENERATORS

    text = (REPO / "README.md").read_text()
    registries = {"--coreset-method": CORESET_METHODS, "--image-score": patchcore.IMAGE_SCORES,
                  "--exdd-score": exdd.VARIANTS, "--exdd-image-score": exdd.IMAGE_SCORES,
                  "--positive-patches": POSITIVE_PATCHES, "--map-source": student_teacher.MAP_SOURCES,
                  "--generator": GENERATORS, "--bank-index": BANK_INDEXES}
    for flag, registry in registries.items():
        listed = [m.split("|") for m in re.findall(rf"\[{flag} ([\w|-]+)\]", text) if "|" in m]
        assert listed, f"README lists no choices for {flag}"
        for names in listed:
            assert sorted(names) == sorted(registry.names()), f"README's {flag} choices {names} != {registry.names()}"
