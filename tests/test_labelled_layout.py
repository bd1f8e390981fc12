"""`fit --normals` refuses a labelled data set (defects and masks would be fitted as normal parts) and names the
folder to use; the real MTD and MPDD folders are the cases it was written for."""
from pathlib import Path

import pytest

from exdd_lab.analyst.fit import readable_images
from exdd_lab.analyst.labelled_layout import check_normals_layout
from exdd_lab.errors import DatasetError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _files(root: Path, names: list[str]) -> list[Path]:
    paths = [root / n for n in names]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    return paths


@pytest.mark.parametrize("names,match,fix", [
    (["good/a.png", "crack/b.png", "scratch/c.png"], r"labelled layout: .*good beside crack, scratch", "good"),
    (["train/good/a.png", "test/good/b.png", "test/crack/c.png"], r"labelled layout: .*test/good beside crack", "train/good"),
    (["MT_Free/Imgs/a.jpg", "MT_Crack/Imgs/b.jpg"], r"labelled layout: .*MT_Free beside MT_Crack", "MT_Free"),
    (["good/a.png", "good/b_mask.png"], r"look like masks", "alone"),
    (["parts/a.png", "ground_truth/crack/a_mask.png"], r"look like masks", "alone"),
    (["Imgs/a.jpg", "Imgs/a.png", "Imgs/b.jpg", "Imgs/b.png"], r"PNG of the same name", "*.jpg"),
])
def test_labelled_layouts_are_refused_with_the_folder_to_use(tmp_path, names, match, fix):
    with pytest.raises(DatasetError, match=match) as info:
        check_normals_layout(_files(tmp_path, names), tmp_path)
    assert fix in info.value.fix


@pytest.mark.parametrize("names", [
    ["2026-11-30/a.png", "2026-12-01/shift-b/b.png"],          # dated folders of normals
    ["good/a.png", "good/b.png"],                               # the normals' own folder
    ["line-1/a.jpg", "line-1/b.png", "line-1/c.jpg"],           # mixed formats, no twins
])
def test_folders_of_normals_pass(tmp_path, names):
    check_normals_layout(_files(tmp_path, names), tmp_path)


@pytest.mark.skipif(not (SHARED / "mtd").is_dir(), reason="the real data (../shared/data) is not beside this checkout")
def test_the_real_mtd_and_mpdd_roots_are_refused_and_their_normal_folders_named():
    with pytest.raises(DatasetError, match="labelled layout") as info:
        readable_images(SHARED / "mtd", 64)
    assert info.value.fix.endswith("MT_Free")
    with pytest.raises(DatasetError, match="PNG of the same name") as info:  # MT_Free/Imgs: each JPEG beside its mask
        readable_images(SHARED / "mtd" / "MT_Free" / "Imgs", 64)
    assert "*.jpg" in info.value.fix
    with pytest.raises(DatasetError, match="labelled layout|look like masks") as info:
        readable_images(SHARED / "mpdd" / "metal_plate", 64)
