"""The numeric path of the CPU kernels: pinned for the regression harness, or varied on purpose.

Trained models (the DDPM, the student–teacher) amplify last-bit differences: torch's own kernels
(ATen), oneDNN's convolutions, MKL's matrix products, NumPy and faiss each pick the widest vector
instructions the CPU has, and a sum taken in another order (AVX-512 instead of AVX2, 1 thread
instead of 2) ends a few hundred training steps later as another model. The harness therefore runs
every notebook kernel on one instruction set, capped with the libraries' own switches, so that a
CPU with AVX-512 computes what a CPU with AVX2 computes. Thread counts still change reduction order;
that spread is measured (``benchmarks/numeric_spread.py``) and covered by the tolerances in
``tests/reference/notebook_metrics.json``.

A cap only takes instructions away: a CPU without AVX2 steps down to the AVX path (measured too), one without AVX to the defaults.
"""
from __future__ import annotations

import os
from functools import lru_cache

from exdd_lab.errors import ExddError

# Environment switches per instruction-set cap. Each library reads its own variable at load time.
ISA_CAPS: dict[str, dict[str, str]] = {
    # the pin: every x86-64 server CPU of the last decade has AVX2 + FMA
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",          # torch's own vectorised kernels
        "ONEDNN_MAX_CPU_ISA": "AVX2",            # convolutions (oneDNN)
        "MKL_CBWR": "AVX2",                      # matrix products (MKL conditional numerical reproducibility)
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # NumPy's dispatched loops
        "FAISS_SIMD_LEVEL": "AVX2",              # faiss distance kernels
    },
    # an older CPU (Sandy Bridge class): simulates a machine other than the one the references came from
    "avx": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "AVX",
        "MKL_CBWR": "AVX",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
        "FAISS_SIMD_LEVEL": "NONE",
    },
    # whatever the CPU has (what a user's own run gets)
    "native": {},
}
REQUIRED_FLAGS = {"avx2": {"avx2", "fma"}, "avx": {"avx"}, "native": set()}
FALLBACK = {"avx2": ("avx",), "avx": (), "native": ()}  # a CPU without AVX2 runs the (also measured) AVX path
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where that file does not exist)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_label() -> str:
    """A short name of this CPU for the folders of measured numeric paths, e.g. ``intel-xeon-processor-avx512``:
    the model name from ``/proc/cpuinfo`` in lower case, and the widest vector extension it has."""
    import re

    model = "unknown-cpu"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1] for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    model = re.sub(r"\((r|tm)\)|\bcpu\b|@.*$|\d+-core processor", "", model, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "unknown-cpu"
    widest = next((isa for isa, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx")) if flag in cpu_flags()), "")
    return f"{slug}-{widest}" if widest else slug


def numeric_environment(isa: str = "avx2", threads: int | None = None) -> dict[str, str]:
    """Environment variables that put a fresh process (a notebook kernel) on one numeric path.

    ``isa``: one of :data:`ISA_CAPS`; ``threads``: torch/MKL threads (``None`` leaves the default).
    A cap the CPU cannot meet steps down: no AVX2 -> the AVX path (measured too), no AVX -> the kernels' defaults.
    """
    if isa not in ISA_CAPS:
        raise ExddError(f"unknown instruction-set cap {isa!r}", f"choose one of {', '.join(ISA_CAPS)}")
    flags = cpu_flags()
    if flags and not REQUIRED_FLAGS[isa] <= flags:  # step down to the widest measured cap the CPU has
        isa = next((cap for cap in FALLBACK[isa] if REQUIRED_FLAGS[cap] <= flags), "native")
    env = dict(ISA_CAPS[isa])
    if threads is not None:
        if threads < 1:
            raise ExddError(f"thread count {threads} is not positive", "pass 1 or more threads")
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def harness_environment() -> dict[str, str]:
    """The regression harness's numeric path: ``$EXDD_LAB_ISA`` (default ``avx2``) and
    ``$EXDD_LAB_THREADS`` (default: the machine's), so CI can re-run the harness on another path."""
    threads = os.environ.get("EXDD_LAB_THREADS")
    try:
        count = int(threads) if threads else None
    except ValueError:
        raise ExddError(f"EXDD_LAB_THREADS={threads!r} is not a number", "set it to 1, 2, ... or unset it") from None
    return numeric_environment(os.environ.get("EXDD_LAB_ISA", "avx2"), count)
