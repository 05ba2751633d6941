"""The second hop (rag/search/hops.py): the pages of what a question and its passages name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answer.assistant import Assistant
from rag.search import hops
from rag.search.index import Index

from .conftest import FakeEmbedder, ScriptedGenerator

PAGES = {
    "The Prairie King (1927 film)": "The Prairie King is a 1927 American western film directed by B. Reeves Eason.",
    "B. Reeves Eason": "B. Reeves Eason was an American film director, born in New York City in 1886.",
    "Cantaclaro": "Cantaclaro is a 1946 Mexican film directed by Julio Bracho.",
    "Julio Bracho": "Julio Bracho was a Mexican film director, born in Durango in 1909.",
    "Prairie Schooners": "Prairie Schooners is a 1940 western film about settlers crossing the prairie.",
}


@pytest.fixture
def wiki(tmp_path: Path) -> Index:
    corpus = tmp_path / "wiki.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": title, "title": title, "text": text}) for title, text in PAGES.items()))
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([corpus])
    return index


def test_names_are_runs_of_capitalised_words_without_question_words_or_possessives() -> None:
    from rag.core.text import names

    assert names("Which film came out first, The Prairie King or Cantaclaro?") == ["The Prairie King", "Cantaclaro"]
    assert names("Who is Gevheri Kadın's father-in-law?") == ["Gevheri Kadın"]
    assert names("Is the Bank of England older than Kiss and Tell?") == ["Bank of England", "Kiss and Tell"]
    # a sentence's end is not part of a name, spaced or glued; initials and abbreviations are
    assert names("It was directed by David MacDonald.The film stars Jean Kent. Mr. Smith saw St. Louis.") == [
        "David MacDonald", "Jean Kent", "Mr. Smith", "St. Louis"]


def test_a_page_is_a_document_titled_with_the_name(wiki: Index) -> None:
    found = hops.page(wiki, "The Prairie King")
    assert found is not None and found.title == "The Prairie King (1927 film)"  # the parenthetical is not part of the name
    assert hops.page(wiki, "Prairie") is None  # a name without a page of its own: nothing, not the best match


def test_the_second_hop_reads_the_bridge_from_the_pages_of_what_the_question_names(wiki: Index) -> None:
    question = "Which film has the director born first, The Prairie King or Cantaclaro?"
    first = wiki.search(question, k=1)
    added = hops.follow(wiki, question, first)
    titles = {h.title for h in [*first, *added]}
    # both films (the comparison's two sides) and both directors (each film's page names its director)
    assert {"The Prairie King (1927 film)", "Cantaclaro", "B. Reeves Eason", "Julio Bracho"} <= titles
    assert len(added) <= hops.MAX_HOPS and not {h.chunk_id for h in added} & {h.chunk_id for h in first}


def test_a_corpus_whose_titles_are_headlines_gets_no_second_hop(index: Index) -> None:
    question = "Which bakery in Ashford won the sourdough prize?"
    assert hops.follow(index, question, index.search(question, k=2)) == []


def test_the_assistant_puts_the_second_hop_in_the_prompt_and_every_added_page_keeps_a_sentence(wiki: Index) -> None:
    question = "Where was the director of film Cantaclaro born?"
    assistant = Assistant(wiki, k=1, generator=ScriptedGenerator("Durango [2]."))
    response = assistant.respond(question)
    assert response.prompt is not None
    titles = [s.hit.title for s in response.prompt.sources]
    assert titles[0] == "Cantaclaro" and "Julio Bracho" in titles  # the bridge's page, with its best sentence
    plain = Assistant(wiki, k=1, hops=False, generator=ScriptedGenerator("Durango [1].")).respond(question)
    assert plain.prompt is not None and [s.hit.title for s in plain.prompt.sources] == ["Cantaclaro"]


def test_a_bridge_glued_to_the_next_sentence_or_joined_by_and_is_still_followed(tmp_path: Path) -> None:
    pages = {
        "Good-Time Girl": "Good-Time Girl is a 1948 British drama film directed by David MacDonald.The film stars Jean Kent.",
        "David MacDonald (director)": "David MacDonald was a Scottish film director, born in Helensburgh.",
        "I Guess": "I Guess is a song by Australian singer Kylie Minogue and British producers.",
        "Kylie Minogue": "Kylie Minogue is an Australian singer, born in Melbourne.",
    }
    corpus = tmp_path / "wiki.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": t, "title": t, "text": x}) for t, x in pages.items()))
    wiki = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    wiki.add([corpus])
    for question, film, bridge in (("Where was the director of film Good-Time Girl born?", "Good-Time Girl", "David MacDonald (director)"),
                                   ("Where was the performer of song I Guess born?", "I Guess", "Kylie Minogue")):
        first = [hit for hit in wiki.search(question, k=4) if hit.title == film]
        assert bridge in [hit.title for hit in hops.bridge_hits(wiki, question, first)]
