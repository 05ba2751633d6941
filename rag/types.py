"""The data that flows through the pipeline: documents, chunks and search hits.

Each type is a small frozen dataclass so that results can be passed around, compared
and serialised without anyone mutating them on the way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """A cleaned document, ready to be chunked.

    ``text`` is the cleaned text; every offset elsewhere in the project (chunks,
    citations) points into it. ``page_starts`` holds the offset where each page
    begins for paged formats (PDF), so a span can be mapped back to its page.
    """

    id: str
    title: str
    text: str
    source: str = ""
    date: str | None = None
    page_starts: tuple[int, ...] = ()

    def page_of(self, offset: int) -> int | None:
        """The 1-based page holding character ``offset``, or None for unpaged documents."""
        if not self.page_starts:
            return None
        page = 0
        for i, start in enumerate(self.page_starts):
            if start <= offset:
                page = i
            else:
                break
        return page + 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["page_starts"] = list(self.page_starts)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Document:
        return cls(
            id=d["id"],
            title=d["title"],
            text=d["text"],
            source=d.get("source", ""),
            date=d.get("date"),
            page_starts=tuple(d.get("page_starts", ())),
        )


@dataclass(frozen=True)
class Chunk:
    """A span ``text[start:end]`` of a document's cleaned text."""

    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, with its score and 1-based rank for the query."""

    chunk_id: str
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    score: float
    rank: int
    date: str | None = None
    page: int | None = None
    scores: dict[str, float] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "title": self.title,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "score": self.score,
            "rank": self.rank,
            "date": self.date,
            "page": self.page,
        }
