"""Property-based tests (hypothesis) for the chunker and the citation parser, beyond
test_chunking.py and test_citations.py: exact offsets, nothing lost or repeated outside
the overlap, and a parser that never crashes and never names a source it was not given."""

from __future__ import annotations

import re
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

import rag.ingest.chunking
from rag.answer.citations import MARKER, parse_markers, verify
from rag.answer.prompting import sentence_spans
from rag.core.types import Document, Hit, Source
from rag.ingest.chunking import ChunkConfig, chunk_document, chunk_spans

_words = st.sampled_from(["a", "bb", "word", "Dr.", "U.S.", "3.5", "née", "🌊", "x,", "(y)", '"q"', "—"])
_breaks = st.sampled_from([" ", " ", " ", ". ", "! ", "? ", "\n", "\n\n", "  ", "\t", "\u00a0", ".\n"])
_text = st.lists(st.one_of(_words, _breaks, st.text(max_size=6)), max_size=120).map("".join)
_config = st.integers(1, 30).flatmap(lambda size: st.tuples(st.just(size), st.integers(0, size - 1)))


def _pieces(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """Each chunk's text minus what the previous chunk already covered."""
    pieces, covered = [], 0
    for a, b in spans:
        if a > covered:
            assert not text[covered:a].strip(), f"text between chunks was dropped: {text[covered:a]!r}"
        pieces.append(text[max(a, covered) : b])
        covered = b
    assert not text[covered:].strip(), f"text after the last chunk was dropped: {text[covered:]!r}"
    return pieces


@settings(max_examples=400, deadline=None)
@given(text=_text, config=_config)
def test_chunks_lose_and_repeat_nothing_outside_the_overlap(text: str, config: tuple[int, int]) -> None:
    size, overlap = config
    doc = Document(id="d", title="T", text=text)
    chunks = chunk_document(doc, ChunkConfig(size=size, overlap=overlap))
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text  # offsets map back exactly
        assert chunk.text == chunk.text.strip() and chunk.text
    spans = [(c.start, c.end) for c in chunks]
    assert all(len(c.text.split()) <= size for c in chunks)
    # Read once, skipping what the previous chunk covered, the chunks are the text's words in order.
    assert " ".join(_pieces(text, spans)).split() == text.split()
    for (a1, b1), (a2, b2) in zip(spans, spans[1:]):
        assert a1 < a2 and b1 < b2
        assert len(text[a2:b1].split()) <= overlap  # the only repetition is the overlap


@settings(max_examples=200, deadline=None)
@given(
    runs=st.lists(st.lists(_words, min_size=1, max_size=80).map(" ".join), min_size=1, max_size=5),
    config=_config,
)
def test_long_sentences_are_cut_the_same_way_when_streamed(runs: list[str], config: tuple[int, int]) -> None:
    """Sentences over rag.ingest.chunking._LONG_SENTENCE_CHARS are cut by streaming over their words;
    with the threshold at 0 (everything streamed) the chunks must be the same."""
    text = ".\n".join(runs)
    chunking = ChunkConfig(*config)
    expected = chunk_spans(text, chunking)
    with mock.patch.object(rag.ingest.chunking, "_LONG_SENTENCE_CHARS", 0):
        assert chunk_spans(text, chunking) == expected
    assert all(len(text[a:b].split()) <= chunking.size for a, b in expected)


# ------------------------------------------------------------------ the citation parser

SOURCE_TEXTS = [
    "The talks took place in Doha on December 6, 2023. A follow-up is expected in 2024.",
    "The plan covers 2021 to 2025. It has six goals and a budget of 40 million euros.",
    "Rwanda and Qatar signed an agreement on AI security. 🔐 Keys are stored offline.",
]


def make_sources(numbers: list[int]) -> tuple[Source, ...]:
    sources = []
    for n in numbers:
        text = SOURCE_TEXTS[n % len(SOURCE_TEXTS)]
        hit = Hit(chunk_id=f"doc{n}#0", doc_id=f"doc{n}", title=f"Doc {n}", text=text,
                  start=1000 * n, end=1000 * n + len(text), score=1.0, rank=n)
        sources.append(Source(n=n, hit=hit, sentences=tuple(sentence_spans(hit))))
    return tuple(sources)


_marker = st.one_of(
    st.integers(-3, 12).map(lambda n: f"[{n}]"),
    st.lists(st.integers(0, 12), min_size=1, max_size=4).map(lambda ns: "[" + ", ".join(map(str, ns)) + "]"),
    st.sampled_from(["[", "]", "[]", "[1", "1]", "[ 1 ]", "[1;2]", "[1,,2]", "[١]", "[²]", "[01]", "[9999999999]",
                     "【1】", "[[1]]", "[1](http://x)", "[^1]", "[source 1]"]),
)
_answer = st.lists(st.one_of(_marker, _words, _breaks, st.sampled_from(SOURCE_TEXTS)), max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(answer=_answer, numbers=st.lists(st.integers(1, 9), unique=True, max_size=4))
def test_citation_parser_never_crashes_or_invents_a_source(answer: str, numbers: list[int]) -> None:
    sources = make_sources(numbers)
    valid = {s.n for s in sources}
    cleaned, cited = parse_markers(answer, valid)
    assert set(cited) <= valid and len(cited) == len(set(cited))
    assert {int(n) for group in MARKER.findall(cleaned) for n in re.split(r"\s*[,;]\s*", group)} <= valid
    text, sentences, citations = verify(answer, sources, question="When were the talks?")
    by_n = {s.n: s for s in sources}
    for sentence in sentences:
        assert set(sentence.citations) <= valid
    for c in citations:
        source = by_n[c.n]  # only sources it was given
        assert (c.doc_id, c.chunk_id, c.title) == (source.hit.doc_id, source.hit.chunk_id, source.hit.title)
        # the quote is really in the source, at the offsets it claims
        assert source.hit.text[c.start - source.hit.start : c.end - source.hit.start] == c.quote
    assert not re.search(r"\[(\d+)\]", text) or {int(n) for n in re.findall(r"\[(\d+)\]", text)} <= valid


def test_citation_parser_survives_a_marker_with_thousands_of_digits() -> None:
    cleaned, cited = parse_markers("It was in Doha [" + "1" * 5000 + "].", {1})
    assert cited == [] and "[" not in cleaned


def test_a_marker_formed_by_removing_another_is_parsed_too() -> None:
    # "[1[5]]": dropping the invalid [5] leaves "[1]", which must be checked like any marker.
    assert parse_markers("It was in Doha [1[5]].", set()) == ("It was in Doha.", [])
    assert parse_markers("It was in Doha [1[5]].", {1}) == ("It was in Doha [1].", [1])
