"""Any OpenAI-compatible server (llama.cpp server, Ollama, vLLM): ``openai:URL#MODEL``."""

from __future__ import annotations

import json
import logging
import math
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from rag.core.bundled import BUNDLED
from rag.core.errors import GeneratorError, InvalidInput
from rag.core.types import GenerationStats, Message
from rag.generate.base import GenerationSettings, ScoresUnavailable

log = logging.getLogger(__name__)


class OpenAIGenerator:
    """Any OpenAI-compatible ``/v1/chat/completions`` server, streamed over server-sent events.

    The answer's token log-probabilities and the first token's top choices are asked for
    (``logprobs``, ``top_logprobs``), so the trust score and the judge work as with the in-process
    model (:meth:`next_token_probabilities` is one request of one token that repeats the answer's
    conversation; a server that caches prompt prefixes makes it cheap). A server that returns
    none, or refuses the fields, gets plain requests from then on and the word check alone
    decides; it is said once (``scores`` is then False).
    """

    TOP = 10  # top_logprobs asked for: the first token's choices, and the judge's candidates

    def __init__(self, base_url: str, model: str, settings: GenerationSettings = GenerationSettings(), timeout: float = 120) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"OpenAI base URL must start with http:// or https://, got '{base_url}'")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{self.base_url}#{model}"
        self.settings = settings
        self.timeout = timeout
        self.api_key = os.environ.get("OPENAI_API_KEY", "none")
        # A server that serves a bundled model's file under its bundled name (llama_cpp.server
        # --model_alias qwen-1.5b) is scored by that model's fitted verifier; the file's hash cannot
        # be checked over HTTP, so the name is the user's word for it (README, "Models").
        self.serves = model if model in BUNDLED else None
        self.scores: bool | None = None  # whether the server returns log-probabilities (None: not yet known)
        self.stats: GenerationStats | None = None

    def _post(self, body: dict[str, Any]) -> Any:
        """The open response to ``body``; with log-probabilities asked for unless the server
        refused them before (an HTTP 400 to them: asked once more without)."""
        def send(payload: dict[str, Any]) -> Any:
            request = urllib.request.Request(
                f"{self.base_url}/chat/completions", data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
            )
            return urllib.request.urlopen(request, timeout=self.timeout)

        try:
            if self.scores is False:
                return send(body)
            try:
                return send({**body, "logprobs": True, "top_logprobs": self.TOP})
            except urllib.error.HTTPError as e:
                if e.code != 400:
                    raise
                self._no_scores("it refused the logprobs fields")
                return send(body)
        except urllib.error.HTTPError as e:
            raise GeneratorError(f"{self.base_url} answered HTTP {e.code}: {e.read()[:200]!r}") from None
        except (urllib.error.URLError, OSError) as e:
            raise GeneratorError(f"cannot reach the OpenAI-compatible server at {self.base_url}: {e}") from None

    def _no_scores(self, why: str) -> None:
        if self.scores is not False:
            log.warning("the server at %s returns no token log-probabilities (%s): answers are checked by "
                        "their words alone, with no trust score", self.base_url, why)
        self.scores = False

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens or self.settings.max_tokens,
                "temperature": self.settings.temperature, "stream": True}
        self.stats = None
        pieces: list[str] = []
        entries: list[dict[str, Any]] = []  # the logprobs of each generated token, as the server sent them
        with self._post(body) as response:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                choice = (json.loads(data).get("choices") or [{}])[0]
                entries.extend(((choice.get("logprobs") or {}).get("content")) or [])
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    pieces.append(piece)
                    yield piece
        if entries:
            self.scores = True
            first = tuple((str(t.get("token", "")), math.exp(float(t["logprob"]))) for t in entries[0].get("top_logprobs") or [])
            self.stats = GenerationStats(0, 0, tuple(str(e.get("token", "")) for e in entries),
                                         tuple(float(e["logprob"]) for e in entries), first)
        elif pieces and self.scores is None:
            self._no_scores("none came with the answer")

    def next_token_probabilities(self, messages: list[Message], candidates: Sequence[str]) -> list[float]:
        """From the top log-probabilities of a one-token reply: each candidate's probability (0 when
        it is not among them). Raises :class:`ScoresUnavailable` when the server gives none."""
        if self.scores is False:
            raise ScoresUnavailable(self.base_url)
        body = {"model": self.model, "messages": messages, "max_tokens": 1, "temperature": 0.0, "stream": False}
        with self._post(body) as response:
            reply = json.loads(response.read())
        content = (((reply.get("choices") or [{}])[0].get("logprobs")) or {}).get("content") or []
        if not content:
            self._no_scores("none came with the judge's reply")
            raise ScoresUnavailable(self.base_url)
        top: dict[str, float] = {}
        for t in content[0].get("top_logprobs") or []:
            top.setdefault(str(t.get("token", "")), math.exp(float(t["logprob"])))
        return [top.get(c, 0.0) for c in candidates]
