"""Split a document into sentence-aligned, overlapping chunks with exact character offsets.

Chunks are built from whole sentences, packed until the next sentence would exceed
``size`` words; the next chunk starts with the last sentences of the previous one, up
to ``overlap`` words, so a fact that straddles a boundary is whole in one of them. A
single sentence longer than ``size`` is cut at word boundaries.

Every chunk is ``document.text[start:end]``: offsets are the contract the citations
and the UI highlight rely on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from rag.core.errors import InvalidInput
from rag.core.types import Chunk, Document

# Defaults measured on the seeds and HotpotQA (eval/results/chunking.md, from eval/experiments/tune_chunking.py).
DEFAULT_CHUNK_WORDS = 120
DEFAULT_OVERLAP_WORDS = 30

# Words whose trailing period is not a sentence end ("HE Eng. Abdulrahman", "Dr. Smith").
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof eng st jr sr inc ltd co corp vs etc e.g i.e no gen col lt sgt capt
    rep sen gov pres mt ft jan feb mar apr jun jul aug sep sept oct nov dec approx dept
    est fig al""".split()
)
# A sentence ends at . ! or ? (with closing quotes or brackets) followed by white space.
_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
_WORD = re.compile(r"\S+")
# Longer sentences are counted and cut by streaming over their words instead of splitting
# them into a list (50 MB with no full stop would otherwise be millions of small strings).
_LONG_SENTENCE_CHARS = 100_000


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are cut into chunks; stored in the index manifest."""

    size: int = DEFAULT_CHUNK_WORDS
    overlap: int = DEFAULT_OVERLAP_WORDS

    def __post_init__(self) -> None:
        if self.size < 1:
            raise InvalidInput(f"chunk size must be >= 1 word, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise InvalidInput(f"overlap must be >= 0 and < chunk size ({self.size}), got {self.overlap}")


def _is_abbreviation(text: str, end: int) -> bool:
    """Whether the period ending at ``end`` closes an abbreviation or an initial."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:end].rstrip(".").lower().lstrip("(\"'“‘")
    return (
        word in _ABBREVIATIONS
        or (len(word) == 1 and word.isalpha())  # an initial: "J. Smith"
        or re.fullmatch(r"(\w\.)+\w", word) is not None  # "U.S.", "e.g."
    )


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return ``(start, end)`` spans of the sentences in ``text``, white space excluded.

    Line breaks always end a sentence (headings and paragraphs are separate lines in
    cleaned text). Spans are in order and do not overlap.
    """
    spans: list[tuple[int, int]] = []
    line_start = 0
    for line in text.split("\n"):
        cursor = line_start
        for m in _END.finditer(line):
            end = line_start + m.end()
            if m.group().startswith(".") and len(m.group().rstrip("\"'”’)]")) == 1:
                if _is_abbreviation(text, line_start + m.start() + 1):
                    continue
            spans.append((cursor, end))
            cursor = end
        spans.append((cursor, line_start + len(line)))
        line_start += len(line) + 1
    return [s for s in (_trim(text, a, b) for a, b in spans) if s[0] < s[1]]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _word_spans(text: str, start: int, end: int, size: int) -> Iterator[tuple[int, int, int]]:
    """Cut one sentence into pieces of at most ``size`` words: ``(start, end, words)``.

    Streams over the words, so a "sentence" of many megabytes (text with no full stop or
    line break) costs no more memory than its pieces.
    """
    first = last = count = 0
    for m in _WORD.finditer(text, start, end):
        if count == 0:
            first = m.start()
        last = m.end()
        count += 1
        if count == size:
            yield first, last, count
            count = 0
    if count:
        yield first, last, count


def chunk_spans(text: str, config: ChunkConfig = ChunkConfig()) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of the chunks of ``text``."""
    units: list[tuple[int, int, int]] = []  # (start, end, words)
    for start, end in split_sentences(text):
        if end - start > _LONG_SENTENCE_CHARS:
            units.extend(_word_spans(text, start, end, config.size))
            continue
        n = len(text[start:end].split())
        if n > config.size:
            units.extend(_word_spans(text, start, end, config.size))
        else:
            units.append((start, end, n))

    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, words = i, 0
        while j < len(units) and (j == i or words + units[j][2] <= config.size):
            words += units[j][2]
            j += 1
        spans.append((units[i][0], units[j - 1][1]))
        if j == len(units):
            break
        # Step back over trailing sentences worth at most `overlap` words, leaving room for
        # the next sentence so that every chunk reaches further than the one before.
        back, carried = j, 0
        while (
            back - 1 > i
            and carried + units[back - 1][2] <= config.overlap
            and carried + units[back - 1][2] + units[j][2] <= config.size
        ):
            back -= 1
            carried += units[back][2]
        i = back
    return spans


def chunk_document(doc: Document, config: ChunkConfig = ChunkConfig()) -> list[Chunk]:
    """Cut ``doc`` into chunks whose ids are ``"<doc id>#<n>"``."""
    return [
        Chunk(chunk_id=f"{doc.id}#{n}", doc_id=doc.id, start=a, end=b, text=doc.text[a:b])
        for n, (a, b) in enumerate(chunk_spans(doc.text, config))
    ]


# What is embedded and keyword-indexed for a chunk, recorded in each index's manifest:
# "title" (default): the document title, then the chunk; "text": the chunk alone.
PASSAGE_FORMATS: tuple[str, ...] = ("title", "text")


def passage_text(doc: Document, chunk: Chunk, passage: str = "title") -> str:
    """What is embedded and keyword-indexed for ``chunk`` in the ``passage`` format.

    The title gives a chunk its topic when the text itself only says "the ministry" or
    "he": hybrid hit@1 on HotpotQA 0.90 with it, 0.84 without, at 120/30 words
    (eval/results/chunking.md, from eval/experiments/tune_chunking.py). ``passage`` is checked once, when
    the index opens (rag.search.index), not per chunk.
    """
    return chunk.text if passage == "text" else f"{doc.title}\n{chunk.text}"
