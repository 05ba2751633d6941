"""The verifier's cheap lexical signals (rag/verifier.py), on fixed inputs."""

from __future__ import annotations

import pytest

from rag.verifier import LEXICAL, lexical

QUESTION = "Who did Belgium's interior minister meet in Doha in 2023?"
FIRST = {"score": 0.8, "dense": 0.6, "bm25": 12.5}


def signals(quote: str, answer: str = "Italy's ministry [1].") -> dict[str, float]:
    return dict(zip(LEXICAL, lexical(QUESTION, answer, [quote], FIRST, relevance=0.55), strict=True))


def test_a_near_miss_about_another_country_lacks_the_questions_name() -> None:
    near_miss = signals("Italy's Ministry of the Interior met representatives in Doha in 2023.")
    right = signals("Belgium's interior minister met Qatar's minister in Doha in 2023.")
    assert near_miss["question names quoted"] == pytest.approx(0.5)  # Doha yes, Belgium's no
    assert right["question names quoted"] == 1.0
    assert near_miss["question words quoted"] < right["question words quoted"]


def test_numbers_the_question_names_are_looked_for_in_the_quotes() -> None:
    assert signals("Belgium's minister met them in Doha in 2022.")["question numbers quoted"] == 0.0
    assert signals("Belgium's minister met them in Doha in 2023.")["question numbers quoted"] == 1.0


def test_the_retrieval_scores_and_the_answer_length_are_passed_through() -> None:
    s = signals("Anything.", answer="Three words here.")
    assert (s["first passage score"], s["first passage dense"], s["first passage BM25"]) == (0.8, 0.6, 12.5)
    assert s["best cosine"] == 0.55 and s["answer words"] == 3.0


def test_no_quotes_and_nothing_named_is_not_an_error() -> None:
    values = lexical("what happened?", "", [], {}, 0.0)
    assert len(values) == len(LEXICAL)
    assert values[LEXICAL.index("question names quoted")] == 1.0  # nothing to look for
    assert values[LEXICAL.index("question words quoted")] == 0.0


def test_the_quotes_are_the_cited_sentences_chosen_by_shared_words() -> None:
    from rag.prompting import Source, sentence_spans
    from rag.types import Hit
    from rag.verifier import quotes

    text = ("The talks occurred during Minister Quintin's official visit to Doha on December 6, 2023. "
            "A follow-up meeting is anticipated in the first half of 2024.")
    hit = Hit(chunk_id="qatar#0", doc_id="qatar", title="Qatar", text=text, start=0, end=len(text), score=1.0, rank=1)
    sources = (Source(n=1, hit=hit, sentences=tuple(sentence_spans(hit))),)
    found = quotes("Quintin visited Doha on December 6, 2023 [1].", sources, "When did Quintin visit Doha?")
    assert found == [text.split(" A follow-up")[0]]
    assert quotes("", sources, "When?") == []
