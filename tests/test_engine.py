"""The model engine in its own process (rag/generate/process.py): answers stream from the child, and a child
that crashes, is killed or runs too long costs one answer, never the caller.

The child builds a fake generator (tests/fake_models.py); the last tests run the bundled model.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.answer.assistant import Assistant
from rag.core.errors import GeneratorError, InvalidInput
from rag.generate.process import ModelProcess
from rag.search.index import Index
from rag.serve.service import ChatService

from .conftest import SEEDS, FakeEmbedder, run_cli, running
from .fake_models import child_generator, crashing_generator, failing_generator

PREFIX = [{"role": "system", "content": "Answer from the sources."}, {"role": "user", "content": "Sources:"}]


def ask(text: str) -> list[dict[str, str]]:
    return [*PREFIX, {"role": "user", "content": text}]


@pytest.fixture
def model() -> Iterator[ModelProcess]:
    process = ModelProcess((child_generator, ("The Miller bakery won the prize [1].", 0.05)), "child")
    yield process
    process.close()


def kill_after_first_piece(model: ModelProcess, pieces: Iterator[str], sig: int = signal.SIGKILL) -> list[str]:
    """Read ``pieces``, killing the child with ``sig`` once the first one arrived."""
    got = []
    for piece in pieces:
        got.append(piece)
        if len(got) == 1:
            assert model.pid is not None
            os.kill(model.pid, sig)
    return got


def test_the_child_streams_the_reply_and_its_statistics(model: ModelProcess) -> None:
    assert model.prime(PREFIX) is False
    pieces = list(model.stream(ask("Who won?")))
    assert "".join(pieces) == "The Miller bakery won the prize [1]. "
    assert model.stats.tokens == tuple(pieces) and model.stats.cached_tokens == len(PREFIX)
    assert model.next_token_probabilities(ask("Who won?"), ["Yes", "No"]) == [0.9, 0.05]
    assert list(model.stream(ask("Who won?"), max_tokens=2)) == ["The ", "Miller "]
    assert model.restarts == 0


def test_a_child_killed_mid_answer_fails_that_answer_and_a_new_child_answers_the_next(model: ModelProcess) -> None:
    model.prime(PREFIX)
    first_pid = model.pid
    with pytest.raises(GeneratorError, match=r"the model process stopped \(signal 9: SIGKILL\) during the answer; restarting it"):
        kill_after_first_piece(model, model.stream(ask("Who won?")))
    assert model.restarts == 1 and model.pid not in (None, first_pid)  # restarted at once, not at the next call
    assert "".join(model.stream(ask("Who won?"))) == "The Miller bakery won the prize [1]. "
    assert model.stats.cached_tokens == len(PREFIX)  # the new child primed the prefix again


def wait_for_new_child(model: ModelProcess, old_pid: int | None, within_s: float = 10.0) -> int:
    """The pid of the child that replaced ``old_pid``, waiting for the watcher to start it."""
    give_up = time.monotonic() + within_s
    while model.pid in (None, old_pid):
        assert time.monotonic() < give_up, "no new child was started"
        time.sleep(0.02)
    assert model.pid is not None
    return model.pid


def test_a_child_killed_while_idle_is_replaced_at_once_and_the_next_question_is_answered(model: ModelProcess) -> None:
    model.prime(PREFIX)
    first_pid = model.pid
    os.kill(first_pid, signal.SIGKILL)  # type: ignore[arg-type]
    wait_for_new_child(model, first_pid)  # noticed by the watcher, before anyone asked
    assert model.wait_ready(timeout=10)
    assert "".join(model.stream(ask("Who won?"))) == "The Miller bakery won the prize [1]. "
    assert model.stats.cached_tokens == len(PREFIX)  # the new child primed the prefix before answering
    assert model.restarts == 1 and model.retries == 0


def test_a_question_asked_while_the_new_child_loads_waits_for_it() -> None:
    model = ModelProcess((child_generator, ("The Miller bakery won the prize [1].", 0.0, 1.0)), "slow to load")
    try:
        assert model.wait_ready(timeout=10)
        old = model.pid
        os.kill(old, signal.SIGKILL)  # type: ignore[arg-type]
        started = time.monotonic()
        # asked at once: whichever notices the death first (the watcher or this call), no error
        assert "".join(model.stream(ask("Who won?"))) == "The Miller bakery won the prize [1]. "
        assert time.monotonic() - started >= 0.9  # it waited for the new child to load
        assert model.restarts == 1 and model.pid != old
    finally:
        model.close()


def test_a_death_before_the_first_token_is_sent_again_to_the_new_child(model: ModelProcess, tmp_path: Path) -> None:
    marker = tmp_path / "crashed"
    assert "".join(model.stream(ask(f"crash once {marker} Who won?"))) == "The Miller bakery won the prize [1]. "
    assert marker.exists() and model.restarts == 1 and model.retries == 1
    # a judge turn is retried the same way
    assert model.next_token_probabilities(ask(f"crash once {tmp_path / 'judge'} Yes?"), ["Yes", "No"]) == [0.9, 0.05]
    assert model.restarts == 2 and model.retries == 2


def test_a_death_before_the_first_token_is_retried_only_once(model: ModelProcess) -> None:
    with pytest.raises(GeneratorError, match=r"signal 11: SIGSEGV\) during the answer; restarting it"):
        list(model.stream(ask("crash first")))
    assert model.restarts == 2 and model.retries == 1


def test_a_child_that_keeps_dying_is_not_restarted_in_a_loop(model: ModelProcess) -> None:
    with pytest.raises(GeneratorError, match="restarting it"):
        list(model.stream(ask("crash first")))  # two deaths: the first try and its retry
    with pytest.raises(GeneratorError, match=r"^the model process keeps crashing: it stopped 3 times within 60 s \(last: signal 11"):
        list(model.stream(ask("crash first")))
    assert model.pid is None  # no new child
    started = time.monotonic()
    with pytest.raises(GeneratorError, match=r"keeps crashing: .* it will be tried again in \d+ s$"):
        list(model.stream(ask("Who won?")))
    assert time.monotonic() - started < 0.5 and model.pid is None and model.restarts == 2


def test_a_model_that_crashes_while_loading_is_restarted_at_most_twice() -> None:
    model = ModelProcess((crashing_generator, ()), "crashes on load")
    try:
        give_up = time.monotonic() + 30
        while model.restarts < 2 or model.pid is not None:  # the watcher restarts it twice, then stops
            assert time.monotonic() < give_up
            time.sleep(0.05)
        time.sleep(0.5)
        assert model.restarts == 2 and model.pid is None
        with pytest.raises(GeneratorError, match=r"keeps crashing: .*signal 11: SIGSEGV while it was loading"):
            list(model.stream(ask("Who won?")))
    finally:
        model.close()


def test_one_watcher_per_living_child_and_none_after_close(model: ModelProcess) -> None:
    def watched() -> set[str]:
        return {t.name for t in threading.enumerate() if t.name.startswith("rag-model-watch-")}

    pids = [model.pid]
    for _ in range(2):
        os.kill(pids[-1], signal.SIGKILL)  # type: ignore[arg-type]
        pids.append(wait_for_new_child(model, pids[-1]))
        assert model.wait_ready(timeout=10)
    time.sleep(0.2)
    names = {f"rag-model-watch-{pid}" for pid in pids}
    assert watched() & names == {f"rag-model-watch-{pids[-1]}"}
    model.close()
    time.sleep(0.2)
    assert not watched() & names


def test_a_segfault_in_the_child_is_named(model: ModelProcess) -> None:
    with pytest.raises(GeneratorError, match=r"signal 11: SIGSEGV"):
        list(model.stream(ask("this one will segfault")))
    assert list(model.stream(ask("Who won?")))[0] == "The "


def test_a_call_past_the_time_limit_is_cut_off_and_the_model_restarted() -> None:
    model = ModelProcess((child_generator, ("one two three four five six", 0.4)), "slow", time_limit_s=1.0)
    try:
        assert model.wait_ready(30)  # loaded (the limit covers loading: on a busy machine, most of 1 s)
        assert list(model.stream(ask("warm up"), max_tokens=1)) == ["one "]
        started = time.monotonic()
        with pytest.raises(GeneratorError, match=r"took longer than 1 s and was stopped; restarting it"):
            list(model.stream(ask("Count.")))
        assert time.monotonic() - started < 3
        # the restarted child answers, once it is ready (the limit covers waiting for a child that is
        # loading, which on a busy machine can take most of this test's 1 s)
        assert model.wait_ready(30)
        assert list(model.stream(ask("Count."), max_tokens=2)) == ["one ", "two "]
    finally:
        model.close()


def test_the_childs_errors_are_raised_as_they_were_and_the_child_lives_on(model: ModelProcess) -> None:
    pid = model.pid
    with pytest.raises(InvalidInput, match="the fake model refuses this input"):
        list(model.stream(ask("bad input")))
    assert model.pid == pid and model.restarts == 0
    assert "".join(model.stream(ask("Who won?"))).startswith("The Miller")


def test_a_reader_that_stops_early_leaves_nothing_behind_for_the_next_call(model: ModelProcess) -> None:
    assert "".join(model.stream(ask("Who won the prize in the end?")))
    pieces = model.stream(ask("Who won?"))
    assert next(pieces) == "The "
    pieces.close()  # e.g. a client that went away, or a summary part that has its sentences
    assert model.stats is not None and model.stats.prompt_tokens == 2  # the stopped reply's cost, not the last one's
    assert "".join(model.stream(ask("Who won?"), max_tokens=3)) == "The Miller bakery "
    assert model.restarts == 0


def test_a_model_that_cannot_load_is_one_error_each_time_it_is_asked() -> None:
    model = ModelProcess((failing_generator, ()), "broken")
    try:
        for _ in range(2):
            with pytest.raises(GeneratorError, match=r"cannot load the model /nowhere.gguf"):
                list(model.stream(ask("Who won?")))
    finally:
        model.close()


def test_a_time_limit_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="time limit must be > 0"):
        ModelProcess((child_generator, ()), "x", time_limit_s=0)


# ---------------------------------------------------------------------- rag selftest


def test_selftest_of_a_file_that_is_not_a_model_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + os.urandom(256))  # loads as far as llama.cpp's header check, in the child
    code, out, err = run_cli(capsys, "selftest", "--model", str(broken))
    assert code == 1 and out == ""
    assert err.startswith(f"rag: error: {broken} cannot answer on this machine: ") and err.count("\n") == 1
    assert "extra buffer types" in err  # the line says how llama.cpp ran here


def test_selftest_of_a_missing_file_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "selftest", "--model", str(tmp_path / "absent.gguf"))
    assert code == 1 and "absent.gguf" in err and err.count("\n") == 1


@pytest.mark.integration
def test_selftest_answers_with_the_bundled_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "selftest")
    assert code == 0 and out.startswith("selftest: qwen-1.5b answers in its own process ('Paris'")


# ---------------------------------------------------------------------- through the server


def _post(url: str, question: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    body = json.dumps({"model": "rag", "messages": [{"role": "user", "content": question}]}).encode()
    request = urllib.request.Request(f"{url}v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_the_server_answers_the_next_question_after_its_model_process_is_killed(tmp_path: Path, tiny_corpus: Path) -> None:
    from rag.search.index import Index

    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([tiny_corpus])
    model = ModelProcess((child_generator, ("The Miller bakery in Ashford won the national sourdough prize [1].", 0.3)), "child")
    assistant = Assistant(index, model="child", generator=model)
    service = ChatService(index, model="child", assistants={"child": assistant})
    try:
        with running(service) as url:
            pid = model.pid
            assert pid is not None
            killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))  # mid-answer: a word every 0.3 s
            killer.start()
            status, body = _post(url, "Which bakery won the sourdough prize?")
            killer.join()
            assert status == 503, body
            assert "the model process stopped (signal 9: SIGKILL)" in body["error"]["message"]
            status, body = _post(url, "Which bakery won the sourdough prize?")
            assert status == 200, body
            assert "Miller bakery" in body["choices"][0]["message"]["content"]
            assert body["rag"]["refused"] is False
            assert index.documents()  # nothing indexed was touched
    finally:
        model.close()


def _stream_post(url: str, question: str) -> tuple[str, list[str]]:
    """The text of a streamed /v1 answer and any error events in it."""
    body = json.dumps({"model": "rag", "stream": True, "messages": [{"role": "user", "content": question}]}).encode()
    request = urllib.request.Request(f"{url}v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    text, errors = "", []
    with urllib.request.urlopen(request, timeout=60) as response:
        for line in response:
            data = line.decode().strip().removeprefix("data: ")
            if not data or data == "[DONE]":
                continue
            event = json.loads(data)
            if "error" in event:
                errors.append(event["error"]["message"])
            for choice in event.get("choices", ()):
                text += choice.get("delta", {}).get("content") or ""
    return text, errors


def test_no_surface_loses_a_question_when_the_model_process_dies_while_idle(tmp_path: Path, tiny_corpus: Path) -> None:
    from gradio_client import Client
    from mcp import Client as McpClient

    from .test_mcp import run

    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([tiny_corpus])
    reply = "The Miller bakery in Ashford won the national sourdough prize [1]."
    model = ModelProcess((child_generator, (reply, 0.0, 0.5)), "child")  # half a second to load, as a model takes seconds
    model.crash_loop = 5  # four kills within seconds are this test's doing, not a crash loop
    service = ChatService(index, model="child", assistants={"child": Assistant(index, model="child", generator=model)})
    question = "Which bakery won the sourdough prize?"

    def kill_while_idle() -> None:
        assert model.wait_ready(timeout=10)
        os.kill(model.pid, signal.SIGKILL)  # type: ignore[arg-type]

    async def ask_mcp(url: str) -> dict:  # type: ignore[type-arg]
        async with McpClient(f"{url}mcp") as client:
            result = await client.call_tool("ask", {"question": question})
            assert not result.is_error, result
            return result.structured_content  # type: ignore[return-value]

    try:
        with running(service) as url:
            kill_while_idle()
            status, body = _post(url, question)
            assert status == 200 and "Miller bakery" in body["choices"][0]["message"]["content"], body
            kill_while_idle()
            text, errors = _stream_post(url, question)
            assert errors == [] and "Miller bakery" in text
            kill_while_idle()
            messages, _, _, _ = Client(url, verbose=False).predict(question, api_name="/chat")
            assert "Miller bakery" in messages[-1]["content"][0]["text"]
            kill_while_idle()
            assert "Miller bakery" in run(lambda: ask_mcp(url))["answer"]
            assert model.restarts == 4
    finally:
        model.close()


def test_a_server_whose_model_keeps_crashing_says_so_and_still_serves_search_and_documents(tmp_path: Path, tiny_corpus: Path) -> None:
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([tiny_corpus])
    model = ModelProcess((child_generator, ("never said",)), "child")
    service = ChatService(index, model="child", assistants={"child": Assistant(index, model="child", generator=model)})
    try:
        with running(service) as url:
            crash = "Which bakery won the sourdough prize? crash first"
            status, body = _post(url, crash)  # two deaths: the question and its retry
            assert status == 503 and "signal 11: SIGSEGV) during the answer; restarting it" in body["error"]["message"]
            status, body = _post(url, crash)
            assert status == 503 and "the model process keeps crashing: it stopped 3 times within 60 s" in body["error"]["message"]
            status, body = _post(url, "Which bakery won the sourdough prize?")
            assert status == 503 and "keeps crashing" in body["error"]["message"] and "tried again in" in body["error"]["message"]
            assert [hit.doc_id for hit in service.search("sourdough prize", k=1, mode="bm25")] == ["bakery"]
            assert len(service.document_rows()) == len(index.documents())
            with urllib.request.urlopen(f"{url}v1/models", timeout=10) as response:
                assert response.status == 200
    finally:
        model.close()


# ---------------------------------------------------------------------- the bundled model


@pytest.mark.integration
def test_the_bundled_model_in_its_own_process_survives_a_kill(tmp_path: Path) -> None:
    index_dir = tmp_path / "seeds"
    service = ChatService.open(index_dir)
    service.index.add([SEEDS])
    assert service.settings.process  # the service's default
    service.load()
    model = service.assistants[service.model].generator
    assert isinstance(model, ModelProcess)
    question = "When did Bernard Quintin visit Doha?"
    with pytest.raises(GeneratorError, match=r"signal 9: SIGKILL"):
        kill_after_first_piece(model, iter(service.respond(question)))
    answer = service.ask(question)
    assert not answer.refused and "December 6, 2023" in answer.text, answer.raw
    assert answer.tokens is not None and answer.tokens.cached > 200  # the restarted child primed the prefix
    os.kill(model.pid, signal.SIGKILL)  # type: ignore[arg-type]  # while idle: the next question is not lost
    again = service.ask(question)
    assert again.text == answer.text and model.restarts == 2
    model.close()
