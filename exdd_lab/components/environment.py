"""Environment variables set for the duration of a block (a process started inside inherits them)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def temporary_environment(variables: dict[str, str]) -> Iterator[None]:
    """Set ``variables`` in ``os.environ`` inside the block; restore (or remove) each one afterwards."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
