from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.answer.citations import is_refusal, parse_markers, verify
from rag.answer.prompting import sentence_spans
from rag.core.types import Hit, Source

DOC_A = (
    "The talks occurred during Minister Quintin's official visit to Doha on December 6, 2023. "
    "A follow-up meeting is anticipated in the first half of 2024."
)
DOC_B = "The new strategic plan covers the period from 2021 to 2025 and has six goals."


def source(n: int, doc_id: str, text: str, offset: int = 100) -> Source:
    hit = Hit(chunk_id=f"{doc_id}#0", doc_id=doc_id, title=doc_id.title(), text=text,
              start=offset, end=offset + len(text), score=1.0, rank=n)

    return Source(n=n, hit=hit, sentences=tuple(sentence_spans(hit)))


SOURCES = (source(1, "qatar", DOC_A), source(2, "belgium", DOC_B, offset=0))


def test_correct_citation_is_verified_with_a_quote() -> None:
    text, sentences, citations = verify("Quintin visited Doha on December 6, 2023 [1].", SOURCES)
    assert text == "Quintin visited Doha on December 6, 2023 [1]."
    assert sentences[0].supported and sentences[0].citations == (1,)
    [c] = citations
    assert (c.n, c.doc_id, c.supported, c.added) == (1, "qatar", True, False)
    assert c.quote.startswith("The talks occurred") and c.quote.endswith("2023.")
    assert DOC_A[c.start - 100 : c.end - 100] == c.quote  # offsets point into the document


def test_wrong_citation_number_is_replaced_by_the_supporting_source() -> None:
    _, sentences, citations = verify("Quintin visited Doha on December 6, 2023 [2].", SOURCES)
    assert sentences[0].supported and sentences[0].citations == (1,)
    assert [(c.n, c.added) for c in citations] == [(1, True)]


def test_marker_pointing_at_no_source_is_dropped() -> None:
    text, _, citations = verify("The plan covers 2021 to 2025 [7][2].", SOURCES)
    assert "[7]" not in text and "[2]" in text
    assert [c.n for c in citations] == [2]


def test_sentence_without_citation_gets_one_attached() -> None:
    _, sentences, citations = verify("The plan has six goals.", SOURCES)
    assert sentences[0].supported and [(c.n, c.added) for c in citations] == [(2, True)]


def test_invented_fact_is_unsupported() -> None:
    _, sentences, citations = verify("The strategy has a budget of 50 million euros [2].", SOURCES)
    assert not sentences[0].supported
    assert all(not c.supported for c in citations)


def test_mixed_answer_marks_only_the_invented_sentence() -> None:
    answer = "The plan covers 2021 to 2025 [2]. It was written by 40 experts in Ghent [2]."
    _, sentences, _ = verify(answer, SOURCES)
    assert [s.supported for s in sentences] == [True, False]


@pytest.mark.parametrize(
    "text",
    ["I don't know.", "I do not know the answer.", "The sources do not mention the budget.",
     "This is not mentioned in the sources.", "There is no information about that in the articles."],
)
def test_refusals_are_recognised(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text", ["The plan covers 2021 to 2025 [2].", "Belgium knows the risks well [2].", "No, it was in Doha [1]."]
)
def test_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_parse_markers_variants() -> None:
    assert parse_markers("A [1, 2] b [3][1] c [9].", {1, 2, 3}) == ("A [1][2] b [3][1] c.", [1, 2, 3])


@given(st.text(max_size=200), st.sets(st.integers(1, 5), max_size=5))
def test_parser_never_crashes_or_invents_sources(text: str, valid: set[int]) -> None:
    cleaned, cited = parse_markers(text, valid)
    assert set(cited) <= valid
    sources = tuple(s for s in SOURCES if s.n in valid)
    _, sentences, citations = verify(text, sources)
    assert {c.n for c in citations} <= {s.n for s in sources}
    assert all(set(s.citations) <= {x.n for x in sources} for s in sentences)


def test_markers_after_the_full_stop_belong_to_the_sentence_before() -> None:
    assert parse_markers("Both are composers. [1], [2],", {1, 2}) == ("Both are composers [1][2].", [1, 2])
    assert parse_markers("A is B. [1] C is D [2].", {1, 2})[0] == "A is B [1]. C is D [2]."
    _, sentences, _ = verify("The plan has six goals. [2]", SOURCES)
    assert [(s.citations, s.supported) for s in sentences] == [((2,), True)]


def test_yes_or_no_needs_no_support_beyond_its_claim() -> None:
    assert verify("Yes [2].", SOURCES, "Does the plan have six goals?")[1][0].supported
    assert verify("Yes, the plan has six goals [2].", SOURCES)[1][0].supported
    assert not verify("Yes, the plan has nine pillars [2].", SOURCES)[1][0].supported


def test_numbers_repeated_from_the_question_are_not_claims() -> None:
    answer = "The Strategy 2.0 plan covers the period from 2021 to 2025 [2]."
    assert not verify(answer, SOURCES)[1][0].supported  # "2.0" appears in no source
    assert verify(answer, SOURCES, question="What period does Strategy 2.0 cover?")[1][0].supported


WORDS = ("harbour", "bridge", "mayor", "council", "opened", "river", "tunnel", "station", "budget", "plan", "city")


@st.composite
def shown_sources(draw: st.DrawFn) -> tuple[str, Source, str]:
    """A document of sentences split by spaces and line breaks, a chunk of it, a source showing
    some of the chunk's sentences (others skipped), and an answer made of shown sentences' words."""
    sentences = draw(st.lists(st.lists(st.sampled_from(WORDS), min_size=2, max_size=6), min_size=2, max_size=8))
    texts = [" ".join(words).capitalize() + "." for words in sentences]
    breaks = draw(st.lists(st.sampled_from([" ", "\n", " \n", "\n\n"]), min_size=len(texts), max_size=len(texts)))
    preamble = "Preamble line.\n"
    body = "".join(t + sep for t, sep in zip(texts, breaks)).rstrip()
    document = preamble + body
    hit = Hit(chunk_id="d#0", doc_id="d", title="Doc", text=body, start=len(preamble),
              end=len(document), score=1.0, rank=1)

    spans = sentence_spans(hit)
    shown = draw(st.lists(st.booleans(), min_size=len(spans), max_size=len(spans)).filter(any))
    chosen = tuple(s for s, keep in zip(spans, shown) if keep)
    picked = draw(st.lists(st.sampled_from(chosen), min_size=1, max_size=2))
    answer = " ".join(w for s in picked for w in s.text.rstrip(".").lower().split()) + " [1]."
    return document, Source(n=1, hit=hit, sentences=chosen), answer


@settings(deadline=None)  # what it checks is the spans; the first example also loads the stemmer (1.5 s on a busy machine)
@given(shown_sources())
def test_quotes_are_exact_spans_of_shown_sentences(case: tuple[str, Source, str]) -> None:
    document, src, answer = case
    _, _, citations = verify(answer, (src,))
    hidden = [s for s in sentence_spans(src.hit)
              if s not in src.sentences]
    for c in citations:
        assert document[c.start : c.end] == c.quote  # the offsets slice exactly the quote
        # ... and the quote covers no sentence the model was not shown
        assert not any(c.start <= s.start and s.end <= c.end for s in hidden)
