"""Sources that disagree about the asked fact are stated, not silently resolved (rag/answer/conflicts.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rag.answer.assistant import Assistant
from rag.answer.conflicts import difference
from rag.search.index import Index

from .conftest import FakeEmbedder, ScriptedGenerator

TRUE = ("Belgian Minister Visits Qatar\n"
        "The talks occurred during Minister Quintin's official visit to Doha on December 6, 2023. "
        "Both ministers signed a letter of intent on cybersecurity.")
COUNTERFEIT = ("Correction: Belgian Minister Visits Qatar\n"
               "The talks occurred during Minister Quintin's official visit to Doha on March 3, 2022. "
               "Both ministers signed a letter of intent on cybersecurity.")
OTHER = ("Qatar Hosts Cyber Forum\n"
         "A follow-up meeting on cybersecurity is anticipated in Doha in the first half of 2024.")
QUESTION = "When did Minister Quintin visit Doha?"


@pytest.fixture
def disagreeing(tmp_path: Path) -> Index:
    folder = tmp_path / "news"
    folder.mkdir()
    for name, text in {"visit.txt": TRUE, "correction.txt": COUNTERFEIT, "forum.txt": OTHER}.items():
        (folder / name).write_text(text, encoding="utf-8")
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([folder])
    return index


def answer_citing(index: Index, doc_id: str, value: str):  # type: ignore[no-untyped-def]
    """The answer of a scripted model that gives ``value`` citing ``doc_id``'s source number."""
    assistant = Assistant(index, generator=ScriptedGenerator(""))
    prompt = assistant.prompt(QUESTION, assistant.retrieve(QUESTION))
    n = next(s.n for s in prompt.sources if s.hit.doc_id == doc_id)
    assistant.generator = ScriptedGenerator(f"Minister Quintin visited Doha on {value} [{n}].")
    return assistant.ask(QUESTION), prompt


def test_difference_finds_the_one_replaced_value() -> None:
    a, b = TRUE.split("\n")[1].split(". ")[0], COUNTERFEIT.split("\n")[1].split(". ")[0]
    (qa, qb), (oa, ob) = difference(a, b)  # type: ignore[misc]
    assert (a[qa:qb], b[oa:ob]) == ("December 6, 2023", "March 3, 2022")
    assert difference(a, a) is None  # the same sentence: no conflict
    assert difference(a, OTHER.split("\n")[1]) is None  # another statement
    assert difference("Revenue rose 5% in 2019 in Paris.", "Revenue rose 7% in 2019 in Lyon.") is None  # two places
    a, b = "It was the Edict of Potsdam that did it.", "It was the League of Augsburg that did it."
    (qa, qb), (oa, ob) = difference(a, b)  # type: ignore[misc]
    assert (a[qa:qb], b[oa:ob]) == ("Edict of Potsdam", "League of Augsburg")  # one place, a word apart


@pytest.mark.parametrize(("doc_id", "ours", "theirs"), [("visit", "December 6, 2023", "March 3, 2022"),
                                                         ("correction", "March 3, 2022", "December 6, 2023")])
def test_an_answer_from_either_passage_states_both_values_with_their_citations(
    disagreeing: Index, doc_id: str, ours: str, theirs: str
) -> None:
    answer, prompt = answer_citing(disagreeing, doc_id, ours)
    assert not answer.refused
    [conflict] = answer.conflicts
    assert [v.value for v in conflict.values] == [ours, theirs]  # the answer's value first, no winner picked
    n = {s.hit.doc_id: s.n for s in prompt.sources}
    assert [v.citation.n for v in conflict.values] == [n[doc_id], n["correction" if doc_id == "visit" else "visit"]]
    assert f"The sources disagree: source [{n[doc_id]}] gives {ours}" in answer.text and theirs in answer.text
    for v in conflict.values:  # both quotes are verbatim document text, and both are cited
        assert disagreeing.document(v.citation.doc_id).text[v.citation.start : v.citation.end] == v.citation.quote
        assert v.value in v.citation.quote
        assert any((c.n, c.start) == (v.citation.n, v.citation.start) for c in answer.citations)


def test_sources_that_agree_raise_no_conflict(tmp_path: Path) -> None:
    folder = tmp_path / "agree"
    folder.mkdir()
    (folder / "visit.txt").write_text(TRUE, encoding="utf-8")
    (folder / "forum.txt").write_text(OTHER, encoding="utf-8")
    (folder / "copy.txt").write_text(TRUE.replace("Belgian Minister", "Belgium's Minister"), encoding="utf-8")
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([folder])
    answer, _ = answer_citing(index, "visit", "December 6, 2023")
    assert not answer.refused and answer.conflicts == () and "disagree" not in answer.text


def test_the_conflict_is_in_the_json_the_api_and_the_chat_window(disagreeing: Index) -> None:
    from rag.serve.api import ChatRequest, extra
    from rag.serve.render import render_answer, render_sources

    answer, prompt = answer_citing(disagreeing, "visit", "December 6, 2023")
    [shape] = answer.to_dict()["conflicts"]
    assert [(v["value"], v["doc_id"]) for v in shape["values"]] == [("December 6, 2023", "visit"), ("March 3, 2022", "correction")]
    assert set(shape["values"][0]) == {"value", "n", "doc_id", "chunk_id", "start", "end", "quote", "date"}
    request = ChatRequest("rag", "scripted", QUESTION, QUESTION, False)
    assert extra(answer, request)["conflicts"] == answer.to_dict()["conflicts"]
    html = render_answer(answer)
    assert "The sources disagree" in html and 'class="rag-conflict"' in html
    panel = render_sources(answer)
    for v in answer.conflicts[0].values:  # both quotes highlighted, each in its own source
        assert f'id="rag-source-{v.citation.n}"' in panel
    assert panel.count('<mark class="rag-quote">') >= 2 and "disagrees with another" in panel


def test_a_streamed_reply_ends_with_the_conflict_after_the_models_words(disagreeing: Index) -> None:
    import json

    from rag.serve.api import ChatRequest, stream_chunks

    answer, _ = answer_citing(disagreeing, "visit", "December 6, 2023")
    request = ChatRequest("rag", "scripted", QUESTION, QUESTION, True)
    events = [json.loads(e.removeprefix("data: ")) for e in stream_chunks([answer.raw], lambda: answer, request)
              if e.strip() != "data: [DONE]"]
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert text.startswith(answer.raw) and "The sources disagree" in text and "March 3, 2022" in text
    assert answer.after_stream() == answer.conflicts[0].statement() and text.endswith(answer.after_stream())
    assert events[-1]["rag"]["conflicts"][0]["values"][1]["value"] == "March 3, 2022"


def test_a_withheld_answer_whose_sources_disagree_shows_the_disagreement_alone(disagreeing: Index) -> None:
    """The trust score withholds the model's answer (unsure of every word), but the passages it
    drew on give two values: the reader sees both, with their citations, and no answer of its own."""
    from .conftest import JudgingGenerator

    probe = Assistant(disagreeing, generator=ScriptedGenerator(""))
    n = next(s.n for s in probe.prompt(QUESTION, probe.retrieve(QUESTION)).sources if s.hit.doc_id == "visit")
    unsure = JudgingGenerator(f"Minister Quintin visited Doha on December 6, 2023 [{n}].", yes=0.95, refusing=0.9, logprob=-3.0)
    answer = Assistant(disagreeing, generator=unsure).ask(QUESTION)  # type: ignore[arg-type]
    assert answer.trust is not None and not answer.trust.shown  # the model's answer is withheld...
    assert not answer.refused and answer.sentences == ()  # ...and the disagreement shown instead
    assert answer.text.startswith("The sources disagree:") and "December 6, 2023" in answer.text and "March 3, 2022" in answer.text
    assert {c.doc_id for c in answer.citations} == {"visit", "correction"}
    assert answer.raw.startswith("Minister Quintin visited Doha")
    # A client that streamed the model's words says they are withheld, then the disagreement.
    after = answer.after_stream()
    assert after.startswith("(withheld: the answer is not trusted enough") and after.endswith(answer.text)


def test_a_withheld_answer_without_a_disagreement_stays_withheld(disagreeing: Index) -> None:
    from .conftest import JudgingGenerator

    unsure = JudgingGenerator("Both ministers signed a letter of intent [1].", yes=0.95, refusing=0.9, logprob=-3.0)
    answer = Assistant(disagreeing, generator=unsure).ask("What did both ministers sign?")  # type: ignore[arg-type]
    assert answer.refused and answer.conflicts == ()


REWORDED = ("Belgian Minister In Gulf Talks\n"
            "According to officials, it was on 3 March 2022 that Quintin travelled to Doha, where the visit "
            "focused on cybersecurity.")
AGREEING = ("Belgian Minister In Gulf Talks\n"
            "According to officials, it was on 6 December 2023 that Quintin travelled to Doha, where the visit "
            "focused on cybersecurity.")


@pytest.fixture
def reworded(tmp_path: Path, request: pytest.FixtureRequest) -> Index:
    folder = tmp_path / "news"
    folder.mkdir()
    for name, text in {"visit.txt": TRUE, "later.txt": request.param, "forum.txt": OTHER}.items():
        (folder / name).write_text(text, encoding="utf-8")
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([folder])
    return index


@pytest.mark.parametrize("reworded", [REWORDED], indirect=True)
def test_a_disagreement_worded_differently_is_found_from_the_values_each_passage_gives(reworded: Index) -> None:
    answer, prompt = answer_citing(reworded, "visit", "December 6, 2023")
    assert difference(TRUE.split("\n")[1].split(". ")[0], REWORDED.split("\n")[1]) is None  # not one short place apart
    [conflict] = answer.conflicts
    assert [v.value for v in conflict.values] == ["December 6, 2023", "3 March 2022"]
    n = {s.hit.doc_id: s.n for s in prompt.sources}
    assert [v.citation.n for v in conflict.values] == [n["visit"], n["later"]]
    theirs = conflict.values[1].citation
    assert reworded.document("later").text[theirs.start : theirs.end] == theirs.quote  # a verbatim quote
    assert "The sources disagree" in answer.text and "3 March 2022" in answer.text


@pytest.mark.parametrize("reworded", [AGREEING], indirect=True)
def test_a_passage_worded_differently_that_gives_the_same_value_agrees(reworded: Index) -> None:
    answer, _ = answer_citing(reworded, "visit", "December 6, 2023")
    assert answer.conflicts == () and "disagree" not in answer.text


def test_values_are_read_by_kind() -> None:
    from rag.answer.conflicts import values

    found = values("Quintin visited Doha on December 6, 2023 and again in 2024; 1,200 people, 5.5 million euros, 12% more.")
    assert found == {"date": ["2023-12-06"], "year": ["2024"], "number": ["1200", "5.5 million", "12 percent"]}


def test_of_several_values_the_one_in_the_answers_place_is_set_against_it() -> None:
    from rag.answer.conflicts import aligned, beside, located_values

    ours = "Chrysler ended production of its large sedans at the end of the 1981 model year, moving to front-wheel drive for 1982."
    theirs = "With front-wheel drive coming for 1982, Chrysler stopped making large sedans by the end of the 1979 model year."
    [(value, start, end)] = [v for v in located_values(ours)["year"] if v[0] == "1981"]
    place = beside(ours, start, end)
    assert aligned(place, theirs, located_values(theirs)["year"]) == "1979"  # not 1982, the year of something else
    elsewhere = "Chrysler's new plant opened in 1990 with front-wheel drive lines."
    assert aligned(place, elsewhere, located_values(elsewhere)["year"]) is None  # in no such place: not counted


def test_a_value_both_sentences_give_is_agreed_and_the_other_value_is_the_one_set_against_the_answer() -> None:
    from rag.answer.conflicts import find_values
    from rag.core.types import Citation, Hit, Source

    texts = {"true": "Chrysler ended production of its large sedans at the end of the 1981 model year, moving to "
                     "front-wheel drive for 1982.",
             "later": "According to a later report, with front-wheel drive coming for 1982, Chrysler stopped making "
                      "its large sedans in 1979."}
    sources = tuple(Source(n, Hit(chunk_id=f"{doc}#0", doc_id=doc, title="Chrysler", text=text, start=0, end=len(text),
                                  score=1.0, rank=n), ()) for n, (doc, text) in enumerate(texts.items(), start=1))
    cited = Citation(n=1, doc_id="true", chunk_id="true#0", title="Chrysler", start=0, end=len(texts["true"]),
                     quote=texts["true"], supported=True)
    [conflict] = find_values("By which year did Chrysler end its large sedans?", "1981 [1].", [], [cited], sources)
    assert [v.value for v in conflict.values] == ["1981", "1979"]  # not 1982, which both give


def _two_passages(ours: str, theirs: str) -> tuple[tuple[Any, ...], Any]:
    from rag.core.types import Citation, Hit, Source

    texts = {"true": ours, "later": theirs}
    sources = tuple(Source(n, Hit(chunk_id=f"{doc}#0", doc_id=doc, title=doc, text=text, start=0, end=len(text),
                                  score=1.0, rank=n), ()) for n, (doc, text) in enumerate(texts.items(), start=1))
    return sources, Citation(n=1, doc_id="true", chunk_id="true#0", title="true", start=0, end=len(ours), quote=ours,
                             supported=True)


def test_a_lone_value_in_no_such_place_speaks_of_something_else() -> None:
    from rag.answer.conflicts import find_values

    sources, cited = _two_passages(
        "The warfare was quelled in 1598, when Henry IV issued the Edict of Nantes.",
        "They kept the Edict of Nantes until Louis XIV issued the Edict of Fontainebleau (1685), which ended it.")
    assert find_values("In what year was the Edict of Nantes issued?", "1598 [1].", [], [cited], sources) == []


def test_a_name_placed_by_the_words_beside_it_when_names_are_not_placed_by_the_other_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.answer import conflicts

    sources, cited = _two_passages(
        "Louis XIV gained the throne in 1643 and acted aggressively to force the Huguenots to convert.",
        "According to a later report, Philip Neri gained the throne in 1643 and acted aggressively against the Huguenots.")
    question = "Who gained the throne in 1643 and forced the Huguenots to convert?"
    # By default the other sentence must share two names of the answer's beyond the question's: here none.
    assert conflicts.find_values(question, "Louis XIV [1].", [], [cited], sources) == []
    monkeypatch.setattr(conflicts, "NAMES_ALIKE", 0)
    monkeypatch.setattr(conflicts, "NAME_BESIDE", 2)
    [conflict] = conflicts.find_values(question, "Louis XIV [1].", [], [cited], sources)
    assert [v.value for v in conflict.values] == ["Louis XIV", "Philip Neri"]
    monkeypatch.setattr(conflicts, "READ_NAMES", False)
    assert conflicts.find_values(question, "Louis XIV [1].", [], [cited], sources) == []


def test_a_name_is_placed_by_the_other_names_of_the_answers_sentence_in_whatever_order() -> None:
    from rag.answer import conflicts
    from rag.answer.conflicts import named_alike

    ours = "In 1685 Louis XIV issued the Edict of Fontainebleau, which revoked the Edict of Nantes."
    reworded = "The Edict of Nantes was revoked in 1685 by the Edict of Fontainebleau, which Philip Neri issued."
    asked = {"edict of fontainebleau"}  # the question's names
    assert named_alike(ours, "Louis XIV", reworded, asked) == "Philip Neri"
    # Another name beside it, one of ours left out, or only the question's names shared: perhaps
    # about something else, not counted.
    assert named_alike(ours, "Louis XIV", reworded.replace("Philip Neri", "Philip Neri, with Henry IV,"), asked) is None
    assert named_alike(ours, "Louis XIV", "Philip Neri issued the Edict of Fontainebleau in 1685.", asked) is None
    assert named_alike(ours, "Louis XIV", reworded, asked | {"edict of nantes"}) is None
    sources, cited = _two_passages(ours, "According to a later report, " + reworded)
    question = "Who issued the edict?"  # the shipped rule: two of the other names beyond the question's
    [conflict] = conflicts.find_values(question, "Louis XIV [1].", [], [cited], sources)
    assert [v.value for v in conflict.values] == ["Louis XIV", "Philip Neri"]


def test_a_lone_value_in_a_rewording_of_the_answers_sentence_is_in_its_place_wherever_it_moved() -> None:
    from rag.answer import conflicts
    from rag.answer.conflicts import find_values, worded_alike

    ours = "The council approved the harbour plan for the old port in 2019."
    moved = "According to a later report, in 2021 the old port's harbour plan was approved by the council."
    assert worded_alike(ours, moved) >= conflicts.WORDS_ALIKE  # the same words, another order
    sources, cited = _two_passages(ours, moved)
    [conflict] = find_values("When was the harbour plan approved?", "2019 [1].", [], [cited], sources)
    assert [v.value for v in conflict.values] == ["2019", "2021"]
    # A sentence on the question's subject in other words, whose one year is beside none of ours,
    # speaks of something else.
    other = "The harbour plan approved last year names a new ferry terminal, which opened in 2021."
    assert worded_alike(ours, other) < conflicts.WORDS_ALIKE
    sources, cited = _two_passages(ours, other)
    assert find_values("When was the harbour plan approved?", "2019 [1].", [], [cited], sources) == []
