"""The running app, driven through its API with gradio_client (as another program would)."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402

from rag.answer.assistant import Assistant  # noqa: E402
from rag.serve.feedback import feedback_path  # noqa: E402
from rag.serve.service import MAX_UPLOAD_FILES, ChatService  # noqa: E402

from .conftest import RoutedGenerator, free_port, make_service, running  # noqa: E402

BAKERY = "Which bakery won the sourdough prize?"


@pytest.fixture
def service(tmp_path: Path, tiny_corpus: Path) -> ChatService:
    return make_service(tmp_path, tiny_corpus, pause=0.005)


@pytest.fixture
def url(service: ChatService) -> Iterator[str]:
    with running(service) as url:
        yield url


def test_ask_through_the_api_returns_answer_and_citations(url: str) -> None:
    assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    client = Client(url, verbose=False)
    data = client.predict(BAKERY, api_name="/answer")
    assert data["answer"].startswith("The Miller bakery in Ashford won") and not data["refused"]
    [citation] = data["citations"]
    assert citation["doc_id"] == "bakery" and citation["supported"]
    assert citation["quote"] == "The Miller bakery in Ashford won the national sourdough prize on Friday."
    assert {h["doc_id"] for h in data["retrieved"]} >= {"bakery"}
    refused = client.predict("What does the rye loaf cost?", "", 2, "bm25", api_name="/answer")
    assert refused["refused"] and refused["citations"] == [] and len(refused["retrieved"]) <= 2


def test_chat_endpoint_streams_into_the_window_and_fills_the_sources(url: str) -> None:
    client = Client(url, verbose=False)
    job = client.submit(BAKERY, api_name="/chat")
    messages, sources, question, status = job.result()
    assert len(job.outputs()) > 2  # the answer arrived in pieces before the final rendering
    assert [m["role"] for m in messages] == ["user", "assistant"]
    shown = messages[-1]["content"][0]["text"]
    assert shown.startswith("<p>The Miller bakery in Ashford") and '<sup class="rag-cite">' in shown
    assert '<mark class="rag-quote">The Miller bakery in Ashford won the national sourdough prize on Friday.</mark>' in sources
    assert question == ""


def test_followups_use_this_sessions_history_only(url: str) -> None:
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    alice.predict(BAKERY, api_name="/chat")
    messages, sources, _, _ = alice.predict("and where is it?", api_name="/chat")
    followup = html.unescape(messages[-1]["content"][0]["text"])
    assert "Searched for: Where is it? (about bakery, won, sourdough, prize, Miller, Ashford)" in followup
    assert "rag-quote" in sources
    # Bob never asked about the bakery: his follow-up has nothing to lean on.
    messages, sources, _, _ = bob.predict("and where is it?", api_name="/chat")
    assert "do not contain the answer" in messages[-1]["content"][0]["text"] and "Searched for" not in messages[-1]["content"][0]["text"]


def test_concurrent_sessions_are_queued_and_do_not_mix(url: str, service: ChatService) -> None:
    questions = [BAKERY, "How did the harbour festival open?", "Where did the lava flow?"] * 2
    jobs = [Client(url, verbose=False).submit(q, api_name="/answer") for q in questions]
    answers = [job.result(timeout=120) for job in jobs]
    for q, a in zip(questions, answers):
        assert a["question"] == q
    assert [a["citations"][0]["doc_id"] for a in answers] == ["bakery", "harbour", "volcano"] * 2
    assert service.assistants["routed"].generator.most_active == 1  # type: ignore[union-attr]


def test_feedback_is_saved_with_question_answer_and_citations(url: str) -> None:
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="Ask a question first"):
        client.predict("", api_name="/feedback_down")
    client.predict(BAKERY, api_name="/chat")
    status, comment = client.predict("spot on", api_name="/feedback_up")
    assert "saved" in status and comment == ""
    [record] = [json.loads(line) for line in feedback_path().read_text(encoding="utf-8").splitlines()]
    assert record["rating"] == "up" and record["comment"] == "spot on" and record["question"] == BAKERY
    assert record["answer"].startswith("The Miller bakery") and record["citations"][0]["doc_id"] == "bakery"


def test_documents_can_be_listed_added_and_removed(url: str, tmp_path: Path) -> None:
    client = Client(url, verbose=False)
    assert {row[0] for row in client.predict(api_name="/documents")} == {"volcano", "chess", "bakery", "harbour"}
    new = tmp_path / "glacier.md"
    new.write_text("# Glacier Retreats\n\nThe Rhone glacier lost two metres of ice.", encoding="utf-8")
    status, table, _, _ = client.predict([handle_file(new)], api_name="/add_documents")
    assert status.startswith("1 added") and "glacier" in [row[0] for row in table["data"]]
    status, table, _ = client.predict("glacier", api_name="/remove_document")
    assert status.startswith("removed glacier") and "glacier" not in [row[0] for row in table["data"]]
    many = []
    for i in range(MAX_UPLOAD_FILES + 1):
        many.append(tmp_path / f"n{i}.txt")
        many[-1].write_text("Words.", encoding="utf-8")
    with pytest.raises(Exception, match=f"at most {MAX_UPLOAD_FILES} can be added at a time"):
        client.predict([handle_file(p) for p in many], api_name="/add_documents")
    with pytest.raises(Exception, match="unknown model"):
        client.predict(BAKERY, "/etc/passwd.gguf", api_name="/answer")


def test_a_question_limited_to_documents_and_dates(url: str) -> None:
    client = Client(url, verbose=False)
    data = client.predict(BAKERY, "", 3, "", "", ["chess", "volcano"], "", "", api_name="/answer")
    assert {h["doc_id"] for h in data["retrieved"]} == {"chess", "volcano"}
    data = client.predict(BAKERY, "", 3, "", "", [], "2024-01-01", "", api_name="/answer")
    assert data["retrieved"] == [] and data["refused"]  # no article of the corpus has a date
    with pytest.raises(Exception, match="since must be a date as YYYY-MM-DD"):
        client.predict(BAKERY, "", 3, "", "", [], "01/01/2024", "", api_name="/answer")
    with pytest.raises(Exception, match="no document 'nope'"):
        client.predict(BAKERY, "", 3, "", "", ["nope"], "", "", api_name="/answer")
    # the chat box: the document picker and the two dates beside the question
    _, sources, _, _ = client.submit(BAKERY, docs=["chess"], api_name="/chat").result()
    assert "Chess Olympiad Ends in Budapest" in sources and "Village Bakery Wins Bread Prize" not in sources


class SlowLoading(Assistant):
    """An assistant whose model takes a while to load, like a real one."""

    def load(self):  # type: ignore[no-untyped-def]
        if self.generator is None:
            time.sleep(0.6)
            self.generator = RoutedGenerator()
        return self.generator


def test_a_question_asked_while_the_model_loads_says_so(tmp_path: Path, tiny_corpus: Path) -> None:
    loaded = make_service(tmp_path, tiny_corpus)
    service = ChatService(loaded.index, model="routed", assistants={"routed": SlowLoading(loaded.index, model="routed")})
    assert not service.ready()
    with running(service) as url:
        job = Client(url, verbose=False).submit(BAKERY, api_name="/chat")
        messages, sources, *_ = job.result()
        panels = [output[1] for output in job.outputs()]
    assert "Loading the model routed" in panels[0] and "Searching" not in panels[0]
    assert any("Searching" in p for p in panels[1:])  # then the search, once the model is there
    assert "The Miller bakery in Ashford" in messages[-1]["content"][0]["text"]
    assert service.ready()


def test_switching_the_model_in_settings_loads_it_and_says_when_it_is_ready(tmp_path: Path, tiny_corpus: Path) -> None:
    loaded = make_service(tmp_path, tiny_corpus)
    service = ChatService(loaded.index, model="routed", assistants={"routed": SlowLoading(loaded.index, model="routed")})
    with running(service) as url:
        job = Client(url, verbose=False).submit("routed", api_name="/load_model")
        final = job.result()
        steps = job.outputs()
    assert steps[0] == "Loading routed…" and final.startswith("routed is loaded (")
    assert service.ready()


def test_warm_loads_the_model_and_the_search(tmp_path: Path, tiny_corpus: Path) -> None:
    loaded = make_service(tmp_path, tiny_corpus)
    assistant = SlowLoading(loaded.index, model="routed")
    embedder = loaded.index.embedder
    calls = len(embedder.calls)  # type: ignore[attr-defined]
    timings = assistant.warm()
    assert set(timings) == {"model", "search"} and timings["model"] >= 0.6
    assert assistant.generator is not None
    assert len(embedder.calls) > calls  # type: ignore[attr-defined]  # the query embedder ran once


@pytest.mark.integration
def test_rag_serve_answers_a_seed_question_with_the_real_model(tmp_path: Path) -> None:
    """`rag serve` end to end: the bundled embedder and Qwen model, a real server process, through
    gradio_client and through the official openai client on its /v1 API (streamed and not)."""
    import os
    import subprocess
    import sys
    import time

    import openai

    from rag.search.index import Index

    from .conftest import SEEDS

    Index.open(tmp_path / "index").add([SEEDS])
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--index-dir", str(tmp_path / "index"), "--port", str(port), "--threads", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "RAG_API_KEY": "k3y"},
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 240
        while True:
            try:
                client = Client(url, auth=("me", "k3y"), verbose=False)  # the key closes the window too
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"rag serve did not start:\n{server.stdout.read() if server.stdout else ''}") from None
                time.sleep(2)
        data = client.predict("When did Bernard Quintin visit Doha?", api_name="/answer")
        assert not data["refused"] and "December" in data["answer"], data["answer"]
        assert {c["doc_id"] for c in data["citations"] if c["supported"]} == {"000_309b2881ceff4657"}
        assert data["model"] == "qwen-1.5b"

        api = openai.OpenAI(base_url=f"{url}v1", api_key="k3y", max_retries=0, timeout=120)
        question = [{"role": "user", "content": "Who is the director of the Centre for Cybersecurity Belgium?"}]
        reply = api.chat.completions.create(model="rag", messages=question)
        assert "De Bruycker" in reply.choices[0].message.content and not reply.model_extra["rag"]["refused"]
        assert reply.model_extra["rag"]["citations"][0]["doc_id"] == "004_b9acc8e520016878"
        assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
        chunks = list(api.chat.completions.create(model="rag:qwen-1.5b", messages=question, stream=True))
        assert "De Bruycker" in "".join(c.choices[0].delta.content or "" for c in chunks)
        assert chunks[-1].model_extra["rag"]["citations"]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}v1", api_key="wrong", max_retries=0).models.list()
    finally:
        server.terminate()
        server.wait(timeout=30)
    log = server.stdout.read() if server.stdout else ""
    # the model and the search were warmed, with timings, before the URL was printed
    assert "loading qwen-1.5b (Qwen2.5-Coder-1.5B-Instruct" in log, log
    ready, url_line = log.find("ready to answer after"), log.find(f"127.0.0.1:{port}")
    assert 0 <= ready < url_line, log


def test_a_summary_through_the_windows_api_ends_with_the_checked_summary(url: str) -> None:
    client = Client(url, verbose=False)
    html = client.predict(["bakery"], "routed", "", api_name="/summarize")
    assert '<div class="rag-summary">' in html and "The Miller bakery in Ashford won the national sourdough prize." in html
    assert '<mark class="rag-quote">The Miller bakery in Ashford won the national sourdough prize on Friday.</mark>' in html
    with pytest.raises(Exception, match="choose one document to summarize, or two to compare"):
        client.predict([], "routed", "", api_name="/summarize")
    with pytest.raises(Exception, match="no document 'nope'"):
        client.predict(["nope"], "routed", "", api_name="/summarize")
