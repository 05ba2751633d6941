"""Sixteen sessions at once through the running app: every request gets its own answer.

The fast counterpart of eval/load_test.py (which uses the real model): a scripted
generator answers from the prompt it is given, so an answer built from another
session's question or sources would name the wrong harbour and cite the wrong article.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client  # noqa: E402

from rag.answer.assistant import Assistant  # noqa: E402
from rag.search.index import Index  # noqa: E402
from rag.serve.service import ChatService  # noqa: E402

from .conftest import (
    FakeEmbedder,  # noqa: E402
    running,  # noqa: E402
)

SESSIONS = 16
PORTS = ["Aberdeen", "Bilbao", "Cadiz", "Dover", "Esbjerg", "Faro", "Genoa", "Hamburg",
         "Izmir", "Juneau", "Kiel", "Lisbon", "Marseille", "Naples", "Oslo", "Porto"]  # fmt: skip


def height(i: int) -> int:
    return 20 + 7 * i


class PromptReader:
    """Answers "How tall is the lighthouse of X?" with the source sentence about X, cited."""

    name = "reader"

    def __init__(self, pause: float = 0.002) -> None:
        self.active = 0
        self.most_active = 0
        self.pause = pause
        self._count = threading.Lock()

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        prompt = messages[-1]["content"]
        place = re.search(r"lighthouse of (\w+)\?", prompt.rsplit("Question:", 1)[-1])
        with self._count:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            reply = "I don't know."
            for m in re.finditer(r"\[(\d+)\][^\n]*?(The lighthouse of (\w+) is \d+ metres tall\.)", prompt):
                if place and m.group(3) == place.group(1):
                    reply = f"{m.group(2)[:-1]} [{m.group(1)}]."
            for word in reply.split(" "):
                threading.Event().wait(self.pause)
                yield word + " "
        finally:
            with self._count:
                self.active -= 1


REMOTE = "openai:http://127.0.0.1:9/v1#reader"  # a model on a server: never called, the reader stands in


def ports_service(tmp_path: Path, model: str = "reader", pause: float = 0.002, concurrency: int = 4) -> ChatService:
    corpus = tmp_path / "ports"
    corpus.mkdir()
    for i, port in enumerate(PORTS):
        (corpus / f"{port.lower()}.txt").write_text(
            f"{port} Harbour Guide\nThe lighthouse of {port} is {height(i)} metres tall. "
            f"Ferries leave {port} every morning.",
            encoding="utf-8",
        )
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([corpus])
    assistant = Assistant(index, model=model, generator=PromptReader(pause))
    return ChatService(index, model=model, assistants={model: assistant}, upload_dir=tmp_path / "uploads",
                       concurrency=concurrency)


@pytest.fixture
def service(tmp_path: Path) -> ChatService:
    return ports_service(tmp_path)


@pytest.fixture
def url(service: ChatService) -> Iterator[str]:
    with running(service) as url:
        yield url


def at_once(n: int, work) -> list[object]:  # type: ignore[no-untyped-def]
    """Run ``work(i)`` for i < ``n`` in threads started at the same moment; results (or the
    exceptions raised) in order."""
    results: list[object] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as e:  # noqa: BLE001 - the test reports it
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def burst(url: str, n: int, work) -> list[object]:  # type: ignore[no-untyped-def]
    """Run ``work(i, client)`` for ``n`` sessions of the app at the same moment; results in order."""
    clients = [Client(url, verbose=False) for _ in range(n)]
    return at_once(n, lambda i: work(i, clients[i]))


def test_sixteen_concurrent_answers_each_get_their_own(url: str, service: ChatService) -> None:
    def ask(i: int, client: Client) -> dict:
        return client.predict(f"How tall is the lighthouse of {PORTS[i]}?", api_name="/answer")

    answers = burst(url, SESSIONS, ask)
    errors = [a for a in answers if isinstance(a, Exception)]
    assert errors == []
    for i, data in enumerate(answers):
        assert isinstance(data, dict)
        assert data["question"] == f"How tall is the lighthouse of {PORTS[i]}?"
        assert data["answer"] == f"The lighthouse of {PORTS[i]} is {height(i)} metres tall [{data['citations'][0]['n']}]."
        assert [c["doc_id"] for c in data["citations"]] == [PORTS[i].lower()] and data["citations"][0]["supported"]
    assert service.assistants["reader"].generator.most_active == 1  # type: ignore[union-attr]


def test_sixteen_concurrent_conversations_keep_their_own_history(url: str) -> None:
    def converse(i: int, client: Client) -> tuple[str, str]:
        client.predict(f"How tall is the lighthouse of {PORTS[i]}?", api_name="/chat")
        messages, sources, _, _ = client.predict("and when do ferries leave?", api_name="/chat")
        return html.unescape(messages[-1]["content"][0]["text"]), sources

    results = burst(url, SESSIONS, converse)
    assert [r for r in results if isinstance(r, Exception)] == []
    for i, (shown, _sources) in enumerate(results):  # type: ignore[misc]
        searched = re.search(r"Searched for: ([^<]*)", shown)
        assert searched, shown
        assert PORTS[i] in searched.group(1)
        assert not any(p in searched.group(1) for p in PORTS if p != PORTS[i])


def test_a_model_on_a_server_answers_several_sessions_at_once(tmp_path: Path) -> None:
    service = ports_service(tmp_path, model=REMOTE, pause=0.1, concurrency=4)
    with running(service) as url:
        answers = burst(url, SESSIONS, lambda i, client: client.predict(
            f"How tall is the lighthouse of {PORTS[i]}?", api_name="/answer"))
    assert [a for a in answers if isinstance(a, Exception)] == []
    for i, data in enumerate(answers):  # each its own answer, though they ran side by side
        assert data["answer"].startswith(f"The lighthouse of {PORTS[i]} is {height(i)} metres tall")  # type: ignore[index]
    most = service.assistants[REMOTE].generator.most_active  # type: ignore[union-attr]
    assert 2 <= most <= 4  # side by side, never more than the bound (16 arrive at once)


@pytest.mark.parametrize(("model", "most"), [(REMOTE, 3), ("reader", 1)])
def test_the_service_bounds_answers_at_once_by_where_the_model_runs(tmp_path: Path, model: str, most: int) -> None:
    service = ports_service(tmp_path, model=model, pause=0.05, concurrency=3)
    answers = at_once(8, lambda i: service.ask(f"How tall is the lighthouse of {PORTS[i]}?"))
    assert all(not a.refused for a in answers)  # type: ignore[union-attr]
    assert service.assistants[model].generator.most_active == most  # type: ignore[union-attr]


def test_removing_a_document_waits_for_the_answers_that_read_the_index(tmp_path: Path) -> None:
    service = ports_service(tmp_path, model=REMOTE, pause=0.05, concurrency=4)
    reader = service.assistants[REMOTE].generator
    answering = threading.Thread(target=lambda: service.ask("How tall is the lighthouse of Kiel?"))
    answering.start()
    while not reader.active:  # type: ignore[union-attr]
        threading.Event().wait(0.005)
    service.remove("kiel")
    assert reader.active == 0  # type: ignore[union-attr]  # the answer finished before the removal went ahead
    answering.join(5)
    assert "kiel" not in [d.id for d in service.index.documents()]


def test_concurrency_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="concurrency must be >= 1, got 0"):
        ports_service(tmp_path, concurrency=0)


def test_a_waiting_writer_goes_before_later_readers() -> None:
    from rag.serve.service import ReadWriteLock

    lock, order = ReadWriteLock(), []
    first_in = threading.Event()

    def read(name: str, hold: float) -> None:
        with lock.reading():
            first_in.set()
            order.append(name)
            threading.Event().wait(hold)

    def write() -> None:
        with lock.writing():
            order.append("writer")

    early = threading.Thread(target=read, args=("early reader", 0.2))
    early.start()
    first_in.wait(5)
    writer = threading.Thread(target=write)
    writer.start()
    threading.Event().wait(0.05)  # the writer is waiting now
    late = threading.Thread(target=read, args=("late reader", 0.0))
    late.start()
    for t in (early, writer, late):
        t.join(5)
    assert order == ["early reader", "writer", "late reader"]
