"""The data that flows through the pipeline, in one place: documents and what loading skipped
(ingest), the changes and passages a store takes and gives and the scope a search is limited to
(stores), search hits (search), the numbered sources of a prompt and the checked citations of an
answer (answer), and what one reply of a generator cost (generate).

Each type is a small frozen dataclass so that results can be passed around, compared
and serialised without anyone mutating them on the way.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rag.core.errors import InvalidInput

Message = dict[str, str]  # one chat message: {"role": ..., "content": ...}


def printable(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN``, safe to print to a terminal."""
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" else c for c in text)


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


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day(value: object, name: str) -> str | None:
    """``value`` as an ISO date ``YYYY-MM-DD``; None (or blank) for no bound."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip() if isinstance(value, str) else ""
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidInput(f"{name} must be a date as YYYY-MM-DD, got '{printable(str(value))}'") from None


@dataclass(frozen=True)
class Scope:
    """What a question may draw on: only the documents ``doc_ids`` (none: all of them) and only
    documents dated from ``since`` to ``until`` (ISO ``YYYY-MM-DD``, both inclusive; a document
    without a date is outside every date range). Stores apply it inside their search, so a scoped
    question still gets its k passages.

    >>> Scope(("report",), since="2024-01-01").admits("report", "2024-03-05")
    True
    >>> Scope(until="2023-12-31").admits("report", None)
    False
    """

    doc_ids: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None

    def __post_init__(self) -> None:
        ids = self.doc_ids
        if not isinstance(ids, (tuple, list)) or not all(isinstance(i, str) and i for i in ids):
            raise InvalidInput("doc_ids must be a list of document ids")
        # frozen: the checked values replace what was given (a list of ids, a date with spaces)
        object.__setattr__(self, "doc_ids", tuple(dict.fromkeys(ids)))
        object.__setattr__(self, "since", _day(self.since, "since"))
        object.__setattr__(self, "until", _day(self.until, "until"))
        if self.since and self.until and self.since > self.until:
            raise InvalidInput(f"since ({self.since}) is after until ({self.until})")

    @property
    def everything(self) -> bool:
        """Whether nothing is left out (no documents named, no dates)."""
        return not (self.doc_ids or self.since or self.until)

    @property
    def dated(self) -> bool:
        return bool(self.since or self.until)

    @property
    def before(self) -> str | None:
        """The day after ``until``: a stored date is in range when ``since <= date < before`` as
        strings, which also holds for a date with a time ("2024-03-05T10:00" is within 2024-03-05)."""
        if self.until is None:
            return None
        return (datetime.date.fromisoformat(self.until) + datetime.timedelta(days=1)).isoformat()

    def admits(self, doc_id: str, date: str | None) -> bool:
        """Whether a document with this id and date is inside the scope."""
        if self.doc_ids and doc_id not in self.doc_ids:
            return False
        if not self.dated:
            return True
        if not date:
            return False
        before = self.before
        return (self.since is None or date >= self.since) and (before is None or date < before)


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


@dataclass(frozen=True)
class Skipped:
    """A file (or a JSONL line, as ``file:LINE``) that was not loaded, and why."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{printable(self.source)}: {self.reason}"


@dataclass(frozen=True)
class Span:
    """A sentence of a document: ``text == document.text[start:end]``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Source:
    """Numbered source ``[n]``: the selected sentences of one retrieved chunk."""

    n: int
    hit: Hit
    sentences: tuple[Span, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


@dataclass(frozen=True)
class Prompt:
    """The exact messages sent to the model and the sources they number."""

    question: str
    sources: tuple[Source, ...]
    messages: tuple[Message, ...]

    @property
    def text(self) -> str:
        """The messages as readable text (``rag ask --show-prompt``)."""
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.messages)


@dataclass(frozen=True)
class Citation:
    """Source ``[n]`` supporting part of the answer, with the quote that supports it.

    ``start``/``end`` are offsets of ``quote`` in the document's cleaned text. ``added``
    is True when the verifier attached this source to a sentence the model left uncited.
    ``page`` is the 1-based page where the quote starts, for paged documents (PDF); ``url`` the
    page's address for a document read from the web.
    """

    n: int
    doc_id: str
    chunk_id: str
    title: str
    start: int
    end: int
    quote: str
    supported: bool
    added: bool = False
    page: int | None = None
    url: str | None = None  # the web page the document was read from (rag.ingest.web), shown as a link


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of the answer (markers removed) and the sources that support it.

    ``support`` is the judge's probability that its best source states it (the lexical share
    of its words when no judge ran).
    """

    text: str
    citations: tuple[int, ...]
    supported: bool
    support: float = 1.0


@dataclass(frozen=True)
class Change:
    """One write: documents to delete, then documents (new or changed) to store with their chunks."""

    remove: frozenset[str]
    documents: tuple[Document, ...]
    hashes: dict[str, str]  # content hash of each document in ``documents``
    chunks: tuple[Chunk, ...]
    vectors: np.ndarray  # one row per chunk
    passages: tuple[str, ...]  # what BM25 indexes for each chunk (rag.ingest.chunking.passage_text)


@dataclass(frozen=True)
class Passage:
    """A stored chunk with what a search hit shows of its document."""

    chunk: Chunk
    title: str
    date: str | None
    page: int | None


@dataclass(frozen=True)
class GenerationStats:
    """What one reply cost and how sure the model was of it (backends that can tell).

    ``prompt_tokens`` counts the formatted prompt, ``cached_tokens`` the part of it reused
    from the previous call's KV cache (so ``prompt_tokens - cached_tokens`` were evaluated).
    ``token_logprobs`` has the log-probability of each generated token, ``first_choices``
    the most likely first tokens of the reply with their probabilities, ``threads`` the threads
    it ran on.
    """

    prompt_tokens: int
    cached_tokens: int
    tokens: tuple[str, ...] = ()
    token_logprobs: tuple[float, ...] = ()
    first_choices: tuple[tuple[str, float], ...] = ()
    threads: int = 0
    # with GenerationSettings.hidden_layers: the last token's hidden state at each of those layers
    # at the prompt's end and at the answer's last token, keyed "prompt L18", "answer L14"
    hidden: dict[str, tuple[float, ...]] = field(default_factory=dict)
