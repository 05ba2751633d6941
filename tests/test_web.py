"""`rag index https://...`: web pages and feeds through a local HTTP server (no network)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag.core.types import Document, Skipped
from rag.ingest.loading import load
from rag.ingest.web import MAX_PAGE_BYTES, url_id
from rag.search.index import Index

from .conftest import FakeEmbedder, run_cli

STORY = """<html><head><title>Harbour News | Festival</title>
<meta property="article:published_time" content="2024-03-05"></head><body>
<nav><a href="/">Home</a> <a href="/news">News</a> <a href="/sport">Sport</a></nav>
<article><h1>Harbour festival opens</h1>
<p>The harbour festival in Tallinn opened on Saturday with fireworks and tall ships. Organisers expect
40,000 visitors at the old port over the weekend, the city said.</p>
<p>The mayor opened the festival at noon, and the first ships arrived in the morning from Helsinki.</p>
</article>
<section class="comments"><h3>Comments</h3><p>Buy cheap watches at my shop, best prices!</p></section>
<aside class="related"><h3>Related stories</h3><ul><li><a href="/a">Ferry strike ends in Riga</a></li>
<li><a href="/b">New bridge opens in Tartu</a></li></ul></aside>
<footer>Copyright 2024 Harbour News</footer></body></html>"""
SECOND = STORY.replace("Harbour festival opens", "Ferry strike ends").replace("harbour festival in Tallinn opened", "ferry strike in Riga ended")
FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour News</title>
<item><title>Festival</title><link>{base}/story</link></item>
<item><title>Ferry</title><link>{base}/second</link></item></channel></rss>"""


@pytest.fixture
def site() -> Iterator[str]:
    pages: dict[str, tuple[int, str, bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/old":
                self.send_response(301)
                self.send_header("Location", "/story")
                self.end_headers()
                return
            status, kind, body = pages.get(self.path, (404, "text/html", b"<html><body>Not found</body></html>"))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading a page too large: what it should do

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_port}"
    pages.update({
        "/story": (200, "text/html; charset=utf-8", STORY.encode()),
        "/second": (200, "text/html", SECOND.encode()),
        "/data.json": (200, "application/json", b'{"a": 1}'),
        "/huge": (200, "text/html", b"<html>" + b"x" * (MAX_PAGE_BYTES + 10) + b"</html>"),
        "/feed.xml": (200, "application/rss+xml", FEED.format(base=base).encode()),
        "/deep": (200, "text/html", f"<html><body>{'<div>' * 200_000}deep</body></html>".encode()),
    })
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield base
    finally:
        server.shutdown()


def test_a_page_keeps_its_article_and_drops_navigation_comments_and_related_stories(site: str) -> None:
    [doc] = list(load([f"{site}/story"]))
    assert isinstance(doc, Document)
    assert doc.title == "Harbour festival opens" and doc.date == "2024-03-05"
    assert "40,000 visitors" in doc.text and "first ships arrived" in doc.text
    for boilerplate in ("Sport", "cheap watches", "Ferry strike", "Copyright"):
        assert boilerplate not in doc.text
    assert doc.source == f"{site}/story" and doc.id == url_id(f"{site}/story") == f"127.0.0.1:{site.rsplit(':', 1)[1]}/story"


def test_failures_are_one_line_each_and_a_redirect_is_followed(site: str) -> None:
    results = {r.source if isinstance(r, (Skipped, Document)) else "": r
               for r in load([f"{site}/old", f"{site}/missing", f"{site}/data.json", f"{site}/huge"])}
    assert isinstance(results[f"{site}/old"], Document) and "40,000 visitors" in results[f"{site}/old"].text  # type: ignore[union-attr]
    reasons = {url.rsplit("/", 1)[1]: str(r) for url, r in results.items() if isinstance(r, Skipped)}
    assert "HTTP 404" in reasons["missing"]
    assert "not a web page or feed (application/json)" in reasons["data.json"]
    assert "larger than 5 MB" in reasons["huge"]
    assert all("\n" not in reason for reason in reasons.values())


def test_a_feed_indexes_the_pages_its_entries_link(site: str, tmp_path: Path) -> None:
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    report = index.add([f"{site}/feed.xml"])
    assert sorted(report.added) == sorted([url_id(f"{site}/story"), url_id(f"{site}/second")])
    again = index.add([f"{site}/feed.xml"], sync=True)  # re-fetched: unchanged pages cost nothing
    assert again.chunks == 0 and len(again.unchanged) == 2 and again.removed == []
    hits = index.search("Where did the ferry strike end?", k=1, mode="bm25")
    assert hits[0].doc_id == url_id(f"{site}/second")


def test_the_cli_indexes_a_url_and_reports_a_bad_one(
    site: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_model: None
) -> None:
    code, out, err = run_cli(capsys, "index", f"{site}/story", f"{site}/missing", "--index-dir", str(tmp_path / "ix"))
    assert code == 0 and "1 added" in out
    assert f"skipped {site}/missing: HTTP 404" in err
    code, _, err = run_cli(capsys, "index", f"{site}/missing", "--index-dir", str(tmp_path / "ix2"))
    assert code == 1 and "no documents to index" in err and len(err.strip().splitlines()) == 2


def test_an_answer_from_a_page_links_its_citation_to_the_page(site: str, tmp_path: Path) -> None:
    from rag.answer.assistant import Assistant
    from rag.serve.render import render_sources

    from .conftest import ScriptedGenerator

    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([f"{site}/story"])
    answer = Assistant(index, generator=ScriptedGenerator("Organisers expect 40,000 visitors at the old port [1].")).ask(
        "How many visitors do the organisers expect?")
    assert not answer.refused, answer.refusal_reason
    [citation] = answer.citations
    assert citation.url == f"{site}/story" and answer.to_dict()["citations"][0]["url"] == f"{site}/story"
    assert 'target="_blank" rel="noopener noreferrer"' in render_sources(answer) and "<a href=" in render_sources(answer)


def test_a_page_built_to_choke_the_parser_is_refused_in_a_moment(site: str, tmp_path: Path) -> None:
    import time

    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([f"{site}/story"])
    started = time.monotonic()
    report = index.add([f"{site}/deep", f"{site}/second"])
    assert time.monotonic() - started < 10
    assert [(s.source, s.reason) for s in report.skipped] == [
        (f"{site}/deep", "the page nests elements more than 512 deep, over the limit of 512 (RAG_MAX_DEPTH)")]
    assert len(index.documents()) == 2  # the story kept, the second page added
