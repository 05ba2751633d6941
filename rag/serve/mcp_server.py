"""The assistant as a Model Context Protocol server: ``rag mcp``, and ``/mcp`` on ``rag serve`` (issue 30).

Desktop assistants and editors (Claude Desktop, Cursor, VS Code, Zed) and agents built on the
``mcp`` SDK reach local knowledge through MCP. Three tools and the documents:

- ``search`` (query, k, mode, collection, docs, since, until): the passages, each with its document
  id, title, date and the offsets of its text in the document;
- ``ask`` (question, collection, docs, since, until): the checked answer, refused or not, with its
  citations (quotes and their offsets), trust score and conflicts, as ``rag ask --json`` gives it;
- both can be limited to some documents (``docs``, their ids) and dates (``since``, ``until``:
  YYYY-MM-DD, inclusive; a document without a date is then left out);
- every indexed document as a resource, its cleaned text: ``rag://documents/<id>`` in the first
  collection, ``rag://collections/<name>/documents/<id>`` in the others (listed as they are now,
  not as they were at start).

A server is built for a set of collections (:func:`build`): over stdio, every collection served;
over HTTP (:class:`HttpEndpoint`), those the request's key opens, so a client never sees a
collection its key does not open, not even its name. A bad argument is a tool error the client
sees (MCP's ``isError``), never a crash of the server. Over stdio nothing else may write to
stdout: logs go to stderr.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from rag.core import defaults
from rag.core.errors import RagError
from rag.core.types import Scope
from rag.search.retrieval import MODES

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from rag.serve.service import ChatService

DOCUMENT_URI = "rag://documents/{id}"
COLLECTION_URI = "rag://collections/{collection}/documents/{id}"
INSTRUCTIONS = (
    "Search and ask the user's indexed articles. `ask` answers only from them, with numbered "
    "citations whose quotes were checked against the articles, or refuses when they do not say; "
    "show its citations to the user. `search` returns the passages themselves."
)
SCOPED = (" Optionally only from the documents `docs` (their ids, as the resources name them) and "
          "dated from `since` to `until` (YYYY-MM-DD, inclusive; undated documents are then left out).")


def document_uri(service: ChatService, collection: str, doc_id: str) -> str:
    quoted = quote(doc_id, safe="")
    if collection == service.collection:
        return DOCUMENT_URI.format(id=quoted)
    return COLLECTION_URI.format(collection=collection, id=quoted)


def build(service: ChatService, collections: Sequence[str] | None = None) -> MCPServer:
    """An MCP server whose tools search and ask ``collections`` of ``service`` (default: all it serves)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError

    opened = list(collections if collections is not None else service.collections())
    first = opened[0] if opened else service.collection
    where = (f" Collections: {', '.join(opened)} (default {first})." if len(opened) > 1 else "")

    def check(collection: str) -> str:
        if collection not in opened:  # the same words whether it exists or not
            raise ToolError(f"no collection '{collection}' here; this server offers {', '.join(opened)}")
        return collection

    class Server(MCPServer):
        async def list_resources(self) -> list[Any]:
            """The documents as they are now (reads go through the templates registered below)."""
            from mcp_types import Resource

            return [Resource(uri=document_uri(service, name, doc.id), name=doc.id, title=doc.title or doc.id,
                             mime_type="text/plain")
                    for name in opened for doc in service.indexes[name].documents()]

    server = Server("rag", instructions=INSTRUCTIONS + where)

    @server.tool(description="The passages of the indexed articles that best match the query." + where + SCOPED)
    def search(query: str, k: int = defaults.SEARCH_K, mode: str = defaults.MODE, collection: str = first,
               docs: list[str] | None = None, since: str | None = None, until: str | None = None) -> dict[str, Any]:
        if mode not in MODES:
            raise ToolError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
        name = check(collection)
        try:
            scope = Scope(tuple(docs or ()), since, until)
            hits = service.search(query, k=k, mode=mode, collection=name, scope=scope)  # type: ignore[arg-type]
        except (RagError, ValueError) as e:
            raise ToolError(str(e)) from None
        return {"query": query, "collection": name, "passages": [
            {"doc_id": h.doc_id, "title": h.title, "date": h.date, "start": h.start, "end": h.end, "text": h.text,
             "score": round(h.score, 4), "rank": h.rank, "uri": document_uri(service, name, h.doc_id)}
            for h in hits
        ]}

    @server.tool(description="Answer a question from the indexed articles, with checked citations, or refuse "
                             "when they do not contain the answer." + where + SCOPED)
    def ask(question: str, collection: str = first, docs: list[str] | None = None, since: str | None = None,
            until: str | None = None) -> dict[str, Any]:
        name = check(collection)
        try:
            answer = service.ask(question, collection=name, scope=Scope(tuple(docs or ()), since, until))
        except (RagError, ValueError) as e:
            raise ToolError(str(e)) from None
        shown = answer.to_dict()
        shown.pop("retrieved", None)
        shown["refusal_reason"] = answer.refusal_reason
        shown["collection"] = name
        return shown

    @server.tool(description="Summarize one indexed article (doc_ids: its id), or compare two (their ids): every "
                             "sentence cites quotes of the articles, checked like an answer's." + where)
    def summarize(doc_ids: list[str], collection: str = first) -> dict[str, Any]:
        from rag.answer.summary import Summary

        name = check(collection)
        if not 1 <= len(doc_ids) <= 2:
            raise ToolError("summarize one document, or compare two")
        try:
            summary = next(item for item in service.summarize(doc_ids, collection=name) if isinstance(item, Summary))
        except (RagError, ValueError, KeyError) as e:
            raise ToolError(str(e.args[0] if isinstance(e, KeyError) else e)) from None
        return {**summary.to_dict(), "collection": name}

    def reader(name: str) -> Any:
        def read(doc_id: str) -> str:
            try:
                return service.indexes[name].document(unquote(doc_id)).text
            except KeyError:
                raise ResourceError(f"no document '{unquote(doc_id)}' in this collection") from None

        return read

    for name in opened:
        uri = document_uri(service, name, "{doc_id}").replace(quote("{doc_id}", safe=""), "{doc_id}")
        server.resource(uri, name=f"{name} documents", mime_type="text/plain")(reader(name))
    return server


def doc_id_of(uri: str) -> str:
    """The document id a ``rag://documents/<id>`` URI names."""
    return unquote(uri.rsplit("/", 1)[-1])


def serve_stdio(service: ChatService) -> None:
    """Run the MCP server over stdin/stdout until the client closes it."""
    build(service).run("stdio")


class HttpEndpoint:
    """MCP over streamable HTTP, mounted at ``/mcp`` on ``rag serve``'s port behind its keys.

    A request without a key the server accepts gets 401. Each set of collections a key opens has
    a server of its own (:func:`build`), built on first use; its session manager runs as a task
    on the serving event loop (the Gradio app started before this was mounted, so its lifespan
    cannot run it). Stateless JSON responses: every request stands alone.
    """

    def __init__(self, service: ChatService, host: str = defaults.HOST) -> None:
        self.service, self.host = service, host
        self._apps: dict[tuple[str, ...], Any] = {}
        self._tasks: list[asyncio.Task[None]] = []  # kept: the loop holds tasks only weakly
        self._lock: asyncio.Lock | None = None

    async def _app(self, collections: tuple[str, ...]) -> Any:
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if collections not in self._apps:
                server = build(self.service, collections)
                server.streamable_http_app(stateless_http=True, json_response=True, host=self.host)
                manager = server.session_manager
                ready = asyncio.Event()

                async def run() -> None:
                    async with manager.run():
                        ready.set()
                        await asyncio.Event().wait()  # until the server stops

                self._tasks.append(asyncio.create_task(run()))
                await ready.wait()
                self._apps[collections] = StreamableHTTPASGIApp(manager)
            return self._apps[collections]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
        keys = self.service.keys
        opened = tuple(keys.opens(key, self.service.collections()))
        if keys.closed and not opened:
            body = json.dumps({"error": "a valid key is required: send it as 'Authorization: Bearer KEY'"}).encode()
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": body})
            return
        app = await self._app(opened)
        await app(scope, receive, send)
