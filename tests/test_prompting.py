"""Sentence selection and prompt layout (fake embedder, hand-made hits)."""

from __future__ import annotations

from dataclasses import replace

from rag.prompting import CONTEXT_WORDS, build_prompt, lexical_overlap, select_sources
from rag.sparse import tokenize
from rag.types import Hit

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


def test_the_best_sentences_of_all_hits_fill_the_budget() -> None:
    first = "The council met on Monday. It discussed roads. The weather was fine."
    second = "Harbour budget rose to 9 million. The harbour budget debate was long."
    hits = [hit(1, "a", first), hit(2, "b", second)]
    sources = select_sources("What was the harbour budget?", hits, FakeEmbedder(), budget_words=14)
    # The second hit's sentences match the question; the first hit's do not and are left out.
    assert [s.hit.doc_id for s in sources] == ["b"]
    assert sources[0].text == second


def test_the_higher_ranked_chunk_wins_between_sentences_that_score_alike() -> None:
    hits = [hit(1, "a", "The harbour budget was agreed."), hit(2, "b", "The harbour budget was agreed.")]
    for weight, kept in ((0.15, "a"), (-0.15, "b")):  # a negative weight prefers the lower rank
        sources = select_sources("harbour budget?", hits, FakeEmbedder(), budget_words=5, rank_weight=weight)
        assert [s.hit.doc_id for s in sources] == [kept]


def test_the_budget_bounds_the_words_but_keeps_the_best_sentence() -> None:
    long_sentence = " ".join(["word"] * (CONTEXT_WORDS + 20)) + "."
    sources = select_sources("word?", [hit(1, "a", long_sentence + " Short one.")], FakeEmbedder())
    assert sum(len(s.text.split()) for s in sources) <= CONTEXT_WORDS + 21
    assert sources and long_sentence in sources[0].text


def test_the_prompt_numbers_sources_in_retrieval_order_after_the_fixed_instruction() -> None:
    hits = [hit(1, "a", "Alpha fact one."), hit(2, "b", "Beta fact two.")]
    prompt = build_prompt("Which fact?", select_sources("Which fact?", hits, FakeEmbedder()))
    lines = prompt.text.splitlines()
    assert "[1] Title: Alpha fact one." in lines and "[2] Beta fact two." in lines  # one title, named once
    assert lines.index("[1] Title: Alpha fact one.") < lines.index("[2] Beta fact two.")
    assert prompt.text.index("Question: Which fact?") > prompt.text.index("[2]")


def test_an_articles_title_is_given_where_it_is_new() -> None:
    hits = [hit(1, "a", "Alpha fact one.", "Alpha news"), hit(2, "b", "Beta fact two.", "Beta news"),
            hit(3, "a", "Alpha fact three.", "Alpha news"), hit(4, "c", "Gamma Ray was born in 1960.", "Gamma Ray")]
    hits[2] = replace(hits[2], chunk_id="a#1", start=100, end=117)  # a second chunk of article a
    sources = select_sources("Which fact?", hits, FakeEmbedder())
    assert [s.hit.doc_id for s in sources] == ["a", "b", "a", "c"]
    every = build_prompt("Which fact?", sources, label_titles="title").text.splitlines()
    once = build_prompt("Which fact?", sources, label_titles="title-once").text.splitlines()
    new = build_prompt("Which fact?", sources).text.splitlines()
    assert "[3] Alpha news: Alpha fact three." in every and "[4] Gamma Ray: Gamma Ray was born in 1960." in every
    assert "[1] Alpha news: Alpha fact one." in once and "[2] Beta news: Beta fact two." in once
    assert "[3] Alpha fact three." in once and "[4] Gamma Ray: Gamma Ray was born in 1960." in once
    # The default also leaves out a title the source's own words already say.
    assert "[1] Alpha news: Alpha fact one." in new and "[3] Alpha fact three." in new
    assert "[4] Gamma Ray was born in 1960." in new
