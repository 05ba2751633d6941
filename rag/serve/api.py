"""The assistant as an OpenAI-compatible model: ``GET /v1/models`` and ``POST /v1/chat/completions``.

``rag serve`` mounts these routes beside the chat window, so any OpenAI client or chat front
end can use the assistant as the model ``rag`` (the served generator) or ``rag:<generator>``.
A reply's message content is the checked answer with its ``[n]`` markers; what the chat window
shows beside it travels in the extra top-level field ``rag`` (and in the last stream chunk):
the citations (doc id, title, quote, offsets, supported, page), ``refused`` and its reason, and
the standalone question that was searched. Earlier messages of the conversation resolve a
follow-up the way the chat window does (:func:`rag.answer.conversation.resolve_followup`). A request
may carry a ``rag`` field too, to limit the question to some documents and dates:
``"rag": {"docs": ["report-2024"], "since": "2024-01-01", "until": "2024-06-30"}`` (all optional;
:class:`rag.core.types.Scope`).

Streaming sends the model's words as it writes them; the checks run after the last word, so
when they withhold the answer a final piece says so (``refused`` is then true in ``rag``).
Clients that must never show an unchecked word ask without ``stream``.

Everything but the routing is plain functions over :class:`rag.serve.service.ChatService`, so the
request checks and the response shapes are tested without HTTP.

Example:
    >>> from openai import OpenAI                                          # doctest: +SKIP
    >>> client = OpenAI(base_url="http://127.0.0.1:7860/v1", api_key="unused")  # doctest: +SKIP
    >>> client.chat.completions.create(model="rag", messages=[{"role": "user",  # doctest: +SKIP
    ...     "content": "When did Bernard Quintin visit Doha?"}]).choices[0].message.content
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# FastAPI (installed with gradio) reads the handlers' annotations, so Request is imported here.
from fastapi import FastAPI, Request

from rag.answer.assistant import REFUSAL_TEXT, Answer
from rag.answer.conversation import Turn, resolve_followup
from rag.core.errors import GeneratorError, InvalidInput, NotFound
from rag.core.types import Scope

if TYPE_CHECKING:
    from rag.serve.service import ChatService

log = logging.getLogger(__name__)
MODEL = "rag"
ROLES = {"system", "developer", "user", "assistant", "tool"}


class ApiError(Exception):
    """A request the API refuses, as OpenAI's error object with an HTTP status."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.param, self.kind = status, param, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": None}}


def unavailable(error: GeneratorError) -> ApiError:
    """The model cannot answer now (its process stopped and is restarting): 503, logged as one line."""
    log.error("answering through /v1 failed: %s", error)
    return ApiError(f"the assistant failed: {error}", 503, kind="server_error")


@dataclass(frozen=True)
class ChatRequest:
    """A checked ``/v1/chat/completions`` request."""

    model_id: str  # as the client named it: "rag", "rag:<generator>", "rag/<collection>[:<generator>]"
    model: str  # the generator that answers
    question: str  # the last user message
    searched: str  # the standalone question a follow-up was rewritten to
    stream: bool
    collection: str | None = None  # None: the service's first
    scope: Scope | None = None  # the request's "rag" field: only these documents and dates


def model_ids(service: ChatService, collections: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """The model names the API accepts for ``collections`` (default: all served), each with the
    collection and generator it means: ``rag`` (the first collection) or ``rag/<collection>``,
    then ``:<generator>`` per offered generator."""
    ids: dict[str, tuple[str, str]] = {}
    for name in service.collections() if collections is None else collections:
        base = MODEL if name == service.collection else f"{MODEL}/{name}"
        ids[base] = (name, service.model)
        ids.update({f"{base}:{m}": (name, m) for m in service.models()})
    return ids


def list_models(service: ChatService, collections: list[str] | None = None) -> dict[str, Any]:
    """The body of ``GET /v1/models``: the models of the collections the caller may open."""
    created = int(time.time())
    return {"object": "list", "data": [{"id": m, "object": "model", "created": created, "owned_by": "rag"}
                                       for m in model_ids(service, collections)]}


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    if content is None:
        return ""
    raise ApiError(f"{where}.content must be a string or a list of content parts", param=f"{where}.content")


def parse_request(body: Any, service: ChatService, collections: list[str] | None = None) -> ChatRequest:
    """Check a request body from a caller who may open ``collections`` (default: all); raise
    :class:`ApiError`: 400 for what cannot be answered, 403 for a model of a collection the
    caller may not open (the same words whether it exists or not)."""
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object")
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise ApiError("'model' is required: use 'rag' or one of GET /v1/models", param="model")
    offered = model_ids(service, collections)
    if model_id not in offered:
        if collections is not None and set(collections) != set(service.collections()):  # some are hidden from it
            raise ApiError(f"this key does not open the model '{model_id}'; GET /v1/models lists those it opens",
                           403, param="model", kind="permission_error")
        raise ApiError(f"unknown model '{model_id}'; this server offers {', '.join(offered)}", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError("'messages' must be a non-empty list", param="messages")
    texts: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ApiError(f"messages[{i}] needs a 'role' of {', '.join(sorted(ROLES))}", param=f"messages[{i}]")
        texts.append((str(message["role"]), _text(message.get("content"), f"messages[{i}]")))
    role, question = texts[-1]
    if role != "user" or not question.strip():
        raise ApiError("the last message must be a user message with a question", param="messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError("'stream' must be true or false", param="stream")
    collection, model = offered[model_id]
    return ChatRequest(model_id, model, question, resolve_followup(question, _turns(texts[:-1])), stream, collection,
                       _scope(body.get(MODEL)))


SCOPE_FIELDS = ("docs", "since", "until")


def _scope(field: Any) -> Scope | None:
    """The request's ``rag`` field as a :class:`Scope` (None when absent); 400 when malformed."""
    if field is None:
        return None
    example = '{"docs": ["DOC_ID"], "since": "2024-01-01", "until": "2024-12-31"}'
    if not isinstance(field, dict):
        raise ApiError(f"'{MODEL}' must be an object such as {example}", param=MODEL)
    if unknown := sorted(set(field) - set(SCOPE_FIELDS)):
        raise ApiError(f"unknown field '{MODEL}.{unknown[0]}'; '{MODEL}' takes {', '.join(SCOPE_FIELDS)}",
                       param=f"{MODEL}.{unknown[0]}")
    docs = field.get("docs") or []
    if not isinstance(docs, list) or not all(isinstance(d, str) and d for d in docs):
        raise ApiError(f"'{MODEL}.docs' must be a list of document ids", param=f"{MODEL}.docs")
    for name in ("since", "until"):
        if not isinstance(field.get(name), (str, type(None))):
            raise ApiError(f"'{MODEL}.{name}' must be a date as YYYY-MM-DD", param=f"{MODEL}.{name}")
    try:
        return Scope(tuple(docs), field.get("since"), field.get("until"))
    except InvalidInput as e:
        raise ApiError(f"'{MODEL}': {e}", param=MODEL) from None


def _turns(texts: list[tuple[str, str]]) -> list[Turn]:
    """Earlier user questions, each with the assistant reply that followed it."""
    turns: list[Turn] = []
    for (role, text), (next_role, reply) in zip(texts, texts[1:] + [("", "")]):
        if role == "user" and next_role == "assistant":
            turns.append(Turn(question=text, answer=reply, refused=reply.strip().startswith(REFUSAL_TEXT)))
    return turns


def extra(answer: Answer, request: ChatRequest) -> dict[str, Any]:
    """The ``rag`` field: what the chat window shows beside the answer."""
    shown = answer.to_dict()
    return {"citations": shown["citations"], "refused": answer.refused, "refusal_reason": answer.refusal_reason,
            "conflicts": shown["conflicts"], "withheld": shown["withheld"], "retry": shown["retry"], "question": request.searched}


def _usage(answer: Answer) -> dict[str, int]:
    """OpenAI's token counts: the whole prompt (cached prefix included) and the answer; 0 when no
    model ran (an early refusal) or the backend does not count."""
    t = answer.tokens
    prompt, completion = (t.prompt + t.cached, t.answer) if t is not None else (0, 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(answer: Answer, request: ChatRequest) -> dict[str, Any]:
    """The body of a non-streamed ``/v1/chat/completions`` reply."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": request.model_id,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}],
        "usage": _usage(answer), MODEL: extra(answer, request),
    }


def stream_chunks(pieces: Iterable[str], answer: Callable[[], Answer], request: ChatRequest) -> Iterator[str]:
    """Server-sent events of a streamed reply: the model's words (``pieces``), then a last chunk
    with the ``rag`` field of the checked ``answer()`` and ``finish_reason``, then ``data: [DONE]``."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": request.model_id}

    def event(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    streamed = ""
    try:
        for piece in pieces:
            streamed += piece
            yield event({"content": piece})
        final = answer()
    except GeneratorError as e:  # the model stopped mid-answer: an error event, as OpenAI's API sends one
        yield f"data: {json.dumps(unavailable(e).body())}\n\n"
        yield "data: [DONE]\n\n"
        return
    if final.refused and streamed.strip() and streamed.strip() != REFUSAL_TEXT:
        # the words already sent did not pass the checks: say so in the text itself
        yield event({"content": f"\n\n{REFUSAL_TEXT} (withheld: {final.refusal_reason})"})
    elif after := final.after_stream():  # the sources disagree: say so after the model's words
        yield event({"content": f"\n\n{after}"})
    yield event({}, "stop", usage=_usage(final), **{MODEL: extra(final, request)})
    yield "data: [DONE]\n\n"


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def opened(service: ChatService, header: str | None) -> list[str]:
    """The collections the request's key opens; :class:`ApiError` 401 when the server is closed
    and the key opens none."""
    collections = service.keys.opens(bearer(header), service.collections())
    if service.keys.closed and not collections:
        raise ApiError("a valid API key is required: send it as 'Authorization: Bearer KEY'", 401,
                       kind="authentication_error")
    return collections


def mount(app: FastAPI, service: ChatService) -> None:
    """Add the ``/v1`` routes to ``app`` (the chat window's own FastAPI app), behind ``service.keys``."""
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool

    def refuse(error: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse(error.body(), status_code=error.status, headers=headers)

    def models(request: Request) -> Any:
        try:
            collections = opened(service, request.headers.get("authorization"))
        except ApiError as e:
            return refuse(e)
        return JSONResponse(list_models(service, collections))

    async def chat(request: Request) -> Any:
        try:
            collections = opened(service, request.headers.get("authorization"))
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise ApiError("the request body is not valid JSON") from None
            parsed = parse_request(body, service, collections)
            # a bad question raises here
            response = service.respond(parsed.searched, model=parsed.model, collection=parsed.collection,
                                       scope=parsed.scope)
            # The answer's work blocks (search, the model), so it runs off the event loop. The
            # first piece is awaited here so a model that fails to load is a 500, not a broken stream.
            pieces = iter(response)
            first = await run_in_threadpool(next, pieces, None)
        except ApiError as e:
            return refuse(e)
        except (ValueError, NotFound) as e:  # the question itself (empty after cleaning, too long), a document not held
            return refuse(ApiError(str(e), param=f"{MODEL}.docs" if isinstance(e, NotFound) else None))
        except GeneratorError as e:  # the model cannot answer now (its process stopped and restarts)
            return refuse(unavailable(e))
        except Exception as e:  # noqa: BLE001 - the model failed to load or answer: still an OpenAI error object
            log.exception("answering through /v1 failed")
            return refuse(ApiError(f"the assistant failed: {e}", 500, kind="server_error"))
        if parsed.stream:  # Starlette reads a plain iterator in its thread pool
            text = itertools.chain([] if first is None else [first], pieces)
            return StreamingResponse(stream_chunks(text, response.answer, parsed), media_type="text/event-stream")
        try:
            answer = await run_in_threadpool(response.answer)
        except GeneratorError as e:  # as above
            return refuse(unavailable(e))
        except Exception as e:  # noqa: BLE001 - as above
            log.exception("answering through /v1 failed")
            return refuse(ApiError(f"the assistant failed: {e}", 500, kind="server_error"))
        return JSONResponse(completion(answer, parsed))

    app.add_api_route("/v1/models", models, methods=["GET"])
    app.add_api_route("/v1/chat/completions", chat, methods=["POST"])


