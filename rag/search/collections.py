"""Named collections: several indexes kept apart in one place, and which key opens which (issue 30).

A collection is an index of its own (its documents, its embedder, its chunking). The default
index (``.rag/index`` or ``$RAG_INDEX_DIR``) is the collection named ``default``; the others live
beside it in ``collections/NAME`` (``.rag/collections/NAME``) and are created by their first
``rag index --collection NAME``. ``--index-dir`` still names one index directly.

Keys (:class:`Keys`): the server key (``rag serve --api-key``) opens every collection; a
collection key (``--collection-key NAME=KEY``) opens its own collection only. When any key is
set, everything the server offers needs one, and a collection without a key of its own is
opened by the server key alone.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rag.core.errors import InvalidInput
from rag.search.index import default_index_dir

DEFAULT = "default"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_name(name: str) -> str:
    """A collection name: lower-case letters, digits, ``_`` and ``-``, at most 64, starting with
    a letter or digit (it becomes a folder name and part of a ``/v1`` model id)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidInput(f"a collection name is 1-64 lower-case letters, digits, '_' or '-' (starting with a "
                           f"letter or digit), got {name!r}")
    return name


def collections_dir() -> Path:
    """Where named collections live: ``collections/`` beside the default index."""
    return default_index_dir().parent / "collections"


def collection_dir(name: str) -> Path:
    """The index directory of collection ``name`` (``default``: the default index)."""
    return default_index_dir() if check_name(name) == DEFAULT else collections_dir() / name


def names() -> list[str]:
    """The collections that exist: ``default`` when its index does, then the others by name."""
    found = [DEFAULT] if default_index_dir().is_dir() else []
    root = collections_dir()
    if root.is_dir():
        found += sorted(p.name for p in root.iterdir() if p.is_dir() and NAME.fullmatch(p.name) and p.name != DEFAULT)
    return found


def parse_keys(pairs: Iterable[str]) -> dict[str, str]:
    """``NAME=KEY`` strings (``--collection-key``, ``$RAG_COLLECTION_KEYS`` split at commas) as a mapping."""
    keys: dict[str, str] = {}
    for pair in pairs:
        name, sep, key = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"a collection key is NAME=KEY, got {pair!r}")
        keys[check_name(name.strip())] = key
    return keys


@dataclass(frozen=True)
class Keys:
    """Who may open what. ``server``: opens every collection; ``collections``: NAME -> its key.
    With neither, the server is open and every collection with it."""

    server: str | None = None
    collections: Mapping[str, str] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        return bool(self.server or self.collections)

    def opens(self, key: str | None, served: Iterable[str]) -> list[str]:
        """The collections of ``served`` that ``key`` opens (all of them on an open server)."""
        served = list(served)
        if not self.closed:
            return served
        if not key:
            return []
        if self.server and _same(key, self.server):
            return served
        return [n for n in served if n in self.collections and _same(key, self.collections[n])]

    def login(self, user: str, key: str, served: Iterable[str]) -> bool:
        """The chat window's login: a collection's name and its key, or any other name and the
        server key. The name then says what the session opens (:meth:`for_user`)."""
        if user in self.collections:
            return _same(key, self.collections[user]) or bool(self.server and _same(key, self.server))
        return bool(self.server and _same(key, self.server))

    def for_user(self, user: str | None, served: Iterable[str]) -> list[str]:
        """The collections a logged-in session opens: its collection if it logged in with a
        collection's name, else (the server key) all; all on an open server."""
        served = list(served)
        if not self.closed:
            return served
        if user is None:
            return []
        return [user] if user in self.collections and user in served else ([] if user in self.collections else served)

    def for_login(self, user: str | None) -> str | None:
        """The key a logged-in session acts with (what its saved conversations belong to): its
        collection's key if it logged in with a collection's name, else the server key; None on
        an open server. The login's name decides, as it decides what the session opens
        (:meth:`for_user`): the server key's holder logged in as a collection acts for it."""
        if not self.closed or user is None:
            return None
        return self.collections[user] if user in self.collections else self.server


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
