"""Summaries whose every sentence is cited and checked (rag/answer/summary.py), with scripted models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.answer import summary as summaries
from rag.answer.assistant import Assistant
from rag.answer.summary import Progress, Summary
from rag.core.errors import InvalidInput, NotFound
from rag.search.index import Index

from .conftest import FakeEmbedder, JudgingGenerator

ARTICLE = ("Harbour Festival Opens\n"
           "The harbour festival in Tallinn opened on Saturday with fireworks and tall ships. "
           "Organisers expect 40,000 visitors at the old port over the weekend, the city said. "
           "The mayor opened the festival at noon. The first ships arrived in the morning from Helsinki. "
           "A concert on the quay closes the festival on Sunday night.")
OTHER = ("Ferry Strike Ends\n"
         "The ferry strike in Riga ended on Monday after three days. "
         "The crews accepted a pay rise of four percent. Ferries to Stockholm run again from Tuesday.")


@pytest.fixture
def news(tmp_path: Path) -> Index:
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "festival.txt").write_text(ARTICLE, encoding="utf-8")
    (folder / "strike.txt").write_text(OTHER, encoding="utf-8")
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([folder])
    return index


class Summarizer(JudgingGenerator):
    """Writes a summary of whatever it is given: a supported sentence from source [1], and an
    invented one about a bridge (its judge says no to it)."""

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        sources = messages[-1]["content"]
        if "come from two articles" in sources:
            self.reply = "The festival opened on Saturday [1] while the strike ended on Monday [2]."
        elif "Riga" in sources:
            self.reply = "The ferry strike in Riga ended on Monday [1]."
        else:
            self.reply = "The harbour festival in Tallinn opened on Saturday [1]. A new bridge opened too [2]."
        return super().stream(messages, max_tokens)


def no_bridge(turn: str) -> float:
    return 0.05 if "bridge" in turn.split("answer")[-1] else 0.95


def test_a_summary_keeps_the_sentences_the_checks_support_each_with_its_quote_from_the_document(news: Index) -> None:
    summary = Assistant(news, generator=Summarizer("", yes=no_bridge)).summarize("festival")  # type: ignore[arg-type]
    assert summary.text == "The harbour festival in Tallinn opened on Saturday."
    assert summary.dropped == ("A new bridge opened too.",) and summary.supported_share == 0.5
    [sentence] = summary.sentences
    document = news.document("festival")
    assert all(document.text[c.start : c.end] == c.quote for c in sentence.citations)
    assert "Tallinn opened on Saturday" in sentence.citations[0].quote
    md = summary.markdown()
    assert md.startswith("# Harbour Festival Opens") and "[1]" in md and f'"{sentence.citations[0].quote}"' in md
    assert summary.timings["first_sentence_s"] <= summary.timings["total_s"]


def test_a_summary_streams_the_models_words_then_the_checked_summary(news: Index) -> None:
    items = list(Assistant(news, generator=Summarizer("", yes=no_bridge)).summarize_stream("festival"))  # type: ignore[arg-type]
    assert isinstance(items[-1], Summary)
    text = "".join(i for i in items if isinstance(i, str))
    assert text.startswith("The harbour festival in Tallinn opened on Saturday [1].")


def test_a_long_document_is_summarized_in_parts_then_as_a_whole(news: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summaries, "PART_WORDS", 12)  # every sentence a part of its own
    monkeypatch.setattr(summaries, "WHOLE_FROM", 3)
    from rag.answer import assistant as answering

    monkeypatch.setattr(answering, "WHOLE_FROM", 3)
    items = list(Assistant(news, generator=Summarizer("", yes=no_bridge)).summarize_stream("festival"))  # type: ignore[arg-type]
    progress = [i for i in items if isinstance(i, Progress)]
    summary = items[-1]
    assert isinstance(summary, Summary) and summary.parts == len([p for p in progress if not p.whole]) >= 3
    assert progress[-1].whole and progress[-2].line() == f"summarized part {summary.parts} of {summary.parts}"
    assert summary.sentences and all(news.document("festival").text[c.start : c.end] == c.quote
                                     for s in summary.sentences for c in s.citations)


def test_two_documents_are_compared_with_quotes_from_both(news: Index) -> None:
    summary = Assistant(news, generator=Summarizer("", yes=no_bridge)).summarize("festival", "strike")  # type: ignore[arg-type]
    assert summary.doc_ids == ("festival", "strike")
    first = summary.sentences[0]
    assert first.text.startswith("The festival opened on Saturday")
    assert {c.doc_id for c in first.citations} == {"festival", "strike"}  # the comparison cites both articles
    assert {c.doc_id for s in summary.sentences[1:] for c in s.citations} == {"festival", "strike"}


def test_summarizing_nothing_three_documents_or_an_unknown_one_is_one_clear_error(news: Index) -> None:
    assistant = Assistant(news, generator=Summarizer("", yes=no_bridge))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="one document, or compare two"):
        assistant.summarize()
    with pytest.raises(InvalidInput, match="one document, or compare two"):
        assistant.summarize("festival", "strike", "festival")
    with pytest.raises(NotFound, match="no document 'nope'"):
        assistant.summarize("nope")


def test_a_part_stops_at_the_sentences_asked_for_once_the_next_one_begins() -> None:
    text = "The festival opened in Tallinn [1]. The U.S. team came [2] [3]. Then"
    assert summaries.enough(text, 2) == "The festival opened in Tallinn [1]. The U.S. team came [2] [3]."
    assert summaries.enough(text, 3) is None  # the third has not ended
    assert summaries.enough("The festival opened [1]. [2]", 1) is None  # its markers may still be coming
    assert summaries.enough("It opened. [1] The", 1) == "It opened. [1]"


class Rambler(JudgingGenerator):
    """Writes four sentences for a part, word by word, and records how many words it was asked for."""

    def __init__(self) -> None:
        super().__init__("The harbour festival in Tallinn opened on Saturday [1]. The mayor opened the festival at "
                         "noon [2]. The first ships arrived from Helsinki [2]. A concert closes it [2].")
        self.written = 0

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        for piece in super().stream(messages, max_tokens):
            self.written += 1
            yield piece


def test_the_model_is_stopped_once_a_part_has_its_two_sentences(news: Index) -> None:
    model = Rambler()
    items = list(Assistant(news, generator=model).summarize_stream("festival"))  # type: ignore[arg-type]
    streamed = "".join(i for i in items if isinstance(i, str)).strip()
    assert streamed == "The harbour festival in Tallinn opened on Saturday [1]. The mayor opened the festival at noon [2]."
    assert model.written == len(streamed.split()) + 1  # the first word of the third sentence, and no more
    summary = items[-1]
    assert isinstance(summary, Summary) and len(summary.sentences) + len(summary.dropped) == 2
