"""The harness's numeric path: caps per library, a step down on CPUs that lack an instruction set, threads."""
import subprocess
import sys

import pytest

from exdd_lab import numerics
from exdd_lab.errors import ExddError


def test_pinned_path_caps_every_library(monkeypatch):
    monkeypatch.setattr(numerics, "cpu_flags", lambda: frozenset({"avx", "avx2", "fma", "avx512f"}))
    env = numerics.numeric_environment("avx2", threads=2)
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["ATEN_CPU_CAPABILITY"] == "avx2" and env["MKL_CBWR"] == "AVX2"
    assert "X86_V4" in env["NPY_DISABLE_CPU_FEATURES"] and env["FAISS_SIMD_LEVEL"] == "AVX2"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"


def test_a_cpu_without_the_cap_steps_down_never_up(monkeypatch):
    monkeypatch.setattr(numerics, "cpu_flags", lambda: frozenset({"sse4_2", "avx"}))
    assert numerics.numeric_environment("avx2") == numerics.ISA_CAPS["avx"]
    monkeypatch.setattr(numerics, "cpu_flags", lambda: frozenset({"sse4_2"}))
    assert numerics.numeric_environment("avx2") == {} and numerics.numeric_environment("avx") == {}


def test_harness_environment_reads_its_variables(monkeypatch):
    monkeypatch.setattr(numerics, "cpu_flags", lambda: frozenset({"avx", "avx2", "fma"}))
    monkeypatch.setenv("EXDD_LAB_ISA", "avx")
    monkeypatch.setenv("EXDD_LAB_THREADS", "1")
    env = numerics.harness_environment()
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX" and env["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("EXDD_LAB_THREADS", "two")
    with pytest.raises(ExddError, match="EXDD_LAB_THREADS"):
        numerics.harness_environment()
    with pytest.raises(ExddError, match="unknown instruction-set cap"):
        numerics.numeric_environment("avx9000")


def test_a_kernel_started_with_the_environment_runs_on_that_path():
    """torch in a fresh process honours the caps and the thread count (as a notebook kernel does)."""
    env = numerics.numeric_environment("avx", threads=1)
    code = "import torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())"
    import os

    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["DEFAULT", "1"]
