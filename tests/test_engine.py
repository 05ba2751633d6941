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
from rag.serve.service import ChatService

from .conftest import SEEDS, FakeEmbedder, run_cli, running
from .fake_models import child_generator, failing_generator

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


def test_a_segfault_in_the_child_is_named(model: ModelProcess) -> None:
    with pytest.raises(GeneratorError, match=r"signal 11: SIGSEGV"):
        list(model.stream(ask("this one will segfault")))
    assert list(model.stream(ask("Who won?")))[0] == "The "


def test_a_call_past_the_time_limit_is_cut_off_and_the_model_restarted() -> None:
    model = ModelProcess((child_generator, ("one two three four five six", 0.4)), "slow", time_limit_s=1.0)
    try:
        assert list(model.stream(ask("warm up"), max_tokens=1)) == ["one "]  # loaded within the limit
        started = time.monotonic()
        with pytest.raises(GeneratorError, match=r"took longer than 1 s and was stopped; restarting it"):
            list(model.stream(ask("Count.")))
        assert time.monotonic() - started < 3
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
    pieces = model.stream(ask("Who won?"))
    assert next(pieces) == "The "
    pieces.close()  # e.g. a client that went away
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
    model.close()
