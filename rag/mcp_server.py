"""The assistant as a Model Context Protocol server: ``rag mcp`` (issue 30).

Desktop assistants and editors (Claude Desktop, Cursor, VS Code, Zed) and agents built on the
``mcp`` SDK reach local knowledge through MCP. Two tools and the documents:

- ``search`` (query, k, mode): the passages, each with its document id, title, date and the
  offsets of its text in the document;
- ``ask`` (question): the checked answer, refused or not, with its citations (quotes and their
  offsets), trust score and conflicts, as ``rag ask --json`` gives it;
- every indexed document as a resource, ``rag://documents/<id>``, its cleaned text.

A bad argument is a tool error the client sees (MCP's ``isError``), never a crash of the server.
The server speaks over stdin/stdout, so nothing else may write to stdout: logs go to stderr.
Answers run one at a time (llama.cpp is not thread-safe).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from rag import defaults
from rag.errors import RagError
from rag.retrieval import MODES

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from rag.answering import Assistant

DOCUMENT_URI = "rag://documents/{id}"
INSTRUCTIONS = (
    "Search and ask the user's indexed articles. `ask` answers only from them, with numbered "
    "citations whose quotes were checked against the articles, or refuses when they do not say; "
    "show its citations to the user. `search` returns the passages themselves."
)


def build(assistant: Assistant) -> MCPServer:
    """An MCP server whose tools search and ask ``assistant``'s index."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.mcpserver.resources import FunctionResource

    server: MCPServer = MCPServer("rag", instructions=INSTRUCTIONS)
    answering = threading.Lock()

    @server.tool(description="The passages of the indexed articles that best match the query.")
    def search(query: str, k: int = defaults.SEARCH_K, mode: str = defaults.MODE) -> dict[str, Any]:
        if mode not in MODES:
            raise ToolError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
        try:
            hits = assistant.index.search(query, k=k, mode=mode)  # type: ignore[arg-type]
        except (RagError, ValueError) as e:
            raise ToolError(str(e)) from None
        return {"query": query, "passages": [
            {"doc_id": h.doc_id, "title": h.title, "date": h.date, "start": h.start, "end": h.end, "text": h.text,
             "score": round(h.score, 4), "rank": h.rank, "uri": DOCUMENT_URI.format(id=quote(h.doc_id, safe=""))}
            for h in hits
        ]}

    @server.tool(description="Answer a question from the indexed articles, with checked citations, or refuse "
                             "when they do not contain the answer.")
    def ask(question: str) -> dict[str, Any]:
        try:
            with answering:
                answer = assistant.ask(question)
        except (RagError, ValueError) as e:
            raise ToolError(str(e)) from None
        shown = answer.to_dict()
        shown.pop("retrieved", None)
        shown["refusal_reason"] = answer.refusal_reason
        return shown

    for doc in assistant.index.documents():
        server.add_resource(FunctionResource(
            uri=DOCUMENT_URI.format(id=quote(doc.id, safe="")), name=doc.id, title=doc.title or doc.id,
            mime_type="text/plain", fn=_reader(assistant, doc.id),
        ))
    return server


def _reader(assistant: Assistant, doc_id: str) -> Any:
    def read() -> str:
        return assistant.index.document(doc_id).text

    return read


def doc_id_of(uri: str) -> str:
    """The document id a ``rag://documents/<id>`` URI names."""
    return unquote(uri.removeprefix(DOCUMENT_URI.format(id="")))


def serve_stdio(assistant: Assistant) -> None:
    """Run the MCP server over stdin/stdout until the client closes it."""
    build(assistant).run("stdio")
