"""Load documents from files and folders: .txt, .md, .html, .pdf, .docx, .epub and BEIR-style .jsonl;
and from web pages and feeds by URL (:mod:`rag.ingest.web`).

Every file becomes zero or more cleaned :class:`~rag.core.types.Document` objects, or a
:class:`Skipped` record naming the file and the reason (empty, binary, not UTF-8,
unsupported, malformed). Loading never raises for one bad file: a corpus is whatever
could be read, and the caller reports the rest.

A document's id is its path relative to the folder being indexed, without the
extension (``seeds/000_x.txt`` indexed as ``seeds`` -> ``000_x``); a JSONL line's id is
its ``_id`` or ``id`` field.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rag.core.errors import RagError
from rag.core.types import Document, Skipped
from rag.ingest.cleaning import clean, find_date, guess_title, iso_date, normalize
from rag.ingest.guards import LimitExceeded, Limits, check_markup, check_zip, read_member
from rag.ingest.sandbox import ReaderCrashed, borrowed
from rag.ingest.web import extract, is_url, load_urls

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx", ".epub", ".jsonl"}
# Read by a parser in a child process with a time and memory budget (rag/ingest/sandbox.py); plain
# text, Markdown and JSONL are read here, in time and memory that grow with their size.
SANDBOXED_SUFFIXES = HTML_SUFFIXES | {".pdf", ".docx", ".epub"}


def _has_control(text: str) -> bool:
    # subtle: ids are printed by `rag docs` and shown in the UI; an escape sequence in a
    # file name or a JSONL id could otherwise rewrite the user's terminal.
    return any(unicodedata.category(c) == "Cc" for c in text)


class LoadError(RagError, ValueError):
    """Raised inside a loader for a file that cannot be read; turned into :class:`Skipped`."""


def iter_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, Path]]:
    """Yield ``(file, root)`` for every file under ``paths``, folders walked recursively
    in sorted order. ``root`` is what the document id is taken relative to.

    Raises:
        FileNotFoundError: a named path does not exist.
    """
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {raw}")
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if not any(part.startswith(".") for part in file.relative_to(path).parts):
                    yield file, path
        else:
            yield path, path.parent


def doc_id_for(file: Path, root: Path) -> str:
    return file.relative_to(root).with_suffix("").as_posix()


def source_file(source: str) -> Path:
    """The file a document's ``source`` names (a JSONL line's ``file:LINE`` without the line)."""
    path, sep, line = source.rpartition(":")
    return Path(path) if sep and line.isdigit() and path.lower().endswith(".jsonl") else Path(source)


def came_from(source: str, paths: Iterable[str | Path]) -> bool:
    """Whether the document from ``source`` was read from one of ``paths`` (a file, or one
    under a folder), comparing resolved paths."""
    if is_url(source):
        return False  # a web page is kept until removed: a page that fails to load may come back
    file = source_file(source).resolve()
    return any(file == (root := Path(p).resolve()) or file.is_relative_to(root) for p in paths)


def load(paths: Iterable[str | Path], limits: Limits | None = None) -> Iterator[Document | Skipped]:
    """Yield a Document for every readable document under ``paths``, a Skipped for the rest.

    A path that is an ``http(s)://`` URL is fetched (:func:`rag.ingest.web.load_urls`) after the files.
    What reading one document may cost is ``limits`` (default: :meth:`Limits.from_env`); a document
    past them is a Skipped that names the limit (:mod:`rag.ingest.guards`).

    Example:
        >>> docs = [d for d in load(["seeds"]) if isinstance(d, Document)]
    """
    paths = list(paths)
    limits = limits or Limits.from_env()
    urls = [str(p) for p in paths if is_url(p)]
    with borrowed(limits) as sandbox:
        for file, root in iter_files([p for p in paths if not is_url(p)]):
            suffix = file.suffix.lower()
            if suffix not in SUPPORTED_SUFFIXES:
                yield Skipped(str(file), f"unsupported file type '{suffix or '(none)'}'")
                continue
            try:
                if suffix == ".jsonl":
                    yield from _load_jsonl(file)
                elif _has_control(doc_id_for(file, root)):
                    yield Skipped(str(file), "the file name contains control characters")
                elif suffix in SANDBOXED_SUFFIXES:
                    yield sandbox.run(_load_file, file, doc_id_for(file, root), suffix, limits)
                else:
                    yield _load_file(file, doc_id_for(file, root), suffix, limits)
            except (LoadError, LimitExceeded, ReaderCrashed) as e:
                yield Skipped(str(file), str(e))
        yield from load_urls(urls, sandbox=sandbox)


def _read_text(file: Path) -> str:
    data = file.read_bytes()
    if not data.strip():
        raise LoadError("empty file")
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LoadError(f"not valid UTF-8 (byte {e.start})") from None


def _load_file(file: Path, doc_id: str, suffix: str, limits: Limits) -> Document:
    title, date = "", None
    stated = None  # the date the file's metadata gives, weighed against the text's own (find_date)
    page_starts: tuple[int, ...] = ()
    if suffix == ".pdf":
        text, page_starts, stated = _pdf_text(file)
    elif suffix == ".docx":
        check_zip(file, limits)
        title, text, stated = _docx_text(file)
        text = clean(text)
    elif suffix == ".epub":
        check_zip(file, limits)
        title, text, stated = _epub_text(file, limits)
        text = clean(text)
    elif suffix in HTML_SUFFIXES:
        # trafilatura keeps the article (F1 0.95 against 0.80 for the walk below on 181 real
        # pages, eval/README.md "Web pages"); the walk reads what it finds nothing in.
        html = _read_text(file)
        check_markup(html, limits, "the HTML")
        title, text, date = extract(html)
        if not text.strip():
            title, text = _html_text(html)
        text = clean(text)
    elif suffix in MARKDOWN_SUFFIXES:
        title, text = _markdown_text(_read_text(file))
        text = clean(text)
    else:
        text = clean(_read_text(file))
    if not text.strip():
        raise LoadError("no text left after cleaning")
    return Document(
        id=doc_id,
        title=title or guess_title(text) or doc_id,
        text=text,
        source=str(file),
        date=date or find_date(text, stated),
        page_starts=page_starts,
    )


def _load_jsonl(file: Path) -> Iterator[Document | Skipped]:
    content = _read_text(file)
    for lineno, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{file}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield Skipped(where, f"malformed JSON ({e.msg})")
            continue
        except RecursionError:
            yield Skipped(where, "JSON nested too deeply to read")
            continue
        if not isinstance(record, dict):
            yield Skipped(where, "a line must be a JSON object")
            continue
        doc_id = record.get("_id", record.get("id"))
        text = record.get("text")
        if not isinstance(doc_id, (str, int)) or str(doc_id).strip() == "":
            yield Skipped(where, "missing '_id' or 'id'")
            continue
        if _has_control(str(doc_id)):
            yield Skipped(where, "the id contains control characters")
            continue
        if not isinstance(text, str) or not text.strip():
            yield Skipped(where, "missing or empty 'text'")
            continue
        text = clean(text)
        if not text:
            yield Skipped(where, "no text left after cleaning")
            continue
        title = record.get("title")
        title = normalize(title) if isinstance(title, str) and title.strip() else guess_title(text)
        yield Document(id=str(doc_id), title=title, text=text, source=where, date=find_date(text))


_DROP_TAGS = (
    "script", "style", "noscript", "nav", "header", "footer", "aside", "form",
    "iframe", "svg", "button", "template", "select", "head",
)  # fmt: skip
_BLOCK_TAGS = (
    "p", "div", "section", "article", "main", "li", "ul", "ol", "tr", "table", "pre",
    "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption", "dd", "dt",
)  # fmt: skip


def _html_text(html: str) -> tuple[str, str]:
    """Visible article text of an HTML page, one block element per line, and its title."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("h1") or soup.find("title")
    title = normalize(title_tag.get_text(" ")) if title_tag else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.select('[role="navigation"], [role="banner"], [role="contentinfo"]'):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return title, soup.get_text()


_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__|`)")


def _markdown_text(md: str) -> tuple[str, str]:
    """Markdown as plain text (heading marks, links and emphasis removed) and its first heading."""
    heading = re.search(r"^\s{0,3}#{1,6}\s+(.+)$", md, re.MULTILINE)
    title = heading.group(1).strip().strip("#").strip() if heading else ""
    text = _MD_IMAGE.sub("", md)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_HEADING.sub("", text)
    text = _MD_EMPHASIS.sub("", text)
    return normalize(_MD_EMPHASIS.sub("", title)), text  # a heading can hold control characters too


def _pdf_text(file: Path) -> tuple[str, tuple[int, ...], str | None]:
    """Cleaned text of every page, pages separated by a blank line, where each page starts, and the
    creation date in the PDF's metadata (else its modification date)."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(file)
        if reader.is_encrypted:
            raise LoadError("encrypted PDF")
        pages = [clean(page.extract_text() or "") for page in reader.pages]
    except LoadError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged PDF can fail anywhere inside pypdf
        raise LoadError(f"unreadable PDF ({type(e).__name__}: {e})") from None
    text, starts = "", []
    for page in pages:
        if text:
            text += "\n\n"
        starts.append(len(text))
        text += page
    return text, tuple(starts), _pdf_date(reader)


def _pdf_date(reader: Any) -> str | None:
    """The PDF's ``/CreationDate`` (else ``/ModDate``) as ``YYYY-MM-DD``; None when absent or malformed."""
    try:
        metadata = reader.metadata
        if metadata is None:
            return None
        return iso_date(metadata.creation_date) or iso_date(metadata.modification_date)
    except Exception:  # noqa: BLE001 - pypdf raises on a malformed date string; the text may still say one
        return None


def _docx_text(file: Path) -> tuple[str, str, str | None]:
    """A Word file's title, its paragraphs (headings included) and tables in document order, and
    its date.

    A table becomes one line per row, its cells joined by " | ". The title is the document's
    own (its properties), else its first Title or Heading paragraph; the date is when it was
    created (its properties), else when it was last modified.
    """
    import docx
    from docx.table import Table

    try:
        document = docx.Document(str(file))
        lines: list[str] = []
        heading = ""
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines += [" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows]
                continue
            style = block.style.name if block.style is not None else ""
            if not heading and block.text.strip() and (style == "Title" or style.startswith("Heading")):
                heading = block.text
            lines.append(block.text)
        properties = document.core_properties
        title = properties.title or heading
        date = iso_date(properties.created) or iso_date(properties.modified)
    except Exception as e:  # noqa: BLE001 - a damaged .docx fails inside zipfile, lxml or python-docx
        raise LoadError(f"unreadable Word file ({type(e).__name__}: {e})") from None
    return normalize(title), "\n".join(lines), date


def _epub_text(file: Path, limits: Limits) -> tuple[str, str, str | None]:
    """The book's title, an EPUB's chapters in spine (reading) order, each chapter's title kept as
    a line, and the book's date (its publication ``dc:date``, else the first full one).

    An EPUB is a zip: ``META-INF/container.xml`` names the package file (OPF), whose manifest
    lists the chapters and whose spine gives their order. Read here with zipfile and
    BeautifulSoup rather than ebooklib, whose AGPL-3.0 licence would bind this MIT project.
    Every part is read as a stream up to the per-file limit and checked as markup before it is
    parsed (:mod:`rag.ingest.guards`).
    """
    import posixpath
    import zipfile

    from bs4 import BeautifulSoup

    try:
        with zipfile.ZipFile(file) as book:

            def markup(name: str) -> bytes:
                data = read_member(book, name, limits)
                check_markup(data, limits, f"'{name}'")
                return data

            # The package files are XML (parsed by lxml); the chapters are XHTML.
            container = BeautifulSoup(markup("META-INF/container.xml"), "xml")
            rootfile = container.find("rootfile")
            if rootfile is None or not rootfile.get("full-path"):
                raise LoadError("not an EPUB (no package file named in META-INF/container.xml)")
            opf_path = str(rootfile["full-path"])
            opf = BeautifulSoup(markup(opf_path), "xml")
            title_tag = opf.find("dc:title") or opf.find("title")
            # EPUB 2 marks each dc:date with an opf:event (publication, modification...); EPUB 3
            # has one dc:date, the publication's.
            dates = [tag for tag in opf.find_all("date") if tag.prefix == "dc" or tag.name == "dc:date"]
            events = [str(tag.get("opf:event") or tag.get("event") or "publication").lower() for tag in dates]
            ordered = [t for t, e in zip(dates, events) if e == "publication"] + dates
            date = next((d for d in (iso_date(t.get_text(strip=True)) for t in ordered) if d), None)
            manifest = {str(item.get("id")): str(item.get("href")) for item in opf.find_all("item")}
            base = posixpath.dirname(opf_path)
            chapters = []
            for ref in opf.find_all("itemref"):
                href = manifest.get(str(ref.get("idref")))
                if href is None:
                    continue
                page = markup(posixpath.normpath(posixpath.join(base, href))).decode("utf-8", "replace")
                heading, text = _html_text(page)
                if heading and heading not in text:  # a title only in <head>: keep it as the first line
                    text = f"{heading}\n{text}"
                chapters.append(text)
    except (LoadError, LimitExceeded):
        raise
    except Exception as e:  # noqa: BLE001 - a damaged EPUB fails inside zipfile or the parser
        raise LoadError(f"unreadable EPUB ({type(e).__name__}: {e})") from None
    return normalize(title_tag.get_text(" ")) if title_tag else "", "\n\n".join(chapters), date

