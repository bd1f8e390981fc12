"""Names registered once: every choice a user makes by name (a coreset method, an image score, a dataset
layout, a method) looks its strategy up here, so adding one touches one registry and the command line's
choices, the settings' checks and the error messages follow by themselves.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from exdd_lab.errors import ExddError, SettingsError

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered ``name -> strategy`` table; ``what`` names the choice in error messages, ``error`` is the
    error an unknown name raises (``hint`` is added to its fix)."""

    def __init__(self, what: str, error: type[ExddError] = SettingsError, hint: str = "") -> None:
        self.what, self.error, self.hint = what, error, hint
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` on a class or function (a name is registered once)."""
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._items[name] = item
            return item
        return add

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order (the first is the default where there is one)."""
        return tuple(self._items)

    def items(self) -> list[tuple[str, T]]:
        """``(name, strategy)`` pairs in registration order."""
        return list(self._items.items())

    def check(self, name: str) -> str:
        """``name`` if registered, else an error (``SettingsError`` by default) listing the choices."""
        if name not in self._items:
            raise self.error(f"unknown {self.what} {name!r}", f"choose one of {', '.join(self._items)}{self.hint}")
        return name

    def __getitem__(self, name: str) -> T:
        return self._items[self.check(name)]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
