"""Ray scenarios the tests run in a network namespace of their own (loopback only), each printing JSON facts.

    python tests/ray_scenarios.py cluster  MODEL IMAGES BIG OUT   # two nodes: score IMAGES; score BIG, killing node 2
    python tests/ray_scenarios.py embedded MODEL IMAGES OUT       # --engine ray with no --address

tests/test_archive_ray.py starts this under ``unshare --net`` and asserts on what it prints. Every Ray
process is stopped before it exits (pass or fail), and the interfaces of the namespace are reported, so the
test can check that nothing could listen beyond loopback.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from exdd_lab.archive.cluster import LoopbackCluster, loopback_up


def cli(args: list[str], env: dict | None = None, wait: bool = True):
    command = [sys.executable, "-m", "exdd_lab", "score", "--quiet", *args]
    if wait:
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        return {"rc": done.returncode, "out": done.stdout[-4000:], "err": done.stderr[-4000:],
                "seconds": round(time.perf_counter() - start, 1)}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def shards_written(out: Path) -> int:
    return len(list((out / "shards").glob("shard-*.parquet"))) if (out / "shards").is_dir() else 0


def cluster(model: str, images: str, big: str, out: str) -> dict:
    facts: dict = {"interfaces": [name for _, name in socket.if_nameindex()]}
    start = time.perf_counter()
    with LoopbackCluster(nodes=2) as c:
        facts["cluster_up_s"] = round(time.perf_counter() - start, 1)
        facts["listening"] = sorted(c.listening_addresses())
        facts["score"] = cli(["--model", model, "--images", images, "--out", f"{out}/two-nodes", "--engine", "ray",
                              "--address", c.address, "--workers", "2", "--shard-size", "2"], c.env)
        # a driver with another token (as one left in ~/.ray/auth_token by a local ray.init() would be)
        facts["wrong_token"] = cli(["--model", model, "--images", images, "--out", f"{out}/refused", "--engine", "ray",
                                    "--address", c.address], {**c.env, "RAY_AUTH_TOKEN": "0" * 32,
                                                              "RAY_gcs_server_port_wait_time_s": "2"})  # Ray retries ~20 s
        big_out = Path(out) / "killed"
        run = cli(["--model", model, "--images", big, "--out", str(big_out), "--engine", "ray", "--address", c.address,
                   "--workers", "2", "--shard-size", "4"], c.env, wait=False)
        while shards_written(big_out) < 3 and run.poll() is None:
            time.sleep(0.1)
        facts["shards_before_kill"] = shards_written(big_out)
        facts["killed_processes"] = c.kill_node("127.0.0.3")
        output, _ = run.communicate(timeout=600)
        facts["killed"] = {"rc": run.returncode, "out": output[-4000:], "seconds": round(time.perf_counter() - start, 1)}
    facts["left_running"] = len(c.processes())
    return facts


def embedded(model: str, images: str, out: str) -> dict:
    import os

    facts: dict = {"interfaces": [name for _, name in socket.if_nameindex()]}
    home = Path(out) / "home"
    home.mkdir(parents=True)
    env = {**os.environ, "HOME": str(home)}
    facts["score"] = cli(["--model", model, "--images", images, "--out", f"{out}/embedded", "--engine", "ray",
                          "--workers", "2", "--shard-size", "2"], env)
    facts["home_after"] = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    deadline = time.time() + 20  # Ray's processes exit on their own after shutdown; give them a moment
    while _processes_with_home(str(home), kill=False) and time.time() < deadline:
        time.sleep(0.5)
    left = _processes_with_home(str(home), kill=True)
    facts["left_running"] = len(left)
    facts["left_names"] = [_name(p) for p in left]
    return facts


def _name(proc) -> str:
    try:
        return " ".join(proc.cmdline())[:120]
    except Exception:
        return "?"


def _processes_with_home(home: str, kill: bool) -> list:
    """Processes that inherited the embedded run's HOME (its Ray, if anything was left); ``kill`` kills them."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("HOME") == home:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    for proc in found if kill else []:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return found


if __name__ == "__main__":
    loopback_up()
    scenario, *rest = sys.argv[1:]
    print(json.dumps({"cluster": cluster, "embedded": embedded}[scenario](*rest)))
