"""Where tensors go: the GPU when there is one, else the CPU (an explicit choice always wins)."""
from __future__ import annotations

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` when given, else ``cuda`` if available, else ``cpu``."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def describe_device() -> str:
    """A line for reports: the GPU's name, or the CPU and its torch thread count."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
