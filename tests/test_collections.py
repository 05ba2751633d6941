"""Collections: named indexes served by one server with one model, each closed to the other's
key through every client (the chat window's endpoints, /v1, MCP over HTTP) (issue 30)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from rag.answer.assistant import Assistant
from rag.core.errors import InvalidInput
from rag.search.collections import Keys, parse_keys
from rag.search.index import Index
from rag.serve.app import launch
from rag.serve.service import ChatService

from .conftest import HOSTILE, FakeEmbedder, RoutedGenerator, free_port, run_cli

KEYS = Keys(server="server-key", collections={"news": "news-key", "harbour": "harbour-key"})
BAKERY = "Which bakery won the sourdough prize?"
HARBOUR = "When did the harbour festival open?"


@pytest.fixture
def service(tmp_path: Path, tiny_corpus: Path) -> ChatService:
    news = Index.open(tmp_path / "news", embedder=FakeEmbedder())
    news.add([tiny_corpus])
    shelf = tmp_path / "harbour-docs"
    shelf.mkdir()
    for name, text in HOSTILE.items():
        (shelf / name).write_text(text, encoding="utf-8")
    harbour = Index.open(tmp_path / "harbour", embedder=FakeEmbedder())
    harbour.add([shelf])
    assistant = Assistant(news, model="routed", generator=RoutedGenerator())
    return ChatService(news, model="routed", assistants={"routed": assistant}, upload_dir=tmp_path / "uploads",
                       collection="news", more={"harbour": harbour}, keys=KEYS)


def test_each_key_opens_its_own_collection_and_the_server_key_all() -> None:
    served = ["news", "harbour", "open"]
    assert KEYS.opens("news-key", served) == ["news"] and KEYS.opens("harbour-key", served) == ["harbour"]
    assert KEYS.opens("server-key", served) == served
    assert KEYS.opens("wrong", served) == [] and KEYS.opens(None, served) == []
    assert Keys().opens(None, served) == served  # no keys: an open server
    assert KEYS.login("news", "news-key", served) and not KEYS.login("harbour", "news-key", served)
    assert not KEYS.login("anyone", "news-key", served) and KEYS.login("anyone", "server-key", served)
    assert KEYS.for_user("news", served) == ["news"] and KEYS.for_user("anyone", served) == served
    assert parse_keys(["news=a=b"]) == {"news": "a=b"}
    for bad in ("news", "news=", "Bad Name=k"):
        with pytest.raises(InvalidInput):
            parse_keys([bad])


def test_one_model_answers_every_collection_from_its_own_documents(service: ChatService) -> None:
    answer = service.ask(BAKERY)  # no collection named: the first
    assert answer.citations[0].doc_id == "bakery"
    harbour = service.ask(HARBOUR, collection="harbour")
    assert {h.doc_id for h in harbour.hits} == {"harbour"}
    assert service._assistant("routed", "harbour").generator is service.assistants["routed"].generator
    assert "harbour" not in {h.doc_id for h in service.search(HARBOUR, k=5, mode="hybrid", collection="news")}
    with pytest.raises(InvalidInput, match="unknown collection 'nope'"):
        service.ask(BAKERY, collection="nope")


def test_uploads_go_to_the_chosen_collection_only(service: ChatService, tmp_path: Path) -> None:
    upload = tmp_path / "regatta.txt"
    upload.write_text("Regatta Results\nThe regatta in Kiel was won by a Danish crew on Sunday.", encoding="utf-8")
    before = [r[0] for r in service.document_rows("news")]
    service.add_files([upload], "harbour")
    assert "regatta" in [r[0] for r in service.document_rows("harbour")]
    assert [r[0] for r in service.document_rows("news")] == before
    assert service.upload_folder("harbour") != service.upload_folder("news")
    assert (service.upload_folder("harbour") / "regatta.txt").exists()
    service.remove("regatta", "harbour")
    assert "regatta" not in [r[0] for r in service.document_rows("harbour")]


def test_the_cli_creates_lists_and_reads_collections(
    capsys: pytest.CaptureFixture[str], fake_model: None, tiny_corpus: Path
) -> None:
    code, out, _ = run_cli(capsys, "index", str(tiny_corpus), "--collection", "news", "--quiet")
    assert code == 0 and "collections/news" in out
    code, out, _ = run_cli(capsys, "collections", "--json")
    assert code == 0 and [(c["name"], c["documents"]) for c in json.loads(out)] == [("news", 3)]
    code, out, _ = run_cli(capsys, "docs", "--collection", "news", "--json")
    assert code == 0 and sorted(d["doc_id"] for d in json.loads(out)) == ["bakery", "chess", "volcano"]
    code, _, err = run_cli(capsys, "docs", "--collection", "shelf")
    assert code == 1 and "no collection 'shelf'" in err and "rag index PATH --collection shelf" in err
    code, _, err = run_cli(capsys, "search", "bread", "--collection", "Bad Name")
    assert code == 1 and "collection name" in err
    code, _, err = run_cli(capsys, "docs", "--collection", "news", "--index-dir", "x")
    assert code == 1 and "not both" in err


# ------------------------------------------------------------------ one server, two keys


@pytest.fixture
def url(service: ChatService) -> Iterator[str]:
    app, url = launch(service, port=free_port(), block=False)
    try:
        yield url.rstrip("/")
    finally:
        app.close()


def call(url: str, path: str, key: str | None, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}{path}", data=data, headers=headers)) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_v1_lists_and_answers_only_what_the_key_opens(url: str) -> None:
    ids = lambda key: {m["id"] for m in call(url, "/v1/models", key)[1]["data"]}  # noqa: E731
    assert {"rag", "rag:routed"} <= ids("news-key") and not any("harbour" in m for m in ids("news-key"))
    assert "rag/harbour" in ids("harbour-key") and "rag" not in ids("harbour-key")
    assert {"rag", "rag/harbour"} <= ids("server-key")
    ask = lambda model, key: call(url, "/v1/chat/completions", key, {  # noqa: E731
        "model": model, "messages": [{"role": "user", "content": HARBOUR}]})
    status, reply = ask("rag/harbour", "harbour-key")
    assert status == 200 and reply["rag"]["citations"][0]["doc_id"] == "harbour"
    closed, missing = ask("rag/harbour", "news-key"), ask("rag/nowhere", "news-key")
    assert closed[0] == missing[0] == 403
    assert closed[1]["error"]["message"].replace("rag/harbour", "X") == missing[1]["error"]["message"].replace("rag/nowhere", "X")
    assert ask("rag", None)[0] == 401 and ask("rag", "wrong")[0] == 401


def test_the_chat_windows_endpoints_open_the_logged_in_collection_only(url: str) -> None:
    from gradio_client import Client

    news = Client(url, auth=("news", "news-key"), verbose=False)
    assert news.predict(BAKERY, api_name="/answer")["citations"][0]["doc_id"] == "bakery"
    with pytest.raises(Exception, match="No collection 'harbour' here"):  # noqa: PT011 - gradio_client's own error type
        news.predict(HARBOUR, "", 0, "", "harbour", api_name="/answer")
    assert "harbour" not in json.dumps(news.predict("", api_name="/documents"))
    with pytest.raises(Exception):  # noqa: B017,PT011 - the news key is not the harbour collection's
        Client(url, auth=("harbour", "news-key"), verbose=False)
    everything = Client(url, auth=("admin", "server-key"), verbose=False)
    answer = everything.predict(HARBOUR, "", 0, "", "harbour", api_name="/answer")
    assert answer["citations"][0]["doc_id"] == "harbour"


def test_mcp_over_http_shows_a_key_its_collections_alone(url: str) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    def client(key: str) -> Client:
        return Client(streamable_http_client(f"{url}/mcp", http_client=httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {key}"}, timeout=60)))

    async def check() -> None:
        async with client("harbour-key") as mcp:
            assert {t.name for t in (await mcp.list_tools()).tools} == {"search", "ask", "summarize"}
            result = await mcp.call_tool("search", {"query": HARBOUR, "k": 2})
            assert not result.is_error and result.structured_content["passages"][0]["doc_id"] == "harbour"  # type: ignore[index]
            refused = await mcp.call_tool("search", {"query": BAKERY, "collection": "news"})
            assert refused.is_error and "no collection 'news' here" in refused.content[0].text  # type: ignore[union-attr]
            resources = (await mcp.list_resources()).resources
            assert [r.name for r in resources] == ["harbour"]
            read = await mcp.read_resource(resources[0].uri)
            assert "Tallinn" in read.contents[0].text  # type: ignore[union-attr]
            answer = await mcp.call_tool("ask", {"question": HARBOUR})
            assert not answer.is_error and answer.structured_content["collection"] == "harbour"  # type: ignore[index]
        async with client("server-key") as mcp:
            names = sorted(r.name for r in (await mcp.list_resources()).resources)
            assert names == ["bakery", "chess", "harbour", "volcano"]

    anyio.run(check)
    assert call(url, "/mcp", None, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})[0] == 401


def test_serve_checks_its_collections_and_keys_before_loading_a_model(
    capsys: pytest.CaptureFixture[str], fake_model: None, tiny_corpus: Path
) -> None:
    assert run_cli(capsys, "index", str(tiny_corpus), "--collection", "news", "--quiet")[0] == 0
    code, _, err = run_cli(capsys, "serve", "--collection", "news", "--collection-key", "shelf=k")
    assert code == 1 and "does not serve: shelf" in err
    code, _, err = run_cli(capsys, "serve", "--collection", "shelf")
    assert code == 1 and len(err.strip().splitlines()) == 1
