"""What the contract tests of every family share: one case per entry of the family's registry
(rag/core/registry.py), read when the tests are collected, so a new store or embedder is tested by
registering it (STYLE.md, "Families are built alike"); no test names the entries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest

from rag.core.registry import Entry, Registry


def entries(registry: Registry[Any]) -> list[Any]:
    """One pytest parameter per entry of ``registry``, in its order, each named by the entry."""
    return [pytest.param(entry, id=entry.name) for entry in registry]


@contextmanager
def sample(registry: Registry[Any], entry: Entry[Any], folder: Path) -> Iterator[str]:
    """The spec of a throwaway instance of ``entry`` in the new folder ``folder``: its ``sample``,
    or its own name when it has none. A spec that another entry claims is a mistake in the
    registry (a pattern entry without a sample, say), reported as such."""
    folder.mkdir(parents=True)
    with (entry.sample(folder) if entry.sample is not None else nullcontext(entry.name)) as spec:
        owner = registry.find(spec)
        assert owner is entry, f"{entry.name}: its sample '{spec}' is claimed by {owner.name}; give it a sample"
        yield spec
