"""One table per family of named things (generators, embedders, stores): name -> check, load.

The CLI's help, the validation of a name and its loading all read the same table, as simonw/llm's
``get_model`` and txtai's factories do. An entry is either one exact name (a bundled model) or
a pattern of names (``PATH.gguf``, ``openai:URL#MODEL``); the first entry that claims a name
owns it, so patterns go after exact names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from rag.core.errors import InvalidInput

T = TypeVar("T")


def _accept(spec: str) -> None:
    """The check of an entry whose name says everything (a bundled model)."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One name (or pattern of names) of a family.

    ``load(spec, *args, **kwargs)`` builds the thing; ``check(spec)`` raises
    :class:`InvalidInput` when the spec is malformed or names nothing there, and loads nothing;
    ``matches(spec)`` claims a spec for a pattern entry (without it, only ``name`` itself).
    ``sample(folder)`` is how the family's contract tests (``tests/contract.py``) make a
    throwaway instance: given an empty scratch folder, a context manager that yields a spec this
    entry claims (starting whatever server it needs, stopping it on exit); without it, the
    entry's own ``name`` is that spec, as for a bundled model.
    """

    name: str  # as help shows it: "qwen-1.5b", "PATH.gguf", "openai:URL#MODEL"
    description: str
    load: Callable[..., T]
    check: Callable[[str], None] = _accept
    matches: Callable[[str], bool] | None = None
    sample: Callable[[Path], AbstractContextManager[str]] | None = None

    def claims(self, spec: str) -> bool:
        return self.matches(spec) if self.matches is not None else spec == self.name


class Registry(Generic[T]):
    """The entries of one family, in the order they claim names.

    >>> r = Registry[str]("colour")
    >>> _ = r.add(Entry("red", "warm", load=lambda spec: spec.upper()))
    >>> r.load("red")
    'RED'
    >>> r.check("blue")
    Traceback (most recent call last):
    ...
    rag.core.errors.InvalidInput: unknown colour 'blue'; known colours: red (warm)
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: list[Entry[T]] = []

    def add(self, entry: Entry[T], before: str | None = None) -> Entry[T]:
        """Append ``entry``, or put it just ahead of the entry named ``before``: a catch-all
        pattern (the embedders' ``DIR``) claims every name, so an entry added later goes before it."""
        if before is None:
            self._entries.append(entry)
        else:
            self._entries.insert(self.names().index(before), entry)
        return entry

    def remove(self, entry: Entry[T]) -> None:
        """Take ``entry`` out again (a plugin unloaded, a test's throwaway entry)."""
        self._entries.remove(entry)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return [e.name for e in self._entries]

    def describe(self) -> str:
        """Every entry with its description, for help texts and error messages."""
        return ", ".join(f"{e.name} ({e.description})" for e in self._entries)

    def find(self, spec: str) -> Entry[T]:
        """The entry that claims ``spec``.

        Raises:
            InvalidInput: no entry does (the message lists them all).
        """
        for entry in self._entries:
            if entry.claims(spec):
                return entry
        raise InvalidInput(f"unknown {self.family} '{spec}'; known {self.family}s: {self.describe()}")

    def check(self, spec: str) -> None:
        """Raise :class:`InvalidInput` unless ``spec`` names something loadable; loads nothing."""
        self.find(spec).check(spec)

    def load(self, spec: str, *args: object, **kwargs: object) -> T:
        entry = self.find(spec)
        entry.check(spec)
        return entry.load(spec, *args, **kwargs)
