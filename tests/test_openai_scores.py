"""The OpenAI-compatible backend reads log-probabilities when the server gives them, and falls
back to the word check, said once, when it does not (a fake server on loopback)."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.answer.judging import Judge
from rag.generate.base import ScoresUnavailable
from rag.generate.remote import OpenAIGenerator


def serve(mode: str) -> tuple[ThreadingHTTPServer, list[dict]]:
    """A chat-completions server: ``scores`` returns logprobs, ``plain`` ignores them, ``refuse``
    answers HTTP 400 to a request asking for them."""
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            if mode == "refuse" and "logprobs" in body:
                self.send_response(400)
                self.end_headers()
                self.wfile.write(b'{"error": "logprobs not supported"}')
                return
            scored = mode == "scores" and body.get("logprobs")
            top = [{"token": "Yes", "logprob": math.log(0.7)}, {"token": "No", "logprob": math.log(0.2)},
                   {"token": "yes", "logprob": math.log(0.05)}]
            if not body["stream"]:
                logprobs = {"content": [{"token": "Yes", "logprob": math.log(0.7), "top_logprobs": top}]} if scored else None
                reply = {"choices": [{"message": {"role": "assistant", "content": "Yes"}, "logprobs": logprobs}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for token, p in (("Paris", 0.9), (" [1]", 0.8), (".", 0.95)):
                choice = {"delta": {"content": token}}
                if scored:
                    choice["logprobs"] = {"content": [{"token": token, "logprob": math.log(p), "top_logprobs": top}]}
                self.wfile.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, bodies


@pytest.fixture
def generator(request: pytest.FixtureRequest) -> Iterator[tuple[OpenAIGenerator, list[dict]]]:
    server, bodies = serve(request.param)
    try:
        yield OpenAIGenerator(f"http://127.0.0.1:{server.server_port}/v1", "m", timeout=5), bodies
    finally:
        server.shutdown()


MESSAGES = [{"role": "user", "content": "Capital of France?"}]


@pytest.mark.parametrize("generator", ["scores"], indirect=True)
def test_the_answers_log_probabilities_and_first_choices_are_read(generator: tuple[OpenAIGenerator, list[dict]]) -> None:
    gen, bodies = generator
    assert "".join(gen.stream(MESSAGES)) == "Paris [1]."
    assert bodies[0]["logprobs"] is True and bodies[0]["top_logprobs"] == OpenAIGenerator.TOP
    assert gen.stats is not None and gen.scores is True
    assert gen.stats.tokens == ("Paris", " [1]", ".")
    assert gen.stats.token_logprobs == pytest.approx((math.log(0.9), math.log(0.8), math.log(0.95)))
    assert dict(gen.stats.first_choices)["Yes"] == pytest.approx(0.7)
    assert gen.next_token_probabilities(MESSAGES, ("Yes", "yes", "No", "no")) == pytest.approx([0.7, 0.05, 0.2, 0.0])
    assert bodies[-1]["max_tokens"] == 1 and bodies[-1]["stream"] is False
    judge = Judge(gen, [*MESSAGES, {"role": "assistant", "content": "Paris [1]."}], "Capital of France?")
    assert judge("Paris", 1, "Paris is the capital of France.") == pytest.approx(0.75 / 0.95)


@pytest.mark.parametrize("generator", ["plain", "refuse"], indirect=True)
def test_a_server_without_log_probabilities_gets_the_word_check_said_once(
    generator: tuple[OpenAIGenerator, list[dict]], caplog: pytest.LogCaptureFixture
) -> None:
    gen, bodies = generator
    with caplog.at_level(logging.WARNING, logger="rag.generate.remote"):
        assert "".join(gen.stream(MESSAGES)) == "Paris [1]."
        assert "".join(gen.stream(MESSAGES)) == "Paris [1]."
    assert gen.stats is None and gen.scores is False
    said = [r.getMessage() for r in caplog.records if "log-probabilities" in r.getMessage()]
    assert len(said) == 1 and "word" in said[0]
    assert "logprobs" not in bodies[-1]  # asked plainly from then on
    with pytest.raises(ScoresUnavailable):
        gen.next_token_probabilities(MESSAGES, ("Yes", "No"))
    judge = Judge(gen, MESSAGES, "Capital of France?")
    assert judge("Paris", 1, "Paris is the capital.") is None  # the lexical check decides
