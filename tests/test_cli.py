import subprocess
import sys

import numpy as np

from exdd_lab.cli import main


def test_datasets_prints_the_summary(tiny_mvtec, capsys):
    assert main(["datasets", "--data", str(tiny_mvtec), "--layout", "mvtec"]) == 0
    out = capsys.readouterr().out
    assert "layout: mvtec" in out and "crack" in out and "masks found: 6" in out
    assert "height" in out and "64" in out


def test_datasets_fails_clearly_on_bad_input(tmp_path, tiny_mvtec, make_png, capsys):
    assert main(["datasets", "--data", str(tmp_path / "absent"), "--layout", "mtd"]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert main(["datasets", "--data", str(tiny_mvtec)]) == 2
    assert "needs --layout" in capsys.readouterr().err
    (tmp_path / "cat").mkdir()
    assert main(["datasets", "--data", str(tmp_path / "cat"), "--layout", "mvtec"]) == 2
    assert "train/good" in capsys.readouterr().err


def test_datasets_names_corrupt_files_and_exits_non_zero(tmp_path, make_png, capsys):
    for i in range(4):
        make_png(tmp_path / "good" / f"{i}.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "good" / "3.png").write_bytes(b"\x89PNG broken")
    assert main(["datasets", "--data", str(tmp_path), "--layout", "folder"]) == 1
    err = capsys.readouterr().err
    assert "3.png" in err and "1 problem(s)" in err


def test_module_entry_point_has_help():
    out = subprocess.run([sys.executable, "-m", "exdd_lab", "--help"], capture_output=True, text=True, check=True)
    assert "datasets" in out.stdout and "run" in out.stdout


def test_synthesize_writes_a_reloadable_set(tiny_mvtec, tmp_path, capsys):
    from exdd_lab.synthesis import load_defect_set

    out = tmp_path / "set"
    code = main(["synthesize", "--data", str(tiny_mvtec), "--layout", "mvtec", "--generator", "perlin",
                 "--n", "3", "--image-size", "64", "--seed", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    ds = load_defect_set(out)
    assert len(ds.test) == 3 and ds.split_info["generator"] == "perlin" and ds.split_info["n"] == 3
    assert 0 < ds.split_info["masks"]["area_median"] < 1
    assert main(["synthesize", "--data", str(tiny_mvtec), "--layout", "mvtec", "--generator", "perlin",
                 "--out", str(out)]) == 2  # never overwrites a set
    assert "already exists" in capsys.readouterr().err


def test_synthesize_ldm_without_weights_says_what_to_download(tiny_mvtec, tmp_path, capsys):
    code = main(["synthesize", "--data", str(tiny_mvtec), "--layout", "mvtec", "--generator", "ldm",
                 "--model-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "set")])
    assert code == 2
    err = capsys.readouterr().err
    assert "not found" in err and "huggingface-cli download" in err
    assert not (tmp_path / "set").exists()


def test_evaluate_on_a_published_split_prints_the_papers_numbers(tmp_path, make_png, capsys):
    import json

    from tests.test_layouts import build_mtd

    data = build_mtd(tmp_path / "mtd", make_png)
    (data / "splits").mkdir()
    (data / "splits" / "differnet_train.txt").write_text("".join(f"f{i}.jpg\n" for i in range(6)))
    out = tmp_path / "out"
    code = main(["evaluate", "--data", str(data), "--layout", "mtd", "--split", "differnet", "--image-size", "64",
                 "--coreset", "0.5", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"]["split"] == "differnet" and metrics["n_train"] == 6 and metrics["n_test"] == 4 + 4
    assert "CS-Flow" in printed and "99.3" in printed and "n/p" in printed
    assert f"{100 * metrics['image_auroc']:.1f}" in printed
    assert main(["evaluate", "--data", str(data), "--layout", "mtd", "--split-file", "x.txt", "--out", str(out)]) == 2
    assert "--split-file was given without --split differnet" in capsys.readouterr().err
    assert main(["run", "--data", str(data), "--layout", "mtd", "--split", "differnet"]) == 2
    assert "drop --split" in capsys.readouterr().err
