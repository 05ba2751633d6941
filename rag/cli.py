"""The ``rag`` command: a thin adapter over the Python API.

Every library error becomes one line on stderr and a non-zero exit code; no command
prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.core import defaults
from rag.core.errors import RagError
from rag.generate.registry import GENERATORS
from rag.ingest.chunking import DEFAULT_CHUNK_WORDS, DEFAULT_OVERLAP_WORDS
from rag.search.embedding import EMBEDDING_MODELS
from rag.search.retrieval import FUSIONS, MODES
from rag.stores.dense import INDEX_KINDS
from rag.stores.factory import STORE_HELP

if TYPE_CHECKING:
    from rag.core.types import Scope
    from rag.generate.base import GenerationSettings
    from rag.search.index import Index

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(RagError):
    """A failure to report to the user as one line."""


def _add_index_dir(p: argparse.ArgumentParser, collections: bool = False) -> None:
    if collections:  # rag serve, rag mcp: several at once
        p.add_argument("--collection", action="append", default=[], metavar="NAME",
                       help="serve this collection (repeatable; the first answers requests that name none; "
                            "default: every collection, see `rag collections`)")
    else:
        p.add_argument("--collection", default=None, metavar="NAME",
                       help="the named collection's index (created by its first `rag index`; see `rag collections`)")
    p.add_argument(
        "--index-dir",
        type=Path,
        default=None,
        help="index directory (default: $RAG_INDEX_DIR or .rag/index); with a Milvus store, its name names the collections",
    )
    p.add_argument("--store", default=None, metavar="URI", help=f"where the index is kept: {STORE_HELP} (default $RAG_STORE or {defaults.STORE})")


def _add_scope(p: argparse.ArgumentParser) -> None:
    p.add_argument("--doc", action="append", default=[], metavar="ID", dest="docs",
                   help="only passages of this document (repeatable; `rag docs` lists the ids)")
    p.add_argument("--since", default=None, metavar="YYYY-MM-DD",
                   help="only documents dated on or after this day (documents without a date are left out)")
    p.add_argument("--until", default=None, metavar="YYYY-MM-DD",
                   help="only documents dated on or before this day (documents without a date are left out)")


def _scope(args: argparse.Namespace) -> Scope | None:
    """The documents and dates ``--doc``, ``--since`` and ``--until`` limit a question to."""
    from rag.core.types import Scope

    scope = Scope(tuple(args.docs), args.since, args.until)
    return None if scope.everything else scope


# The names each option accepts, read from the tables that validate and load them (rag/core/registry.py).
EMBEDDER_HELP = " | ".join(EMBEDDING_MODELS.names()) + " (a sentence-transformers model)"
MODEL_HELP = " | ".join(GENERATORS.names())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag",
        description="Local, offline question answering over your articles, with checked citations.",
    )
    from rag import __version__

    parser.add_argument("--version", action="version", version=f"rag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("index", help="add or update documents in the index")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (.txt .md .html .pdf .docx .epub .jsonl)")
    _add_index_dir(p)
    p.add_argument("--rebuild", action="store_true", help="replace the whole index with these documents")
    p.add_argument("--sync", action="store_true",
                   help="also remove the documents indexed from these paths whose file is gone")
    p.add_argument("--chunk-size", type=int, default=None, help=f"words per chunk (new index; default {DEFAULT_CHUNK_WORDS})")
    p.add_argument("--overlap", type=int, default=None, help=f"words of overlap (new index; default {DEFAULT_OVERLAP_WORDS})")
    p.add_argument("--embedder", default=None, help=f"{EMBEDDER_HELP} (new index; default {defaults.EMBEDDER})")
    p.add_argument("--dense-index", choices=INDEX_KINDS, default=None, help="FAISS index type (new index; default auto)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="embed the passages on a Ray cluster at ADDRESS (ray://HOST:10001, auto), or on a local "
                        "Ray started here when no address is given; needs pip install '.[ray]'")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="show the passages retrieved for a query")
    p.add_argument("query")
    _add_index_dir(p)
    p.add_argument("--k", type=int, default=defaults.SEARCH_K, help=f"number of passages (default {defaults.SEARCH_K})")
    p.add_argument("--mode", choices=MODES, default=defaults.MODE, help=f"retrieval mode (default {defaults.MODE})")
    p.add_argument("--fusion", choices=FUSIONS, default="convex",
                   help="how hybrid mode fuses: convex (default: weighted, normalised scores) or rrf (reciprocal ranks)")
    p.add_argument("--json", action="store_true", help="print one JSON object with a 'hits' list")
    _add_scope(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question from the indexed articles, with citations")
    p.add_argument("question")
    _add_index_dir(p)
    p.add_argument("--model", default=None, help=f"{MODEL_HELP} (default {defaults.MODEL})")
    p.add_argument("--k", type=int, default=None, help=f"passages to retrieve (default {defaults.K})")
    p.add_argument("--mode", choices=MODES, default=defaults.MODE, help=f"retrieval mode (default {defaults.MODE})")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: all cores, fewer while other processes keep cores busy)")
    p.add_argument("--max-tokens", type=int, default=None, help=f"longest answer in tokens (default {defaults.MAX_TOKENS})")
    p.add_argument("--context-size", type=int, default=None, help=f"model context in tokens (default {defaults.CONTEXT_SIZE})")
    p.add_argument("--no-judge", action="store_true",
                   help="check citations by shared words only, without asking the model whether each source states them")
    p.add_argument("--show-prompt", action="store_true", help="print the exact prompt before the answer")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    _add_scope(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("summarize", help="summarize a document (or compare two), every sentence cited and checked")
    p.add_argument("doc_ids", nargs="+", metavar="DOC_ID", help="one document id, or two to compare (rag docs lists them)")
    _add_index_dir(p)
    p.add_argument("--model", default=None, help=f"{MODEL_HELP} (default {defaults.MODEL})")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: all cores, fewer while other processes keep cores busy)")
    p.add_argument("--max-tokens", type=int, default=None, help=f"longest part summary in tokens (default {defaults.MAX_TOKENS})")
    p.add_argument("--context-size", type=int, default=None, help=f"model context in tokens (default {defaults.CONTEXT_SIZE})")
    p.add_argument("--no-judge", action="store_true", help="check the sentences by shared words only")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    p.add_argument("--markdown", action="store_true", help="print the summary as Markdown with its numbered quotes")
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser("docs", help="list indexed documents")
    _add_index_dir(p)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("remove", help="delete a document from the index")
    p.add_argument("doc_id", metavar="DOC_ID")
    _add_index_dir(p)
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("serve", help="open the chat window (a Gradio app) at http://127.0.0.1:7860")
    _add_index_dir(p, collections=True)
    p.add_argument("--host", default=defaults.HOST, help=f"address to listen on (default {defaults.HOST}: this machine only)")
    p.add_argument("--port", type=int, default=defaults.PORT, help=f"port (default {defaults.PORT})")
    p.add_argument("--model", default=None, help=f"model loaded at start (default {defaults.MODEL}); the window offers the bundled ones too")
    p.add_argument("--k", type=int, default=None, help=f"passages to retrieve (default {defaults.K})")
    p.add_argument("--mode", choices=MODES, default=defaults.MODE, help=f"retrieval mode (default {defaults.MODE})")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: all cores, fewer while other processes keep cores busy)")
    p.add_argument("--max-tokens", type=int, default=None, help=f"longest answer in tokens (default {defaults.MAX_TOKENS})")
    p.add_argument("--concurrency", type=int, default=defaults.CONCURRENCY,
                   help=f"questions answered at once with an openai: model (default {defaults.CONCURRENCY}; "
                        "a model in this process answers one at a time)")
    p.add_argument("--api-key", default=None,
                   help="close the server with this key: the chat window's login (any user name), Gradio's "
                        "endpoints and the /v1 API (a Bearer token) (default $RAG_API_KEY; none: open)")
    p.add_argument("--collection-key", action="append", default=[], metavar="NAME=KEY",
                   help="a key that opens collection NAME only (repeatable; also $RAG_COLLECTION_KEYS, comma-separated): "
                        "the chat window's login is NAME and KEY; a collection without one is opened by --api-key alone")
    p.add_argument("--no-auth", action="store_true",
                   help="serve on an address other than this machine's without a key (anyone who reaches "
                        "the port can read, add and remove documents)")
    p.add_argument("--time-limit", type=float, default=defaults.MODEL_TIME_LIMIT_S, metavar="SECONDS",
                   help=f"stop and restart the model when one answer or check takes longer (default "
                        f"{defaults.MODEL_TIME_LIMIT_S:g}; 0: no limit)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mcp", help="serve the index to MCP clients (desktop assistants, editors) over stdin/stdout")
    _add_index_dir(p, collections=True)
    p.add_argument("--model", default=None, help=f"model for the ask tool (default {defaults.MODEL})")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: all cores, fewer while other processes keep cores busy)")
    p.add_argument("--max-tokens", type=int, default=None, help=f"longest answer in tokens (default {defaults.MAX_TOKENS})")
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("collections", help="list the collections (named indexes) and what each holds")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_collections)

    p = sub.add_parser("history", help="list, show and export the chat window's saved conversations")
    key = argparse.ArgumentParser(add_help=False)
    key.add_argument("--api-key", default=None,
                     help="see the conversations made with this key (default $RAG_API_KEY; none: those made without a key)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = actions.add_parser("list", parents=[key], help="the saved conversations, the latest changed first")
    # not dest=collection: that names an index to open (main), and a conversation may outlive its collection
    q.add_argument("--collection", dest="of_collection", default=None, metavar="NAME", help="only this collection's")
    q.add_argument("--json", action="store_true", help="print a JSON list")
    q = actions.add_parser("show", parents=[key], help="print one conversation as Markdown")
    q.add_argument("id", metavar="ID")
    q = actions.add_parser("export", parents=[key], help="write one conversation as Markdown or JSON")
    q.add_argument("id", metavar="ID")
    q.add_argument("--format", choices=("md", "json"), default="md", help="md (default) or json")
    q.add_argument("--out", type=Path, default=None, metavar="FILE", help="write to FILE (default: stdout)")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("selftest", help="check that the model runs on this machine: load it in its own process and decode a few tokens")
    p.add_argument("--model", default=None, help=f"a bundled model or PATH.gguf (default {defaults.MODEL})")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("eval", help="score retrieval, answers, citations and refusals on a gold set")
    p.add_argument("--gold", type=Path, required=True, help="gold questions (JSONL; see eval/gold/README.md)")
    p.add_argument("--corpus", type=Path, default=None, help="index this folder or JSONL first, into its own index (reused when unchanged)")
    p.add_argument("--embedder", default=None, help=f"{EMBEDDER_HELP} for the --corpus index (default {defaults.EMBEDDER})")
    _add_index_dir(p)
    p.add_argument("--model", default=None, help=f"{MODEL_HELP} (default {defaults.MODEL})")
    p.add_argument("--mode", choices=MODES, default=defaults.MODE, help=f"retrieval mode (default {defaults.MODE})")
    p.add_argument("--k", type=int, default=None, help=f"passages given to the model (default {defaults.K})")
    p.add_argument("--retrieval-only", action="store_true", help="score the ranking only; no model is loaded")
    p.add_argument("--compare", action="append", default=[], metavar="AXIS=V1,V2",
                   help="evaluate several settings side by side: mode=bm25,dense,hybrid | model=A,B | k=3,5 | "
                        "judge=on,off | hops=on,off (the second hop) | retry=on,off (the second try) | "
                        "alpha=0.3,0.5 (the dense weight of hybrid fusion) | "
                        "words=200,140 (the prompt's budget of source words) | labels=title,title-once,title-if-new "
                        "(which sources carry their article's title) (repeatable)")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: all cores, fewer while other processes keep cores busy)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default eval/results/<timestamp>)")
    p.set_defaults(func=cmd_eval)
    return parser


def _open(args: argparse.Namespace, create: bool = False) -> Index:
    from rag.search.index import Index

    return Index.open(args.index_dir, store=args.store, create=create)


def cmd_index(args: argparse.Namespace) -> int:
    from rag.ingest.chunking import ChunkConfig
    from rag.search.index import Index

    chunking = None
    if args.chunk_size is not None or args.overlap is not None:
        chunking = ChunkConfig(
            size=args.chunk_size if args.chunk_size is not None else DEFAULT_CHUNK_WORDS,
            overlap=args.overlap if args.overlap is not None else DEFAULT_OVERLAP_WORDS,
        )
    index = Index.open(
        args.index_dir,
        store=args.store,
        embedder=args.embedder,
        chunking=chunking,
        dense_index=args.dense_index,
        rebuild=args.rebuild,
    )
    if args.ray is not None:
        from rag.search.ray_embedding import RayEmbedder

        index.embed_on(RayEmbedder(index.embedder_spec, None if args.ray == "local" else args.ray))
    report = index.add(args.paths, progress=not args.quiet, sync=args.sync)
    if not args.quiet:
        for skipped in report.skipped:
            print(f"skipped {skipped}", file=sys.stderr)
    if not (report.added or report.updated or report.unchanged or report.removed):
        raise CommandError(
            f"no documents to index in {' '.join(args.paths)} ({len(report.skipped)} skipped); "
            "the index was not changed"
        )
    print(f"{report.summary()}; index at {index.location} holds {len(index.documents())} documents")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    hits = _open(args).search(args.query, k=args.k, mode=args.mode, fusion=args.fusion, scope=_scope(args))
    if args.json:
        print(json.dumps({"query": args.query, "mode": args.mode, "hits": [h.to_dict() for h in hits]}, ensure_ascii=False))
        return 0
    if not hits:
        print("no matching passages")
    for h in hits:
        snippet = " ".join(h.text.split())
        print(f"{h.rank}. [{h.score:.4f}] {h.doc_id}  {h.title}" + (f"  ({h.date})" if h.date else ""))
        print(f"   {snippet[:300]}{'...' if len(snippet) > 300 else ''}")
    return 0


def _generation_settings(args: argparse.Namespace) -> GenerationSettings:
    """The generator settings a command's options ask for (``--threads``, ``--max-tokens``,
    ``--context-size``, where the command has them); threads asked for are fixed, not fitted to
    the load."""
    from dataclasses import replace

    from rag.generate.base import GenerationSettings

    settings = GenerationSettings()
    for field in ("threads", "max_tokens", "context_size"):
        if (value := getattr(args, field, None)) is not None:
            settings = replace(settings, **{field: value})
    if args.threads is not None:
        settings = replace(settings, adapt_threads=False)
    return settings


def cmd_summarize(args: argparse.Namespace) -> int:
    from rag.answer.assistant import Assistant
    from rag.answer.summary import Progress, Summary

    if len(args.doc_ids) > 2:
        raise CommandError(f"summarize one document, or compare two; got {len(args.doc_ids)}")
    assistant = Assistant.open(args.index_dir, model=args.model or defaults.MODEL, settings=_generation_settings(args),
                               store=args.store)
    assistant.judge = not args.no_judge
    for doc_id in args.doc_ids:
        assistant.index.document(doc_id)  # an unknown id is one line before the model loads
    summary = None
    for item in assistant.summarize_stream(*args.doc_ids):
        if isinstance(item, Summary):
            summary = item
        elif isinstance(item, Progress):
            print(item.line(), file=sys.stderr, flush=True)
        elif not (args.json or args.markdown):
            print(item, end="", flush=True)
    assert summary is not None
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
        return 0
    if args.markdown:
        print(summary.markdown(), end="")
        return 0
    print(f"\nChecked summary ({len(summary.sentences)} sentences kept, {len(summary.dropped)} dropped):\n{summary.text}")
    for s in summary.sentences:
        for c in s.citations:
            print(f'  {c.doc_id} chars {c.start}-{c.end}: "{c.quote}"')
    print(f"({summary.timings['total_s']:.1f} s; first sentence after {summary.timings['first_sentence_s']:.1f} s)", file=sys.stderr)
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.answer.assistant import Assistant, check_question

    question = check_question(args.question)
    settings = _generation_settings(args)
    assistant = Assistant.open(args.index_dir, model=args.model or defaults.MODEL, mode=args.mode, settings=settings,
                               store=args.store)
    assistant.judge = not args.no_judge
    scope = assistant.index.check_scope(_scope(args))  # an unknown --doc fails before the model loads
    assistant.load_in_background()  # while the question is searched
    if args.k is not None:
        assistant.k = args.k
    response = assistant.respond(question, scope=scope)
    if args.show_prompt:
        shown = response.prompt.text if response.prompt else "(no prompt: the assistant refuses before asking the model)"
        print(shown, end="\n\n", file=sys.stderr)
    for piece in response:
        if not args.json:
            print(piece, end="", flush=True)
    answer = response.answer()
    if args.json:
        print(json.dumps({"question": question, **answer.to_dict()}, ensure_ascii=False))
        return 0
    print()
    if answer.refused:
        if answer.withheld is not None:
            print(f"\n{answer.text}\nNot verified: {answer.withheld.text} (withheld: {answer.withheld.reason})")
        elif answer.raw:
            print(f"\n{answer.text} (withheld: {answer.refusal_reason})")
        elif answer.refusal_reason:
            print(f"({answer.refusal_reason}; the model was not asked)")
        return 0
    if after := answer.after_stream():
        print(f"\n{after}")
    for sentence in answer.sentences:
        if not sentence.supported:
            print(f"  unsupported: {sentence.text}")
    if answer.citations:
        print("\nSources:")
    for c in answer.citations:
        mark = "" if c.supported else " (does not support the answer)"
        added = " (added by the checker)" if c.added else ""
        where = f"p. {c.page}, " if c.page is not None else ""
        print(f"  [{c.n}] {c.title} ({c.doc_id}, {where}chars {c.start}-{c.end}){mark}{added}")
        if c.url:
            print(f"      {c.url}")
        print(f'      "{c.quote}"')
    t = answer.timings
    first = f"first token {t.first_token_s:.1f} s, " if t.first_token_s is not None else ""
    trust = answer.trust.score if answer.trust else None
    score = "" if trust is None else f"; trust score {trust:.2f}"
    print(f"\n({answer.model}: {first}total {t.total_s:.1f} s, checks {t.checks_s:.1f} s{score})", file=sys.stderr)
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    index = _open(args)
    counts: dict[str, int] = {}
    for chunk in index.chunks():
        counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
    docs = index.documents()
    if args.json:
        rows = [
            {"doc_id": d.id, "title": d.title, "date": d.date, "source": d.source, "chunks": counts.get(d.id, 0)}
            for d in docs
        ]
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for d in docs:
        print(f"{d.id}\t{counts.get(d.id, 0)} chunks\t{d.date or '-'}\t{d.title}")
    print(f"{len(docs)} documents, {len(index)} chunks in {index.location}", file=sys.stderr)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    index = _open(args)
    index.remove(args.doc_id)
    print(f"removed {args.doc_id}; {len(index.documents())} documents left")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    import threading
    from dataclasses import replace

    from rag.generate.registry import check_model
    from rag.serve.mcp_server import serve_stdio
    from rag.serve.service import ChatService

    try:
        import mcp  # noqa: F401
    except ImportError:
        raise CommandError("rag mcp needs the MCP SDK: pip install mcp (into the project's .venv)") from None
    # The model in a supervised process of its own, as rag serve runs it: a crash costs one answer.
    settings = replace(_generation_settings(args), process=True)
    check_model(args.model or defaults.MODEL)
    service = ChatService.open(args.index_dir, model=args.model or defaults.MODEL, settings=settings, store=args.store,
                               collections=_served(args), create=False)
    # the client lists tools while the model loads
    threading.Thread(target=service.load, name="rag-model-load", daemon=True).start()
    serve_stdio(service)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace


    if not 0 < args.port < 65536:
        raise CommandError(f"--port must be 1 to 65535, got {args.port}")
    if args.concurrency < 1:
        raise CommandError(f"--concurrency must be >= 1, got {args.concurrency}")
    from rag.search.collections import Keys, parse_keys
    from rag.serve.app import import_gradio, launch
    from rag.serve.service import ChatService

    try:
        import_gradio()  # before the slow model load, so a missing install fails at once
    except ImportError as e:
        raise CommandError(str(e)) from None
    if args.time_limit < 0:
        raise CommandError(f"--time-limit must be >= 0 seconds, got {args.time_limit:g}")
    api_key = args.api_key if args.api_key is not None else os.environ.get("RAG_API_KEY") or None
    collection_keys = args.collection_key or [p for p in os.environ.get("RAG_COLLECTION_KEYS", "").split(",") if p.strip()]
    keys = Keys(api_key, parse_keys(collection_keys))
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if not loopback and not keys.closed and not args.no_auth:
        raise CommandError(f"serving on {args.host} without a key would let anyone who reaches the port read, add and "
                           "remove documents: give --api-key KEY (or RAG_API_KEY), or --no-auth to serve it open")
    # The model runs in a supervised process of its own (rag/generate/process.py): a crash in it costs one answer.
    settings = replace(_generation_settings(args), process=True, time_limit_s=args.time_limit or None)
    service = ChatService.open(
        args.index_dir, model=args.model or defaults.MODEL, k=args.k or defaults.K, mode=args.mode, settings=settings,
        concurrency=args.concurrency, store=args.store, collections=_served(args), keys=keys,
    )
    unknown = sorted(set(keys.collections) - set(service.collections()))
    if unknown:
        raise CommandError(f"--collection-key names a collection this server does not serve: {', '.join(unknown)}")
    if len(service.collections()) > 1:
        print(f"serving the collections {', '.join(service.collections())}; a request that names none gets {service.collection}", file=sys.stderr)
        if keys.closed and not keys.server:
            unopened = [n for n in service.collections() if n not in keys.collections]
            if unopened:
                print(f"no key opens {', '.join(unopened)}: give --api-key to reach them", file=sys.stderr)
    if not service.index.documents():
        print(f"the index at {service.index.location} is empty: add files in the Documents tab", file=sys.stderr)
    from rag.core.bundled import BUNDLED

    described = f" ({BUNDLED[service.model].description})" if service.model in BUNDLED else ""
    print(f"loading {service.model}{described}, the embedder and the index at {service.index.location} ...", file=sys.stderr)
    timings = service.load()
    print(f"ready to answer after {sum(timings.values()):.1f} s: model and its cached prompt prefix "
          f"{timings['model']:.1f} s, embedder and search {timings['search']:.1f} s", file=sys.stderr)
    if not loopback and not keys.closed:
        print(f"listening on {args.host} with no key (--no-auth): anyone who can reach this machine can use the app",
              file=sys.stderr)
    models = ", ".join(f"'{m}'" for m in ["rag", *(f"rag/{n}" for n in service.collections()[1:])])
    print(f"OpenAI-compatible API at http://{args.host}:{args.port}/v1 (models {models}) and MCP at /mcp; "
          f"{'a key is required, here and in the chat window' if keys.closed else 'no key required'}", file=sys.stderr)
    launch(service, host=args.host, port=args.port)
    return 0


def _served(args: argparse.Namespace) -> list[str]:
    """The collections ``rag serve`` or ``rag mcp`` serves: those named, else (no --index-dir)
    every existing one when there are named ones, else none (the one index, as before collections)."""
    from rag.search.collections import check_name, names

    if args.collection and args.index_dir is not None:
        raise CommandError("give --collection or --index-dir, not both")
    if args.collection:
        return [check_name(n) for n in args.collection]
    found = names() if args.index_dir is None else []
    return found if len(found) > 1 or (found and found[0] != "default") else []


def cmd_collections(args: argparse.Namespace) -> int:
    from rag.search.collections import collection_dir, names
    from rag.search.index import Index

    rows = []
    for name in names():
        index = Index.open(collection_dir(name), create=False)
        rows.append({"name": name, "documents": len(index.documents()), "chunks": len(index), "location": index.location})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for row in rows:
        print(f"{row['name']}\t{row['documents']} documents\t{row['chunks']} chunks\t{row['location']}")
    if not rows:
        print("no collections yet: `rag index PATH --collection NAME` creates one", file=sys.stderr)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from rag.search.collections import check_name
    from rag.serve.conversations import ConversationStore

    store = ConversationStore()
    key = args.api_key if args.api_key is not None else os.environ.get("RAG_API_KEY") or None
    if args.action == "list":
        found = store.list(check_name(args.of_collection) if args.of_collection else None, key)
        if args.json:
            print(json.dumps([c.to_dict() for c in found], ensure_ascii=False))
            return 0
        for c in found:
            print(f"{c.id}\t{c.updated[:16].replace('T', ' ')} UTC\t{c.collection}\t{c.turn_count} questions\t{c.title}")
        if not found:
            print("no saved conversations" + (" with this key" if key else " made without a key"), file=sys.stderr)
        return 0
    text = store.export(args.id, "md" if args.action == "show" else args.format, key)
    if args.action == "export" and args.out is not None:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    sys.stdout.write(text)
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    from rag.generate.selftest import smoke_test

    print(f"selftest: {smoke_test(args.model or defaults.MODEL)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import time

    from rag.evaluate.metrics import (
        Setting,
        check_gold,
        corpus_index_dir,
        load_gold,
        parse_compare,
        unknown_sources,
    )
    from rag.evaluate.report import evaluate
    from rag.search.index import Index, default_index_dir
    from rag.stores.base import IndexOpenError
    from rag.stores.factory import default_store

    gold = load_gold(args.gold)
    check_gold(gold)
    if args.limit is not None:
        if args.limit < 1:
            raise CommandError(f"--limit must be > 0, got {args.limit}")
        gold = gold[: args.limit]
    if not gold:
        raise CommandError(f"no questions in {args.gold}")
    base = Setting(mode=args.mode, model=args.model or defaults.MODEL, retrieval_only=args.retrieval_only,
                   **({"k": args.k} if args.k is not None else {}))
    settings = parse_compare(args.compare, base)
    if args.embedder is not None and args.corpus is None:
        raise CommandError("--embedder chooses the embedder of the --corpus index; pass --corpus too")
    if args.corpus is not None:
        index_dir = args.index_dir or corpus_index_dir(args.corpus, args.embedder)
        index = Index.open(index_dir, store=args.store, embedder=args.embedder)
        report = index.add([args.corpus], progress=True)
        if not (report.added or report.updated or report.unchanged):
            raise CommandError(f"no documents to index in {args.corpus} ({len(report.skipped)} skipped)")
        print(f"{report.summary()}; index at {index.location}", file=sys.stderr)
    else:
        index_dir = args.index_dir or default_index_dir()
        try:
            index = Index.open(index_dir, store=args.store, create=False)
        except IndexOpenError:
            if Path(index_dir).exists() or (args.store or default_store()) != defaults.STORE:
                raise
            raise CommandError(f"no index at {index_dir}; run `rag index seeds` or pass --corpus PATH") from None
    missing, named = unknown_sources(gold, index)
    if named and len(missing) == named:
        raise CommandError(
            f"none of the {named} source documents named in {args.gold} is in the index at {index.location}; "
            "pass --corpus with the documents the gold set was written for"
        )
    if missing:
        print(f"warning: {len(missing)} of {named} gold source documents are not in the index: "
              f"{', '.join(sorted(missing)[:5])}{' ...' if len(missing) > 5 else ''}", file=sys.stderr)
    generation = _generation_settings(args) if args.threads is not None else None
    out = args.out or Path("eval") / "results" / time.strftime("%Y%m%d-%H%M%S")
    context = {"command": _eval_command(args), "gold": str(args.gold), "index": index.location}
    try:
        results = evaluate(gold, index, settings, out, generation=generation, progress=True, context=context)
    except KeyboardInterrupt:
        print(f"rag: interrupted; results so far in {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    for result in results:
        m = result.metrics
        r = m["retrieval"]
        line = f"{result.setting.label}: hit@1 {_fmt(r['hit@1'])}, all gold in top k {_fmt(r['all@k'])}"
        if "answers" in m:
            line += (f", accuracy {_fmt(m['answers']['accuracy'])}, F1 {_fmt(m['answers']['f1'])}, "
                     f"cited gold-doc precision {_fmt(m['citations']['gold_doc_precision'])}, "
                     f"refusal accuracy {_fmt(m['refusals']['refusal_accuracy'])}")
        print(line)
    print(f"wrote {out / 'report.md'}")
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _eval_command(args: argparse.Namespace) -> str:
    """The ``rag eval`` command line that reproduces this run, for the report."""
    import shlex

    words = ["rag", "eval", "--gold", str(args.gold)]
    for flag, value in (("--corpus", args.corpus), ("--embedder", args.embedder), ("--index-dir", args.index_dir),
                        ("--store", args.store), ("--model", args.model),
                        ("--k", args.k), ("--limit", args.limit), ("--threads", args.threads)):
        if value is not None:
            words += [flag, str(value)]
    if args.mode != defaults.MODE:
        words += ["--mode", args.mode]
    if args.retrieval_only:
        words.append("--retrieval-only")
    for spec in args.compare:
        words += ["--compare", spec]
    return shlex.join(words)


def _collection_dir(args: argparse.Namespace) -> Path:
    """The index directory of ``--collection``: it must exist except for ``rag index``, which creates it."""
    from rag.search.collections import collection_dir, names

    if args.index_dir is not None:
        raise CommandError("give --collection or --index-dir, not both")
    where = collection_dir(args.collection)
    if args.func is not cmd_index and args.collection not in names():
        known = ", ".join(names()) or "none yet"
        raise CommandError(f"no collection '{args.collection}' (collections: {known}); "
                           f"`rag index PATH --collection {args.collection}` creates it")
    return where


def _error_types() -> tuple[type[BaseException], ...]:
    """What becomes one line on stderr: the errors meant for users (rag.core.errors) and a file that
    cannot be found or read; anything else is a bug and keeps its traceback."""
    return (RagError, FileNotFoundError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if isinstance(getattr(args, "collection", None), str):  # one collection: its index directory
            args.index_dir = _collection_dir(args)
        return func(args)
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _error_types() as e:
        message = str(e)
        print(f"rag: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        print(f"rag: error: {e.strerror or e} ({e.filename or 'I/O'})", file=sys.stderr)
        return EXIT_ERROR
