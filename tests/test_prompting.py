"""Sentence selection and prompt layout (fake embedder, hand-made hits)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rag.answer import prompting
from rag.answer.prompting import (
    CONTEXT_WORDS,
    SEVERAL_HINT,
    TWO_PARTS_HINT,
    asks_for_several,
    build_prompt,
    lexical_overlap,
    select_sources,
)
from rag.core.text import tokenize
from rag.core.types import Hit

from .conftest import FakeEmbedder


def hit(rank: int, doc_id: str, text: str, title: str = "Title") -> Hit:
    return Hit(chunk_id=f"{doc_id}#0", doc_id=doc_id, title=title, text=text, start=0, end=len(text),
               score=1.0 / rank, rank=rank)


def test_a_term_every_candidate_shares_weighs_less_than_a_rare_one() -> None:
    terms = set(tokenize(["Qatar budget"])[0])
    texts = ["Qatar signed a pact.", "Qatar met Belgium.", "The budget of Qatar grew."]
    overlap = lexical_overlap(terms, texts)
    assert overlap[2] == 1.0  # both terms
    assert 0 < overlap[0] < 0.5  # only the common term: less than half the weight
    assert overlap[0] == overlap[1]


def test_the_first_hit_is_kept_whole_and_the_rest_fill_the_budget() -> None:
    first = "The council met on Monday. It discussed roads. The weather was fine."  # 12 words
    second = "Harbour budget rose to 9 million. The harbour budget debate was long."  # 2 x 6 words
    hits = [hit(1, "a", first), hit(2, "b", second)]
    sources = select_sources("What was the harbour budget?", hits, FakeEmbedder(), budget_words=20)
    assert [s.hit.doc_id for s in sources] == ["a", "b"]
    # Every sentence of the first hit, though none matches the question as well as the second's ...
    assert sources[0].text == first
    # ... and one sentence of the second: both would not fit in 20 words.
    assert len(sources[1].sentences) == 1 and "harbour budget" in sources[1].text.lower()


def test_the_budget_bounds_the_words_but_keeps_the_best_sentence() -> None:
    long_sentence = " ".join(["word"] * (CONTEXT_WORDS + 20)) + "."
    sources = select_sources("word?", [hit(1, "a", long_sentence + " Short one.")], FakeEmbedder())
    assert sum(len(s.text.split()) for s in sources) <= CONTEXT_WORDS + 21
    assert sources and long_sentence in sources[0].text


def test_the_prompt_numbers_sources_in_retrieval_order_after_the_fixed_instruction() -> None:
    hits = [hit(1, "a", "Alpha fact one."), hit(2, "b", "Beta fact two.")]
    prompt = build_prompt("Which fact?", select_sources("Which fact?", hits, FakeEmbedder()))
    lines = prompt.text.splitlines()
    assert "[1] Title: Alpha fact one." in lines and "[2] Title: Beta fact two." in lines
    assert lines.index("[1] Title: Alpha fact one.") < lines.index("[2] Title: Beta fact two.")
    assert prompt.text.index("Question: Which fact?") > prompt.text.index("[2]")


def test_an_articles_title_can_be_given_once_for_all_its_sources() -> None:
    hits = [hit(1, "a", "Alpha fact one.", "Alpha news"), hit(2, "b", "Beta fact two.", "Beta news"),
            hit(3, "a", "Alpha fact three.", "Alpha news")]
    hits[2] = replace(hits[2], chunk_id="a#1", start=100, end=117)  # a second chunk of article a
    sources = select_sources("Which fact?", hits, FakeEmbedder())
    assert [s.hit.doc_id for s in sources] == ["a", "b", "a"]
    every = build_prompt("Which fact?", sources).text.splitlines()
    once = build_prompt("Which fact?", sources, label_titles="title-once").text.splitlines()
    assert "[3] Alpha news: Alpha fact three." in every  # the default names it on every source
    assert "[1] Alpha news: Alpha fact one." in once and "[2] Beta news: Beta fact two." in once
    assert "[3] Alpha fact three." in once


def test_a_title_is_left_out_where_it_is_not_new() -> None:
    hits = [hit(1, "a", "Scott Derrickson (born 1966) is a director.", "Scott Derrickson"),
            hit(2, "b", "Beta fact two.", "Beta news"), hit(3, "a", "He made Sinister.", "Scott Derrickson")]
    hits[2] = replace(hits[2], chunk_id="a#1", start=100, end=117)
    sources = select_sources("Who is Scott Derrickson?", hits, FakeEmbedder())
    lines = build_prompt("Who is Scott Derrickson?", sources, label_titles="title-if-new").text.splitlines()
    n = {s.text: s.n for s in sources}
    assert f"[{n['Scott Derrickson (born 1966) is a director.']}] Scott Derrickson (born 1966) is a director." in lines
    assert f"[{n['Beta fact two.']}] Beta news: Beta fact two." in lines
    assert f"[{n['He made Sinister.']}] He made Sinister." in lines  # named by an earlier source


@pytest.mark.parametrize(("question", "several"), [
    ("Which countries has Qatar signed cybersecurity agreements with?", True),  # a plural asked for
    ("Which two European countries sent government officials to Doha?", True),  # a number of them
    ("Who did Belgium's interior minister meet in Doha, and when?", True),  # two parts
    ("The official was reported to have met two named figures. Who were they?", True),
    ("When did Bernard Quintin visit Doha?", False),
    ("What does the strategy cover?", False),  # "does" is no plural
    ("Are both films from the same country?", False),  # yes or no
    ("Apart from Interpol, which US government department did he meet?", False),
])  # fmt: skip
def test_questions_that_ask_for_several_things_are_told_apart(question: str, several: bool) -> None:
    assert asks_for_several(question) is several


def test_by_default_no_question_gets_a_line_after_it() -> None:
    sources = select_sources("q", [hit(1, "a", "Qatar signed agreements with Rwanda and Belgium.")], FakeEmbedder())
    for question in ("Which countries signed agreements?", "Who signed, and when?"):
        assert build_prompt(question, sources).messages[-1]["content"].endswith(f"Question: {question}")


def test_only_a_question_that_asks_for_several_things_gets_the_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompting, "SEVERAL_HINTS", True)
    sources = select_sources("q", [hit(1, "a", "Qatar signed agreements with Rwanda and Belgium.")], FakeEmbedder())
    listed = build_prompt("Which countries signed agreements?", sources).messages[-1]["content"]
    single = build_prompt("When was it signed?", sources).messages[-1]["content"]
    assert listed.endswith(f"Question: Which countries signed agreements?\n{SEVERAL_HINT}")
    assert single.endswith("Question: When was it signed?") and SEVERAL_HINT not in single


def test_a_question_in_two_parts_gets_its_own_hint_not_the_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompting, "SEVERAL_HINTS", True)
    sources = select_sources("q", [hit(1, "a", "Quintin met Al Malki in Doha on 6 December 2023.")], FakeEmbedder())
    two = build_prompt("Who did Quintin meet, and when?", sources).messages[-1]["content"]
    assert two.endswith(f"Question: Who did Quintin meet, and when?\n{TWO_PARTS_HINT}") and SEVERAL_HINT not in two
