"""One call that makes a run repeatable: seeds Python, NumPy and torch, and asks torch for deterministic kernels."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed every random generator the kit uses. Same seed, same numbers (on the same machine and versions)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    torch.use_deterministic_algorithms(True, warn_only=True)
