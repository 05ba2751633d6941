"""The OpenAI-compatible /v1 API: through the official openai client against a running server,
and as raw HTTP for the errors (status codes and OpenAI's error object)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gradio")
openai = pytest.importorskip("openai")

from rag.answer.assistant import REFUSAL_TEXT, Assistant  # noqa: E402
from rag.core.types import Scope  # noqa: E402
from rag.serve.api import ApiError, model_ids, parse_request  # noqa: E402
from rag.serve.app import launch  # noqa: E402
from rag.serve.service import ChatService  # noqa: E402

from .conftest import RoutedGenerator, free_port, make_service  # noqa: E402

BAKERY = "Which bakery won the sourdough prize?"
KEY = "s3cret-key"


@pytest.fixture
def service(tmp_path: Path, tiny_corpus: Path) -> ChatService:
    return make_service(tmp_path, tiny_corpus)


@pytest.fixture
def url(service: ChatService) -> Iterator[str]:
    app, url = launch(service, port=free_port(), block=False, api_key=KEY)
    try:
        yield url.rstrip("/")
    finally:
        app.close()


def client(url: str, key: str = KEY) -> Any:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)


def post(url: str, body: Any, key: str | None = KEY, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# ---------------------------------------------------------------------- through the openai client


def test_models_and_an_answer_with_its_citations(url: str) -> None:
    c = client(url)
    assert [m.id for m in c.models.list().data][:3] == ["rag", "rag:routed", "rag:qwen-1.5b"]
    reply = c.chat.completions.create(model="rag", messages=[{"role": "user", "content": BAKERY}])
    assert reply.choices[0].message.content == "The Miller bakery in Ashford won the national sourdough prize [1]."
    assert reply.choices[0].finish_reason == "stop" and reply.model == "rag"
    extra = reply.model_extra["rag"]
    assert not extra["refused"] and extra["question"] == BAKERY
    [citation] = extra["citations"]
    assert citation["doc_id"] == "bakery" and citation["supported"] and citation["page"] is None
    assert citation["quote"] == "The Miller bakery in Ashford won the national sourdough prize on Friday."


def test_streamed_answer_arrives_in_pieces_and_ends_with_the_citations(url: str) -> None:
    chunks = list(client(url).chat.completions.create(
        model="rag:routed", messages=[{"role": "user", "content": BAKERY}], stream=True,
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.strip() == "The Miller bakery in Ashford won the national sourdough prize [1]."
    assert len([c for c in chunks if c.choices[0].delta.content]) > 3  # word by word, not at the end
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["rag"]["citations"][0]["doc_id"] == "bakery"


def test_the_rag_field_limits_the_question_to_documents_and_dates(url: str) -> None:
    c = client(url)
    ask = [{"role": "user", "content": BAKERY}]
    reply = c.chat.completions.create(model="rag", messages=ask, extra_body={"rag": {"docs": ["bakery", "chess"]}})
    assert [cite["doc_id"] for cite in reply.model_extra["rag"]["citations"]] == ["bakery"]
    reply = c.chat.completions.create(model="rag", messages=ask, extra_body={"rag": {"docs": ["chess"]}})
    assert "bakery" not in {cite["doc_id"] for cite in reply.model_extra["rag"]["citations"]}
    reply = c.chat.completions.create(model="rag", messages=ask, extra_body={"rag": {"since": "2030-01-01"}})
    extra = reply.model_extra["rag"]
    assert extra["refused"] and extra["refusal_reason"] == "no relevant passage"  # no article is dated so late


def test_earlier_messages_resolve_a_follow_up(url: str) -> None:
    messages = [
        {"role": "user", "content": "Where did the lava flow after Mount Etna erupted?"},
        {"role": "assistant", "content": "Lava flowed down the eastern slope [1]."},
        {"role": "user", "content": "When did it reach the sea?"},
    ]
    reply = client(url).chat.completions.create(model="rag", messages=messages)
    searched = reply.model_extra["rag"]["question"]
    assert searched != "When did it reach the sea?" and "Etna" in searched  # rewritten with the previous turn


def test_a_withheld_streamed_answer_says_so(service: ChatService) -> None:
    echo = RoutedGenerator(replies={"bakery": "Which bakery won the sourdough prize?"})
    service.assistants["echo"] = Assistant(service.index, model="echo", generator=echo)
    app, url = launch(service, port=free_port(), block=False)
    try:
        chunks = list(client(url.rstrip("/"), key="anything").chat.completions.create(
            model="rag:echo", messages=[{"role": "user", "content": BAKERY}], stream=True,
        ))
    finally:
        app.close()
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith("Which bakery won") and f"{REFUSAL_TEXT} (withheld: " in text
    assert chunks[-1].model_extra["rag"]["refused"] and chunks[-1].model_extra["rag"]["citations"] == []
    withheld = chunks[-1].model_extra["rag"]["withheld"]
    assert withheld["text"].startswith("Which bakery won") and withheld["reason"] == chunks[-1].model_extra["rag"]["refusal_reason"]


def test_a_wrong_or_missing_key_is_refused(url: str) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(url, key="wrong").chat.completions.create(model="rag", messages=[{"role": "user", "content": BAKERY}])
    with pytest.raises(openai.AuthenticationError):
        client(url, key="wrong").models.list()
    status, body = post(url, {"model": "rag", "messages": [{"role": "user", "content": BAKERY}]}, key=None)
    assert status == 401 and body["error"]["type"] == "authentication_error"


# ---------------------------------------------------------------------- raw HTTP: bad requests are 400s


@pytest.mark.parametrize(("body", "message"), [
    ({"model": "rag"}, "'messages' must be a non-empty list"),
    ({"model": "rag", "messages": []}, "'messages' must be a non-empty list"),
    ({"model": "rag", "messages": [{"role": "user", "content": "   "}]}, "the last message must be a user message"),
    ({"model": "rag", "messages": [{"role": "user", "content": BAKERY}, {"role": "assistant", "content": "x"}]},
     "the last message must be a user message"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": BAKERY}]}, "unknown model 'gpt-4o'; this server offers rag, rag:routed"),
    ({"model": "rag:/etc/passwd", "messages": [{"role": "user", "content": BAKERY}]}, "unknown model 'rag:/etc/passwd'"),
    ({"messages": [{"role": "user", "content": BAKERY}]}, "'model' is required"),
    ({"model": "rag", "messages": [{"role": "wizard", "content": BAKERY}]}, "messages[0] needs a 'role'"),
    ({"model": "rag", "messages": [{"role": "user", "content": 42}]}, "messages[0].content must be a string"),
    ({"model": "rag", "messages": [{"role": "user", "content": "x" * 1001}]}, "limit is 1000"),
    ({"model": "rag", "messages": [{"role": "user", "content": BAKERY}], "stream": "yes"}, "'stream' must be true or false"),
    ([1, 2], "the request body must be a JSON object"),
    ({"model": "rag", "messages": [{"role": "user", "content": BAKERY}], "rag": ["bakery"]}, "'rag' must be an object"),
    ({"model": "rag", "messages": [{"role": "user", "content": BAKERY}], "rag": {"doc": ["bakery"]}},
     "unknown field 'rag.doc'; 'rag' takes docs, since, until"),
    ({"model": "rag", "messages": [{"role": "user", "content": BAKERY}], "rag": {"docs": "bakery"}},
     "'rag.docs' must be a list of document ids"),
    ({"model": "rag", "messages": [{"role": "user", "content": BAKERY}], "rag": {"docs": ["bakery", "nope"]}},
     "no document 'nope'"),
    ({"model": "rag", "messages": [{"role": "user", "content": BAKERY}], "rag": {"since": "last week"}},
     "since must be a date as YYYY-MM-DD, got 'last week'"),
    ({"model": "rag", "messages": [{"role": "user", "content": BAKERY}], "rag": {"until": 2024}}, "'rag.until' must be a date"),
    ({"model": "rag", "messages": [{"role": "user", "content": BAKERY}], "rag": {"since": "2024-02-01", "until": "2024-01-01"}},
     "since (2024-02-01) is after until (2024-01-01)"),
])
def test_bad_requests_get_the_openai_error_object(url: str, body: Any, message: str) -> None:
    status, reply = post(url, body)
    assert status == 400, reply
    assert set(reply) == {"error"} and reply["error"]["type"] == "invalid_request_error"
    assert message in reply["error"]["message"]


def test_a_body_that_is_not_json_is_a_400(url: str) -> None:
    status, reply = post(url, None, raw=b"{not json")
    assert status == 400 and reply["error"]["message"] == "the request body is not valid JSON"


# ---------------------------------------------------------------------- without HTTP


def test_parse_request_accepts_content_parts_and_names_the_generator(service: ChatService) -> None:
    body = {"model": "rag:qwen-0.5b", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Which bakery"}, {"type": "text", "text": " won?"}]},
    ]}
    request = parse_request(body, service)
    assert (request.model, request.question, request.stream) == ("qwen-0.5b", "Which bakery won?", False)
    assert list(model_ids(service))[0] == "rag" and f"rag:{service.model}" in model_ids(service)
    with pytest.raises(ApiError) as error:
        parse_request({"model": "rag", "messages": [{"role": "user", "content": None}]}, service)
    assert error.value.status == 400 and error.value.body()["error"]["param"] == "messages"


def test_parse_request_reads_the_scope(service: ChatService) -> None:
    body = {"model": "rag", "messages": [{"role": "user", "content": BAKERY}],
            "rag": {"docs": ["bakery"], "since": "2024-01-01", "until": None}}
    assert parse_request(body, service).scope == Scope(("bakery",), "2024-01-01")
    assert parse_request({**body, "rag": None}, service).scope is None
    with pytest.raises(ApiError) as error:
        parse_request({**body, "rag": {"docs": [""]}}, service)
    assert error.value.status == 400 and error.value.param == "rag.docs"
