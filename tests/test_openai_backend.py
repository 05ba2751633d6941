"""Integration: the OpenAI-compatible backend against a real llama.cpp server on loopback.

The server is llama-cpp-python's own (the ``server`` extra), started as ``python -m rag.generate.runtime
server`` so that it loads the model as the project does on every CPU (rag/generate/runtime.py: no AMX
buffer where it crashes), serving the bundled Qwen 1.5B GGUF; the assistant talks to it only
over HTTP.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.answer.assistant import Assistant
from rag.core.bundled import gguf_path
from rag.core.errors import GeneratorError
from rag.evaluate.metrics import is_correct
from rag.generate.base import GenerationSettings
from rag.generate.registry import load_generator
from rag.generate.remote import OpenAIGenerator
from rag.search.index import Index

from .conftest import SEEDS

pytestmark = pytest.mark.integration

ALIAS = "qwen-1.5b"  # the bundled name: the fitted verifier scores its answers (issue 29)
STARTUP_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [
        sys.executable, "-m", "rag.generate.runtime", "server", "--model", str(gguf_path("qwen-1.5b")),
        "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "2", "--verbose", "False",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    assert ALIAS in {m["id"] for m in json.load(r)["data"]}
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not start in {STARTUP_TIMEOUT_S} s")
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def assistant(server: str, tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    index = Index.open(tmp_path_factory.mktemp("seeds") / "index")
    index.add([SEEDS])
    return Assistant(index, model=f"openai:{server}#{ALIAS}", settings=GenerationSettings(threads=2))


def test_streams_text_from_the_server(server: str) -> None:
    generator = load_generator(f"openai:{server}#{ALIAS}")
    assert isinstance(generator, OpenAIGenerator)
    pieces = list(generator.stream([{"role": "user", "content": "Reply with the word: yes"}], max_tokens=5))
    assert len(pieces) >= 1 and "yes" in "".join(pieces).lower()


def test_answers_a_seed_question_with_a_checked_citation(assistant: Assistant) -> None:
    answer = assistant.ask("When did Bernard Quintin visit Doha?")
    assert not answer.refused, answer.raw
    assert answer.model.startswith("openai:")
    assert is_correct(answer.text, {"answers": ["December 6, 2023"]}), answer.text
    assert {c.doc_id for c in answer.citations if c.supported} == {"000_309b2881ceff4657"}
    assert answer.timings.first_token_s is not None
    # issue 29: the server's log-probabilities give the trust score, and the judge runs over HTTP
    assert answer.trust is not None and answer.trust.score is not None, answer.trust
    assert answer.trust.signals.support is not None and answer.trust.signals.confidence is not None
    assert answer.trust.scorer == "verifier"


def test_refuses_through_the_server_too(assistant: Assistant) -> None:
    answer = assistant.ask("What is the total budget allocated to Belgium's Cyber Security Strategy 2.0?")
    assert answer.refused and answer.citations == (), answer.raw


def test_an_unreachable_server_is_one_clear_error() -> None:
    generator = OpenAIGenerator(f"http://127.0.0.1:{_free_port()}/v1", ALIAS, timeout=5)
    with pytest.raises(GeneratorError, match="cannot reach"):
        list(generator.stream([{"role": "user", "content": "hi"}]))


def test_cli_reports_an_unreachable_server_in_one_line(tmp_path: Path) -> None:
    index = Index.open(tmp_path / "index")
    index.add([SEEDS])
    url = f"http://127.0.0.1:{_free_port()}/v1"
    done = subprocess.run(
        [sys.executable, "-m", "rag", "ask", "When did Bernard Quintin visit Doha?", "--index-dir", str(tmp_path / "index"),
         "--model", f"openai:{url}#{ALIAS}"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rag: error: cannot reach the OpenAI-compatible server at {url}")
