"""A real multi-node Ray cluster on one machine, on loopback: a head node on 127.0.0.2 and worker nodes on
127.0.0.3, ... For the tests and the benchmark (two one-CPU nodes against one), and for trying the cluster
commands of notebook 08 on a laptop.

Every node is started with ``ray start`` (the same command a user runs), one CPU each, a private temporary
HOME (so no test reads or leaves ``~/.ray/auth_token``), token authentication with a one-off token, usage
statistics off, and a marker in the environment that every Ray process of this cluster inherits:
:meth:`LoopbackCluster.stop` kills exactly those processes, pass or fail, and :meth:`kill_node` kills one
node's raylet and its workers mid-run.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).parent / "ray")  # the ray command of this environment, so nodes run this Python
HEAD_IP = "127.0.0.2"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """``with LoopbackCluster(nodes=2) as cluster: cluster.address, cluster.env``."""

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1) -> None:
        self.nodes, self.cpus = nodes, cpus_per_node
        self.marker = f"exdd-test-cluster-{secrets.token_hex(6)}"
        self.root = Path(tempfile.mkdtemp(prefix="exray", dir="/tmp"))  # short: Ray's socket paths have a length limit
        self.port = free_port(HEAD_IP)
        self.address = f"{HEAD_IP}:{self.port}"
        (self.root / "home").mkdir()
        self.env = {**os.environ, "HOME": str(self.root / "home"), "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "EXDD_TEST_RAY": self.marker,
                    # a killed node is declared dead after ~3 s instead of ~30 s (the kill test waits for it)
                    "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}

    def _start(self, *args: str) -> None:
        done = subprocess.run([RAY, "start", *args, f"--num-cpus={self.cpus}", "--disable-usage-stats",
                               f"--temp-dir={self.root / 'ray'}"], env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> LoopbackCluster:
        self._start("--head", f"--node-ip-address={HEAD_IP}", f"--port={self.port}", "--include-dashboard=false")
        for i in range(1, self.nodes):
            self._start(f"--address={self.address}", f"--node-ip-address=127.0.0.{2 + i}")
        return self

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster (found by the marker each one inherited)."""
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if proc.environ().get("EXDD_TEST_RAY") == self.marker:
                    found.append(proc)
            except (psutil.Error, OSError):
                continue
        return found

    def listening_addresses(self) -> set[str]:
        """The local addresses this cluster's processes listen on (all must be loopback)."""
        addresses = set()
        for proc in self.processes():
            try:
                for conn in proc.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN:
                        addresses.add(conn.laddr.ip)
            except (psutil.Error, OSError):
                continue
        return addresses

    def kill_node(self, ip: str) -> int:
        """SIGKILL the raylet of the node on ``ip`` and every process under it; returns how many died."""
        victims = []
        for proc in self.processes():
            try:
                if "raylet" in proc.name() and f"--node_ip_address={ip}" in " ".join(proc.cmdline()):
                    victims += [proc, *proc.children(recursive=True)]
            except psutil.Error:
                continue
        for proc in victims:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        return len(victims)

    def stop(self) -> None:
        for _ in range(3):
            procs = self.processes()
            if not procs:
                break
            for proc in procs:
                try:
                    proc.send_signal(signal.SIGKILL)
                except psutil.Error:
                    pass
            psutil.wait_procs(procs, timeout=10)
            time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def loopback_up() -> None:
    """Bring ``lo`` up in a fresh network namespace (``unshare --net`` leaves it down), without iproute2."""
    import fcntl
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, struct.pack("16sh", b"lo", 0)))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def isolated_command(argv: list[str]) -> list[str] | None:
    """``argv`` run in a new network namespace holding only loopback (``unshare --net``), or ``None`` when this
    machine does not allow one (not root, no unshare). Ray 2.60's GCS and raylets listen on every interface
    whatever ``--node-ip-address`` says; inside such a namespace every interface is loopback."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    probe = subprocess.run([unshare, "--net", "--fork", "true"], capture_output=True)
    return [unshare, "--net", "--fork", *argv] if probe.returncode == 0 else None
