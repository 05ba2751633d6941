"""Web pages and feeds in: ``rag index https://...`` (issue 30).

Each URL is fetched with httpx (redirects followed, a timeout, a size limit) and its main text,
title and publication date are extracted with trafilatura, a maintained extractor for exactly
this job (navigation, comments and related-story lists left out). An RSS or Atom feed indexes
the pages its entries link to. Every failure is one :class:`~rag.ingest.loading.Skipped` line (HTTP
404, not a web page, too large, unreachable); nothing raises for one bad URL.

A page's document id is its URL without the scheme (``example.com/news/story``), its source
the URL as given, so indexing the same URL again (or ``--sync``) replaces the page when its
text changed and costs nothing when it did not.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rag.core.errors import RagError
from rag.core.types import Document
from rag.ingest.cleaning import clean, find_date, guess_title, normalize
from rag.ingest.guards import LimitExceeded, Limits, check_markup

if TYPE_CHECKING:
    from rag.core.types import Skipped
    from rag.ingest.sandbox import Sandbox

MAX_PAGE_MB = 5
MAX_PAGE_BYTES = MAX_PAGE_MB * 1024 * 1024
TIMEOUT_S = 20.0
MAX_FEED_ENTRIES = 100
USER_AGENT = "rag-index/1 (+https://github.com; a local question-answering assistant)"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/xml", "text/xml")


class FetchError(RagError, ValueError):
    """A URL that gives no page: its one-line reason."""


def is_url(path: object) -> bool:
    return isinstance(path, str) and path.lower().startswith(("http://", "https://"))


def url_id(url: str) -> str:
    """The document id of a page: its URL without the scheme or a trailing slash."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return parts.netloc.lower() + path + (f"?{parts.query}" if parts.query else "")


def fetch(url: str, timeout: float = TIMEOUT_S, max_bytes: int = MAX_PAGE_BYTES) -> tuple[str, str, bytes]:
    """``(final URL, content type, body)`` of ``url``; :class:`FetchError` when there is none."""
    import httpx

    try:
        with httpx.Client(follow_redirects=True, timeout=timeout, headers={"User-Agent": USER_AGENT}) as client:
            with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise FetchError(f"HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(f"larger than {max_bytes // (1024 * 1024)} MB")
                body = bytearray()
                for piece in response.iter_bytes():
                    body += piece
                    if len(body) > max_bytes:
                        raise FetchError(f"larger than {max_bytes // (1024 * 1024)} MB")
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                return str(response.url), kind, bytes(body)
    except httpx.TooManyRedirects:
        raise FetchError("too many redirects") from None
    except httpx.TimeoutException:
        raise FetchError(f"no answer in {timeout:g} s") from None
    except httpx.HTTPError as e:
        raise FetchError(f"cannot fetch it ({type(e).__name__}: {e})") from None


def extract(html: str, url: str | None = None) -> tuple[str, str, str | None]:
    """``(title, text, date)`` of a page's article by trafilatura (navigation, comments and
    related stories left out; eval/README.md, "Web pages"); the text is empty when it finds none."""
    import trafilatura

    # No extensive date search: it reads "Copyright 2024" in a footer as 2024-01-01.
    found = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                        date_extraction_params={"extensive_search": False, "original_date": True})
    values: dict[str, Any] = found.as_dict() if found is not None and not isinstance(found, dict) else (found or {})
    # One block a line in trafilatura's text: a blank line between blocks, as the other loaders give.
    text = "\n\n".join(line for line in (values.get("text") or "").splitlines() if line.strip())
    return normalize(values.get("title") or ""), text, values.get("date")


def page(url: str, html: str) -> Document:
    """The page's main text, title and date as a Document (id and source: ``url``)."""
    title, text, date = extract(html, url)
    text = clean(text)
    if not text.strip():
        raise FetchError("no article text found on the page")
    return Document(id=url_id(url), title=title or guess_title(text) or url_id(url), text=text, source=url,
                    date=date or find_date(text))


def feed_links(xml: bytes) -> list[str] | None:
    """The entry links of an RSS or Atom feed, or None when ``xml`` is not one."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    tag = re.sub(r"^\{.*\}", "", root.tag)
    if tag == "rss":
        links = [(item.findtext("link") or "").strip() for item in root.iter("item")]
    elif tag == "feed":
        links = [link.get("href", "") for entry in root if entry.tag.endswith("entry")
                 for link in entry if link.tag.endswith("link") and link.get("rel", "alternate") == "alternate"]
    else:
        return None
    return [link for link in links if is_url(link)][:MAX_FEED_ENTRIES]


def load_urls(
    urls: Iterable[str], timeout: float = TIMEOUT_S, max_bytes: int = MAX_PAGE_BYTES, sandbox: Sandbox | None = None,
) -> Iterator[Document | Skipped]:
    """A Document for every page under ``urls`` (a feed's entries included), a Skipped for each
    URL that gives none.

    A page or feed goes through the same guards as a file (:mod:`rag.ingest.guards`: its markup's
    size and depth), and a page is read in ``sandbox`` (time and memory budgets) when one is given.
    """
    from rag.core.types import Skipped
    from rag.ingest.sandbox import ReaderCrashed

    limits = sandbox.limits if sandbox is not None else Limits.from_env()

    def one(url: str, in_feed: bool) -> Iterator[Document | Skipped]:
        try:
            final, kind, body = fetch(url, timeout, max_bytes)
            if kind in _HTML_TYPES or (not kind and body.lstrip()[:1] == b"<" and b"<html" in body[:2048].lower()):
                html = body.decode("utf-8", "replace")
                check_markup(html, limits, "the page")
                yield sandbox.run(page, url, html) if sandbox is not None else page(url, html)
                return
            if kind in _FEED_TYPES and not in_feed:
                check_markup(body, limits, "the feed")
            links = feed_links(body) if kind in _FEED_TYPES and not in_feed else None
            if links is None:
                raise FetchError(f"not a web page or feed ({kind or 'no content type'})")
            if not links:
                raise FetchError("a feed with no entry links")
            for link in links:
                yield from one(link, in_feed=True)
        except (FetchError, LimitExceeded, ReaderCrashed) as e:
            yield Skipped(url, str(e))

    for url in urls:
        yield from one(url, in_feed=False)
