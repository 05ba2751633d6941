from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from rag.answer.assistant import Answer, Assistant
from rag.search.index import Index
from rag.serve.feedback import feedback_path, record_feedback

from .conftest import ScriptedGenerator


@pytest.fixture
def answer(index: Index) -> Answer:
    reply = "The Miller bakery in Ashford won the national sourdough prize [1]."
    return Assistant(index, generator=ScriptedGenerator(reply)).ask("Which bakery won the sourdough prize?")


def test_feedback_lands_in_the_data_directory(answer: Answer, tmp_path_factory: pytest.TempPathFactory) -> None:
    record_feedback(answer, "up", comment="  right  ", asked="and which bakery?")
    path = feedback_path()
    assert str(path).startswith(str(tmp_path_factory.getbasetemp()))  # conftest's data dir, not ~/.local
    [line] = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert record["rating"] == "up" and record["comment"] == "right"
    assert record["question"] == "and which bakery?"
    assert record["searched_question"] == "Which bakery won the sourdough prize?"
    assert record["answer"] == answer.text
    assert record["citations"][0]["doc_id"] == "bakery" and record["citations"][0]["quote"]


def test_concurrent_writers_never_interleave(answer: Answer, tmp_path: Path) -> None:
    path = tmp_path / "fb.jsonl"
    threads = [threading.Thread(target=record_feedback, args=(answer, "down", "x" * 1500), kwargs={"path": path}) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 20 and all(r["rating"] == "down" for r in records)


@pytest.mark.parametrize(("rating", "comment", "message"), [("meh", "", "rating must be one of up, down"), ("up", "x" * 2001, "limit is 2000")])
def test_bad_feedback_is_refused(answer: Answer, tmp_path: Path, rating: str, comment: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        record_feedback(answer, rating, comment, path=tmp_path / "fb.jsonl")
    assert not (tmp_path / "fb.jsonl").exists()
