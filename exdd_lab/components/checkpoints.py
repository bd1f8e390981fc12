"""Training checkpoints with an exact resume, written atomically: one class for every trained model.

A checkpoint holds the model's weights, the optimizer state and the state of the one random generator
that drew every batch, so training resumed from ``checkpoint-<step>`` takes exactly the steps it would
have taken without the interruption. Only the newest checkpoint is kept; it is written completely
(temporary name, then an atomic rename) before older ones are removed, so a crash never leaves a
half-written one behind.

Two shapes: a single file ``checkpoint-<step>.pt`` (the student-teacher), or a folder
``checkpoint-<step>/`` holding ``training_state.pt`` plus files the model writes itself (the DDPM's UNet,
saved by diffusers).
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch

from exdd_lab.storage import atomic_directory, atomic_write

STATE_FILE = "training_state.pt"


class SavedConfig:
    """``to_dict`` / ``from_dict`` for a frozen training config stored in its checkpoints: tuple fields become
    JSON lists and come back as tuples, so a resumed run's config compares equal to the one asked for."""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        tuples = {f.name for f in fields(cls) if str(f.type).startswith("tuple")}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in d.items()})


@dataclass(frozen=True)
class Checkpointer:
    """The checkpoints of one training run in ``folder``; ``as_folder`` picks the folder shape."""

    folder: Path
    as_folder: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    def _state_path(self, path: Path) -> Path:
        return path / STATE_FILE if self.as_folder else path

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every complete checkpoint, oldest first."""
        found = []
        for p in self.folder.glob("checkpoint-*" if self.as_folder else "checkpoint-*.pt"):
            step = (p.name if self.as_folder else p.stem).split("-")[-1]
            if step.isdigit() and self._state_path(p).is_file():
                found.append((int(step), p))
        return sorted(found)

    def latest(self) -> Path | None:
        """The newest checkpoint, or ``None``."""
        found = self.checkpoints()
        return found[-1][1] if found else None

    def latest_step(self) -> int:
        """The step of the newest checkpoint (0 when there is none)."""
        found = self.checkpoints()
        return found[-1][0] if found else 0

    @staticmethod
    def load_state(path: Path, as_folder: bool) -> dict:
        """The saved training state of one checkpoint (tensors on the CPU)."""
        path = Path(path)
        return torch.load(path / STATE_FILE if as_folder else path, map_location="cpu", weights_only=True)

    def save(self, step: int, state: dict, optimizer: torch.optim.Optimizer, generator: torch.Generator,
             write_model: Callable[[Path], None] | None = None) -> Path:
        """Write ``checkpoint-<step>`` (``state`` plus the optimizer and generator state), then drop older ones.

        ``write_model(folder)`` writes model files into the checkpoint folder (folder shape only).
        """
        state = dict(state, step=step, optimizer=optimizer.state_dict(), generator=generator.get_state())
        if self.as_folder:
            target = self.folder / f"checkpoint-{step}"
            if target.exists():
                shutil.rmtree(target)
            with atomic_directory(target) as tmp:
                if write_model is not None:
                    write_model(tmp)
                torch.save(state, tmp / STATE_FILE)
        else:
            target = self.folder / f"checkpoint-{step}.pt"
            with atomic_write(target) as handle:
                torch.save(state, handle)
        self.clear(keep=step)
        return target

    def clear(self, keep: int | None = None) -> None:
        """Remove every checkpoint but the one of step ``keep`` (all of them by default)."""
        for step, old in self.checkpoints():
            if step == keep:
                continue
            if self.as_folder:
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)

    @staticmethod
    def restore(state: dict, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
        """Put the optimizer and the batch generator back where the checkpoint left them."""
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
