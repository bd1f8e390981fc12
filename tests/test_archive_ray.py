"""The archive scorer on Ray, with real parts: a two-node Ray cluster on loopback, a worker node killed
mid-run, the embedded local Ray, and an unreachable --address.

The clusters run in a network namespace of their own that holds only loopback (``unshare --net``; CI runs as
root), because Ray 2.60's GCS and raylets listen on every interface whatever address they are given: inside
the namespace every interface is loopback. Every Ray process a scenario starts is stopped before it returns.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from exdd_lab.archive import read_results, score_archive
from exdd_lab.archive.cluster import isolated_command
from exdd_lab.cli import main
from exdd_lab.data import load_dataset
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.patchcore import PatchCore

SCENARIOS = Path(__file__).parent / "ray_scenarios.py"


def run_scenario(*args: str) -> dict:
    command = isolated_command([sys.executable, str(SCENARIOS), *args])
    if command is None:
        pytest.skip("this machine cannot make a loopback-only network namespace (`unshare --net` needs root); "
                    "Ray's servers would listen beyond loopback, so the cluster tests do not start one")
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert done.returncode == 0, f"scenario failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def setup(tiny_mvtec, tmp_path_factory):
    """A PatchCore at 160 px (slow enough to interrupt), a small archive and a big one (hard links)."""
    root = tmp_path_factory.mktemp("ray")
    tiny = load_dataset(tiny_mvtec, "mvtec")
    model = root / "model"
    PatchCore(FeatureConfig(image_size=160)).fit(tiny.train).save(model)
    small = root / "small"
    for s in tiny.test:
        (small / s.defect_type).mkdir(parents=True, exist_ok=True)
        shutil.copy(s.image_path, small / s.defect_type / s.image_path.name)
    (small / "broken.png").write_text("not a picture")
    big = root / "big"
    for i in range(16):
        (big / f"day-{i:02d}").mkdir(parents=True)
        for s in tiny.test:
            os.link(s.image_path, big / f"day-{i:02d}" / f"{s.defect_type}-{s.image_path.name}")
    return model, small, big, root


def _same_rows(a, b) -> None:
    assert list(a["path"]) == list(b["path"]) and list(a["status"]) == list(b["status"])
    scored = a["status"] == "scored"
    np.testing.assert_allclose(b["score"][scored], a["score"][scored], rtol=1e-5)
    assert (a["peak_y"][scored] == b["peak_y"][scored]).all() and (a["peak_x"][scored] == b["peak_x"][scored]).all()


def test_two_node_cluster_matches_local_and_survives_a_killed_node(setup, tmp_path):
    model, small, big, _ = setup
    local_small = score_archive(model, small, tmp_path / "local-small", shard_size=2, progress=False)
    score_archive(model, big, tmp_path / "local-big", shard_size=4, progress=False)
    facts = run_scenario("cluster", str(model), str(small), str(big), str(tmp_path / "ray"))
    assert facts["interfaces"] == ["lo"] and facts["left_running"] == 0
    # two nodes, row for row the local engine's table (the broken file fails on both, exit code 1 on both)
    assert facts["score"]["rc"] == 1 and "2 workers" in facts["score"]["out"], facts["score"]
    _same_rows(read_results(tmp_path / "local-small"), read_results(tmp_path / "ray" / "two-nodes"))
    assert local_small.counts.failed == 1
    # a driver whose token the cluster refuses is told why and what to do
    refused = facts["wrong_token"]
    assert refused["rc"] == 2 and "refused this driver's authentication token" in refused["err"], refused
    assert "RAY_AUTH_TOKEN" in refused["err"] and "~/.ray/auth_token" in refused["err"]
    # node 2 killed mid-run: the job still finishes, every image exactly once
    assert facts["killed_processes"] >= 1 and 3 <= facts["shards_before_kill"] < 40, facts
    assert facts["killed"]["rc"] == 0, facts["killed"]
    killed = read_results(tmp_path / "ray" / "killed")
    assert killed["index"].is_unique and len(killed) == 16 * 10
    _same_rows(read_results(tmp_path / "local-big"), killed)


def test_embedded_ray_matches_local_and_leaves_no_token_behind(setup, tmp_path):
    model, small, _, _ = setup
    score_archive(model, small, tmp_path / "local", shard_size=2, progress=False)
    facts = run_scenario("embedded", str(model), str(small), str(tmp_path / "ray"))
    assert facts["score"]["rc"] == 1 and "embedded local Ray on 127.0.0.2" in facts["score"]["out"], facts["score"]
    _same_rows(read_results(tmp_path / "local"), read_results(tmp_path / "ray" / "embedded"))
    assert not any(".ray" in p for p in facts["home_after"]), facts["home_after"]
    assert facts["left_running"] == 0, facts["left_names"]


def test_an_unreachable_address_fails_within_seconds_naming_it(setup, tmp_path, capsys):
    model, small, _, _ = setup
    start = time.perf_counter()
    code = main(["score", "--model", str(model), "--images", str(small), "--out", str(tmp_path / "out"),
                 "--engine", "ray", "--address", "127.0.0.2:1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "127.0.0.2:1" in err and "ray start --head" in err
    assert time.perf_counter() - start < 15
