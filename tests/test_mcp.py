"""`rag mcp`: the index served to the official MCP client (rag/serve/mcp_server.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from rag.answer.assistant import REFUSAL_TEXT, Assistant
from rag.search.index import Index

from .conftest import SEEDS, ScriptedGenerator

mcp = pytest.importorskip("mcp")


def run(coroutine):  # type: ignore[no-untyped-def]
    return anyio.run(coroutine)


def server_for(index: Index, reply: str):  # type: ignore[no-untyped-def]
    from rag.serve.mcp_server import build
    from rag.serve.service import ChatService

    assistant = Assistant(index, model="scripted", generator=ScriptedGenerator(reply))
    return build(ChatService(index, model="scripted", assistants={"scripted": assistant}))


def test_the_tools_and_the_documents_are_listed(index: Index) -> None:
    from mcp import Client

    async def check() -> None:
        async with Client(server_for(index, "unused")) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"search", "ask", "summarize"}
            assert set(tools["search"].input_schema["properties"]) == {"query", "k", "mode", "collection", "docs", "since", "until"}
            assert set(tools["ask"].input_schema["properties"]) == {"question", "collection", "docs", "since", "until"}
            resources = (await client.list_resources()).resources
            assert sorted(r.name for r in resources) == sorted(d.id for d in index.documents())
            bakery = next(r for r in resources if r.name == "bakery")
            read = await client.read_resource(bakery.uri)
            assert read.contents[0].text == index.document("bakery").text  # type: ignore[union-attr]

    run(check)


def test_search_returns_passages_with_their_offsets(index: Index) -> None:
    from mcp import Client

    async def check() -> None:
        async with Client(server_for(index, "unused")) as client:
            result = await client.call_tool("search", {"query": "Which bakery won the sourdough prize?", "k": 2})
            assert not result.is_error
            passages = result.structured_content["passages"]  # type: ignore[index]
            assert len(passages) == 2 and passages[0]["doc_id"] == "bakery"
            top = passages[0]
            assert index.document("bakery").text[top["start"] : top["end"]] == top["text"]

    run(check)


def test_ask_returns_the_checked_answer_or_the_refusal(index: Index) -> None:
    from mcp import Client

    async def check() -> None:
        async with Client(server_for(index, "The Miller bakery in Ashford won the national sourdough prize [1].")) as client:
            result = await client.call_tool("ask", {"question": "Which bakery won the sourdough prize?"})
            answer = result.structured_content
            assert not result.is_error and answer is not None and not answer["refused"]
            [cite] = answer["citations"]
            assert cite["doc_id"] == "bakery" and cite["supported"]
            assert index.document("bakery").text[cite["start"] : cite["end"]] == cite["quote"]
        async with Client(server_for(index, "I don't know.")) as client:
            refused = (await client.call_tool("ask", {"question": "What did the rye loaf cost?"})).structured_content
            assert refused is not None and refused["refused"] and refused["answer"] == REFUSAL_TEXT

    run(check)


def test_search_and_ask_limited_to_documents_and_dates(index: Index) -> None:
    from mcp import Client

    async def check() -> None:
        async with Client(server_for(index, "The Miller bakery in Ashford won the national sourdough prize [1].")) as client:
            result = await client.call_tool("search", {"query": "Which bakery won the sourdough prize?", "k": 3,
                                                       "docs": ["chess", "volcano"]})
            passages = result.structured_content["passages"]  # type: ignore[index]
            assert not result.is_error and {p["doc_id"] for p in passages} == {"chess", "volcano"}
            dated = await client.call_tool("search", {"query": "bread", "since": "2024-01-01"})
            assert dated.structured_content["passages"] == []  # type: ignore[index]  # no article of the corpus has a date
            answer = (await client.call_tool("ask", {"question": "Which bakery won the sourdough prize?",
                                                     "docs": ["chess"]})).structured_content
            assert answer is not None and "bakery" not in {c["doc_id"] for c in answer["citations"]}

    run(check)


@pytest.mark.parametrize(("tool", "arguments", "message"), [
    ("search", {"query": "bread", "mode": "psychic"}, "mode must be one of"),
    ("search", {"query": "bread", "docs": ["nope"]}, "no document 'nope'"),
    ("search", {"query": "bread", "until": "May 2024"}, "until must be a date as YYYY-MM-DD"),
    ("ask", {"question": "Which bakery?", "since": "2024-05-01", "until": "2024-01-01"}, "is after until"),
    ("search", {"query": "   "}, "query must be a non-empty string"),
    ("search", {"query": "bread", "k": 0}, "k"),
    ("ask", {"question": ""}, "the question is empty"),
    ("ask", {"question": "x" * 1001}, "limit is 1000"),
])
def test_a_bad_argument_is_an_mcp_error_and_the_server_keeps_serving(
    index: Index, tool: str, arguments: dict, message: str
) -> None:
    from mcp import Client

    async def check() -> None:
        async with Client(server_for(index, "unused")) as client:
            result = await client.call_tool(tool, arguments)
            assert result.is_error and message in result.content[0].text  # type: ignore[union-attr]
            again = await client.call_tool("search", {"query": "bread", "k": 1})
            assert not again.is_error

    run(check)


@pytest.mark.integration
def test_rag_mcp_answers_the_official_client_over_stdio(tmp_path: Path) -> None:
    """The command a desktop assistant runs: `rag mcp` as a subprocess, the real model."""
    from mcp import Client, StdioServerParameters

    index = Index.open(tmp_path / "index")
    index.add([SEEDS])
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag", "mcp", "--index-dir", str(tmp_path / "index")])

    async def check() -> None:
        async with Client(params, read_timeout_seconds=300) as client:
            assert {t.name for t in (await client.list_tools()).tools} == {"search", "ask", "summarize"}
            result = await client.call_tool("ask", {"question": "When did Bernard Quintin visit Doha?"})
            answer = result.structured_content
            assert not result.is_error and answer is not None and not answer["refused"], answer
            assert "December 6, 2023" in answer["answer"] and answer["citations"][0]["doc_id"] == "000_309b2881ceff4657"

    run(check)


def test_summarize_gives_the_checked_summary_with_quotes_from_the_document(index: Index) -> None:
    from mcp import Client

    reply = "The Miller bakery in Ashford won the national sourdough prize [1]."

    async def check() -> None:
        async with Client(server_for(index, reply)) as client:
            result = await client.call_tool("summarize", {"doc_ids": ["bakery"]})
            assert not result.is_error, result
            summary = result.structured_content
            assert summary["summary"] == "The Miller bakery in Ashford won the national sourdough prize."  # type: ignore[index]
            quote = summary["sentences"][0]["citations"][0]  # type: ignore[index]
            assert index.document("bakery").text[quote["start"] : quote["end"]] == quote["quote"]
            failed = await client.call_tool("summarize", {"doc_ids": ["nope"]})
            assert failed.is_error and "no document 'nope'" in str(failed.content)

    run(check)
