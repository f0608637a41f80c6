"""One typed registry per plug-in concept.

Every plug-in family of the project (reward components, aggregators, advantage estimators,
loss terms, tasks, metrics, model adapters) is a :class:`Registry`. Registration is by
decorator; a duplicate name raises; an unknown name raises :class:`UnknownNameError` (a
``KeyError``) whose message suggests the closest registered names.

Built-ins load one way everywhere: each registry is created with the modules that register
its built-in entries (``builtins=``, listed next to the registry), and imports them on the
first read (``get``, ``names``, ``items``, ``in``, ``len``). So no registry depends on which
module happened to be imported first, and a module that only needs one registry does not pay
for another's imports (the policy losses import torch; the task list does not). A plug-in
outside the project registers with the same decorator from its own module, imported before
the lookup.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised by :meth:`Registry.get` for a name that was never registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint} (known: {', '.join(sorted(known))})")

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0])


class Registry(Generic[T]):
    """Named plug-ins of one kind. Duplicate names raise; unknown names suggest the closest."""

    def __init__(self, kind: str, builtins: Sequence[str] = ()) -> None:
        """``builtins``: dotted names of the modules whose import registers the built-in
        entries; imported once, on the first read."""
        self.kind = kind
        self.builtins = tuple(builtins)
        self._items: dict[str, T] = {}
        self._loaded = not self.builtins
        self._loading = False
        self._lock = threading.RLock()

    def load_builtins(self) -> None:
        """Import the :attr:`builtins` modules (idempotent; thread-safe). A built-in module
        that reads its own registry while it loads sees the entries registered so far."""
        if self._loaded:
            return
        with self._lock:  # re-entrant: a builtin module may read this registry while loading
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                for module in self.builtins:
                    importlib.import_module(module)
                self._loaded = True
            finally:
                self._loading = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("name")`` adds the decorated object under ``name``."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        self.load_builtins()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._items)) from None

    def names(self) -> list[str]:
        self.load_builtins()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self.load_builtins()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        self.load_builtins()
        return name in self._items

    def __len__(self) -> int:
        self.load_builtins()
        return len(self._items)
