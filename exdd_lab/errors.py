"""Errors that name the offending file or value and say how to fix it.

Every error a user can trigger with bad input derives from :class:`ExddError`, so the command
line can print it as one readable message instead of a traceback.
"""
from __future__ import annotations


class ExddError(Exception):
    """Base error: ``what`` went wrong, ``fix`` says what to do about it."""

    def __init__(self, what: str, fix: str = "") -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}\n  fix: {fix}" if fix else what)


class SettingsError(ExddError, ValueError):
    """A knob has a value outside its range (a coreset ratio of 0, a negative count)."""


class DatasetError(ExddError, ValueError):
    """A dataset folder is missing, malformed or empty."""


class ImageError(ExddError, ValueError):
    """An image or mask cannot be read, or does not fit its partner."""


class BackboneError(ExddError, ValueError):
    """An unknown backbone name or an unusable layer choice."""


class WeightsNotFoundError(ExddError, FileNotFoundError):
    """Pretrained weights were asked for but are not on this machine."""


class ExportError(ExddError):
    """An export that cannot be made or loaded: a missing runtime, an old or changed folder."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt by the command line so that it stops as cleanly as Ctrl-C does."""


class Interrupted(ExddError):
    """A run stopped by Ctrl-C or SIGTERM after ``done`` of ``total`` images; what was finished is kept."""

    def __init__(self, done: int, total: int, terminated: bool = False) -> None:
        self.done, self.total, self.terminated = done, total, terminated
        super().__init__(f"interrupted after {done} of {total} images",
                         "rerun the same command to resume: the images scored so far are kept, none is scored twice")

    @property
    def exit_code(self) -> int:
        """130 for Ctrl-C (SIGINT), 143 for SIGTERM: the shell's 128 + signal number."""
        return 143 if self.terminated else 130
