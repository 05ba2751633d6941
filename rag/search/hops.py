"""The second hop: passages a question needs besides those that match it best.

A two-hop question names one thing and asks about another that only the first one's passage
names ("Where was the director of film X born?": X's passage names the director, whose own
passage says where). A comparison names two things ("Which film came out first, X or Y?"), and
the passage that matches the question best is about one of them. One search finds the first
hop; :func:`follow` adds, for the prompt's sentence selection to choose from:

- the best passage for each name the question gives (:func:`entity_hits`), when it gives two or
  more: each side of a comparison;
- the best passage for each name the first round's top passages mention and the question does
  not (:func:`bridge_hits`): the bridge to the second hop.

The prompt's word budget does not change (rag/answer/prompting.py picks the sentences), so the
extra passages cost searches (milliseconds), not prompt tokens (eval/experiments/second_hop.py measures it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rag.core.text import names
from rag.core.types import Hit, Scope

if TYPE_CHECKING:
    from rag.search.index import Index

MAX_BRIDGES = 3  # pages of names the passages mention, at most
MAX_HOPS = 4  # passages the second hop adds at most


def _key(text: str) -> str:
    """A title or name for comparing: lower case, without a parenthetical ("The Rack (1915 film)" ->
    "the rack") and without punctuation."""
    return " ".join(re.findall(r"\w+", re.sub(r"\([^)]*\)", " ", text).lower()))


def page(index: Index, name: str, scope: Scope | None = None) -> Hit | None:
    """The best keyword match for ``name`` (within ``scope``) whose document is titled ``name``: a
    page about it (an encyclopedia's article); None in a corpus whose titles are headlines."""
    want = _key(name)
    if not want:
        return None
    return next((hit for hit in index.search(name, k=3, mode="bm25", scope=scope) if _key(hit.title) == want), None)


def entity_hits(index: Index, question: str, scope: Scope | None = None) -> list[Hit]:
    """The page of each thing the question names, when it names two or more (both sides of a
    comparison); a name without a page that joins two with "and" ("Maftan and Baba Khvarazm") is
    looked up as the two."""
    asked = names(question)
    if len(asked) < 2 and not any(" and " in name for name in asked):
        return []
    return [hit for name in asked for hit in pages(index, name, scope)]


def pages(index: Index, name: str, scope: Scope | None = None) -> list[Hit]:
    """The :func:`page` of ``name``; without one, of each part of a name that joins two with "and"
    ("Maftan and Baba Khvarazm", "Kylie Minogue and British")."""
    found = page(index, name, scope)
    if found is not None:
        return [found]
    parts = [page(index, part, scope) for part in name.split(" and ")] if " and " in name else []
    return [hit for hit in parts if hit is not None]


def bridge_hits(index: Index, question: str, hits: Sequence[Hit], most: int = MAX_BRIDGES, scope: Scope | None = None) -> list[Hit]:
    """The page of each of the first ``most`` names that ``hits`` mention and neither the question
    nor their own titles do, in the order the passages mention them: the bridge to a second hop
    ("Kiss and Tell" names the actress whose page says which office she held)."""
    asked = _key(question)
    seen = {_key(hit.title) for hit in hits}
    out: list[Hit] = []
    tried: set[str] = set()
    # The pages of what the question names first: their names are the bridges; a distractor's are not.
    own = {_key(name) for name in names(question)}
    for hit in sorted(hits, key=lambda h: _key(h.title) not in own):
        for name in names(hit.text):
            key = _key(name)
            if not key or key in tried or key in seen or f" {key} " in f" {asked} " or name.isdigit():
                continue
            tried.add(key)
            for found in pages(index, name, scope):
                if _key(found.title) not in seen:
                    seen.add(_key(found.title))
                    out.append(found)
                    if len(out) >= most:
                        return out
    return out


def merge(first: Sequence[Hit], extra: Iterable[Hit], limit: int) -> list[Hit]:
    """``first`` in its order, then the passages of ``extra`` not in it, up to ``limit`` in all."""
    out = list(first)
    chunks = {hit.chunk_id for hit in out}
    for hit in extra:
        if len(out) >= limit:
            break
        if hit.chunk_id not in chunks:
            chunks.add(hit.chunk_id)
            out.append(hit)
    return out


def follow(index: Index, question: str, first: Sequence[Hit], most: int = MAX_HOPS, scope: Scope | None = None) -> list[Hit]:
    """The passages of the second hop not already in ``first`` (the question's own search, within
    ``scope``): the pages of what the question names (:func:`entity_hits`), then of the names the
    passages found so far mention (:func:`bridge_hits`), up to ``most``. None in a corpus without
    such pages."""
    entities = merge([], [h for h in entity_hits(index, question, scope) if h.chunk_id not in {f.chunk_id for f in first}], most)
    bridges = bridge_hits(index, question, [*first, *entities], scope=scope)
    return merge([], [h for h in [*entities, *bridges] if h.chunk_id not in {f.chunk_id for f in first}], most)
