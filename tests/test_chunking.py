from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.core.types import Document
from rag.ingest.chunking import ChunkConfig, chunk_document, chunk_spans, split_sentences


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def test_sentence_splitting_handles_abbreviations_and_lines() -> None:
    text = 'HE Eng. Abdulrahman met Dr. Smith in the U.S. on Monday. "It went well," he said! Next?\nA heading\nMore text.'
    assert sentences(text) == [
        "HE Eng. Abdulrahman met Dr. Smith in the U.S. on Monday.",
        '"It went well," he said!',
        "Next?",
        "A heading",
        "More text.",
    ]


def test_chunks_respect_size_and_overlap() -> None:
    text = " ".join(f"Sentence number {i} has five words." for i in range(40))  # 6 words each
    spans = chunk_spans(text, ChunkConfig(size=30, overlap=12))
    words = [len(text[a:b].split()) for a, b in spans]
    assert all(w <= 30 for w in words)
    # consecutive chunks share exactly the carried-over sentences (two 6-word sentences)
    for (a1, b1), (a2, b2) in zip(spans, spans[1:]):
        assert a1 < a2 < b1 < b2
        assert len(text[a2:b1].split()) == 12
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_long_sentence_is_cut_at_words() -> None:
    text = " ".join(["word"] * 250) + "."
    spans = chunk_spans(text, ChunkConfig(size=100, overlap=0))
    assert [len(text[a:b].split()) for a, b in spans] == [100, 100, 50]


def test_chunk_ids_and_offsets() -> None:
    doc = Document(id="d", title="T", text="One. Two two. Three three three.")
    chunks = chunk_document(doc, ChunkConfig(size=3, overlap=0))
    assert [c.chunk_id for c in chunks] == ["d#0", "d#1"]
    assert [c.text for c in chunks] == ["One. Two two.", "Three three three."]
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)


def test_invalid_config() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ChunkConfig(size=10, overlap=10)
    with pytest.raises(ValueError, match="chunk size"):
        ChunkConfig(size=0, overlap=0)


_text = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40),
        st.sampled_from([". ", "! ", "? ", "\n", "\n\n", "Dr. ", "U.S. ", "word ", "   "]),
    ),
    max_size=60,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_text, size=st.integers(1, 40), overlap_share=st.floats(0, 0.9))
def test_chunk_offsets_cover_text_exactly(text: str, size: int, overlap_share: float) -> None:
    config = ChunkConfig(size=size, overlap=min(size - 1, int(size * overlap_share)))
    spans = chunk_spans(text, config)
    # every non-space character is in some chunk, and chunks are in order
    covered = set()
    for a, b in spans:
        assert 0 <= a < b <= len(text)
        assert not text[a].isspace() and not text[b - 1].isspace()
        covered.update(range(a, b))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    for (a1, b1), (a2, b2) in zip(spans, spans[1:]):
        assert a1 < a2 and b1 < b2  # always advancing: nothing duplicated beyond the overlap
        if a2 < b1:  # overlapping text is whole sentences worth at most `overlap` words
            assert len(text[a2:b1].split()) <= config.overlap


def test_overlap_never_yields_a_chunk_inside_the_previous_one() -> None:
    # found by hypothesis: carrying "." over left no room for "0 0" in a 2-word chunk
    spans = chunk_spans(". . 0 0", ChunkConfig(size=2, overlap=1))
    assert all(b1 < b2 for (_, b1), (_, b2) in zip(spans, spans[1:]))
    assert spans[-1][1] == len(". . 0 0")
