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

from rag.answering import Assistant  # noqa: E402
from rag.index import Index  # noqa: E402
from rag.ui import ChatService  # noqa: E402

from .conftest import FakeEmbedder  # noqa: E402
from .test_ui_app import running  # noqa: E402

SESSIONS = 16
PORTS = ["Aberdeen", "Bilbao", "Cadiz", "Dover", "Esbjerg", "Faro", "Genoa", "Hamburg",
         "Izmir", "Juneau", "Kiel", "Lisbon", "Marseille", "Naples", "Oslo", "Porto"]  # fmt: skip


def height(i: int) -> int:
    return 20 + 7 * i


class PromptReader:
    """Answers "How tall is the lighthouse of X?" with the source sentence about X, cited."""

    name = "reader"

    def __init__(self) -> None:
        self.active = 0
        self.most_active = 0

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        prompt = messages[-1]["content"]
        place = re.search(r"lighthouse of (\w+)\?", prompt.rsplit("Question:", 1)[-1])
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            reply = "I don't know."
            for m in re.finditer(r"\[(\d+)\][^\n]*?(The lighthouse of (\w+) is \d+ metres tall\.)", prompt):
                if place and m.group(3) == place.group(1):
                    reply = f"{m.group(2)[:-1]} [{m.group(1)}]."
            for word in reply.split(" "):
                threading.Event().wait(0.002)
                yield word + " "
        finally:
            self.active -= 1


@pytest.fixture
def service(tmp_path: Path) -> ChatService:
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
    assistant = Assistant(index, model="reader", generator=PromptReader())
    return ChatService(index, model="reader", assistants={"reader": assistant}, upload_dir=tmp_path / "uploads")


@pytest.fixture
def url(service: ChatService) -> Iterator[str]:
    with running(service) as url:
        yield url


def burst(url: str, n: int, work) -> list[object]:  # type: ignore[no-untyped-def]
    """Run ``work(i, client)`` for ``n`` sessions at the same moment; results in order."""
    clients = [Client(url, verbose=False) for _ in range(n)]
    results: list[object] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i, clients[i])
        except Exception as e:  # noqa: BLE001 - the test reports it
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


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
