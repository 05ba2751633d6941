"""Limits on what reading one document may cost: a hostile file is refused in one line, cheaply.

Three kinds of file can make a reader use far more memory or time than their size suggests:

- **Archives** (DOCX and EPUB are zips): a part of a few kilobytes can inflate to gigabytes.
  :func:`check_zip` reads the zip's directory, never its data, and refuses a file whose members
  would inflate past the limits (in total, one member, or by ratio). That check is enough because
  :mod:`zipfile` never inflates a member past the size its directory declares (it stops there and
  fails the CRC), and :func:`read_member` reads one member as a stream up to the limit.
- **Markup** (HTML, XHTML chapters, XML): 200,000 nested elements in 2 MB keep an HTML parser busy
  for minutes. :func:`check_markup` scans tags without building a tree and refuses markup that is
  too large or nests too deeply.
- **Anything else a parser can choke on** (a PDF's content streams, a bug in a parser): reading one
  PDF, DOCX, EPUB or HTML document runs in a child process (:mod:`rag.ingest.sandbox`) that is
  stopped past a time budget and cannot grow past a memory budget.

The limits are :class:`Limits`, defaults in :mod:`rag.core.defaults`, each one settable by an
environment variable (``RAG_MAX_ARCHIVE_MB=1024 rag index books/``).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import IO

from rag.core import defaults
from rag.core.errors import InvalidInput, RagError

MB = 1024 * 1024
RATIO_CHECKED_FROM = 1 * MB  # small members compress absurdly well (a run of spaces): not a bomb


class LimitExceeded(RagError, ValueError):
    """A document refused by one of the :class:`Limits`; the message names the limit and its setting."""


@dataclass(frozen=True)
class Limits:
    """What reading one document may cost (see the module docstring); ``RAG_...`` names the
    environment variable of each (:meth:`from_env`)."""

    archive_mb: float = defaults.MAX_ARCHIVE_MB  # RAG_MAX_ARCHIVE_MB
    member_mb: float = defaults.MAX_MEMBER_MB  # RAG_MAX_MEMBER_MB
    ratio: float = defaults.MAX_RATIO  # RAG_MAX_RATIO
    members: int = defaults.MAX_MEMBERS  # RAG_MAX_MEMBERS
    markup_mb: float = defaults.MAX_MARKUP_MB  # RAG_MAX_MARKUP_MB
    depth: int = defaults.MAX_DEPTH  # RAG_MAX_DEPTH
    seconds: float = defaults.EXTRACT_SECONDS  # RAG_EXTRACT_SECONDS
    memory_mb: int = defaults.EXTRACT_MEMORY_MB  # RAG_EXTRACT_MEMORY_MB

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidInput(f"{ENVIRONMENT[f.name]} must be a number > 0, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, with any limit set in the environment (``RAG_MAX_DEPTH=1024``) taking its place.

        Raises:
            InvalidInput: a variable that is not a number > 0.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for f in fields(cls):
            raw = environ.get(ENVIRONMENT[f.name], "").strip()
            if raw:
                kind = int if f.type in ("int", int) else float
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise InvalidInput(f"{ENVIRONMENT[f.name]} must be a number > 0, got {raw!r}") from None
        return cls(**values)  # type: ignore[arg-type]


ENVIRONMENT = {
    "archive_mb": "RAG_MAX_ARCHIVE_MB", "member_mb": "RAG_MAX_MEMBER_MB", "ratio": "RAG_MAX_RATIO",
    "members": "RAG_MAX_MEMBERS", "markup_mb": "RAG_MAX_MARKUP_MB", "depth": "RAG_MAX_DEPTH",
    "seconds": "RAG_EXTRACT_SECONDS", "memory_mb": "RAG_EXTRACT_MEMORY_MB",
}  # fmt: skip


def _over(what: str, value: str, limit: str, setting: str) -> LimitExceeded:
    return LimitExceeded(f"{what} {value}, over the limit of {limit} ({ENVIRONMENT[setting]})")


def _mb(size: float) -> str:
    return f"{size / MB:,.0f} MB" if size >= 10 * MB else f"{size / MB:,.1f} MB"


# ---------------------------------------------------------------------------------- archives


def check_zip(file: str | os.PathLike[str] | IO[bytes], limits: Limits) -> None:
    """Refuse a zip whose members would inflate past ``limits`` (read from its directory only).

    A file that is not a zip passes: the reader says it cannot read it.

    Raises:
        LimitExceeded: too many members, one too large or too compressed, or too large in total.
    """
    try:
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return
    if len(members) > limits.members:
        raise _over("holds", f"{len(members):,} files", f"{limits.members:,}", "members")
    total = 0
    for member in members:
        size = member.file_size
        if size > limits.member_mb * MB:
            raise _over(f"'{member.filename}' inflates to", _mb(size), _mb(limits.member_mb * MB), "member_mb")
        if size > RATIO_CHECKED_FROM and size > limits.ratio * max(member.compress_size, 1):
            ratio = size / max(member.compress_size, 1)
            raise _over(f"'{member.filename}' inflates", f"{ratio:,.0f} times", f"{limits.ratio:g} times", "ratio")
        total += size
        if total > limits.archive_mb * MB:
            raise _over("inflates to more than", _mb(total), _mb(limits.archive_mb * MB), "archive_mb")


def read_member(archive: zipfile.ZipFile, name: str, limits: Limits) -> bytes:
    """One member of ``archive``, read as a stream and never past the per-member limit."""
    most = int(limits.member_mb * MB)
    with archive.open(name) as stream:
        data = stream.read(most + 1)
    if len(data) > most:
        raise _over(f"'{name}' inflates to more than", _mb(most), _mb(most), "member_mb")
    return data


# ---------------------------------------------------------------------------------- markup

_TAG = re.compile(r"<(?:(!--)|(/?)([A-Za-z][^\s/>]*))")
_RAW_TEXT = {"script", "style", "textarea", "title"}  # their content is text, not tags
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
# An HTML parser closes these when the next one opens (<p>a<p>b is two paragraphs, not nested).
_CLOSES_ITSELF = {"p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "rb", "rt", "rp", "tbody", "thead", "tfoot", "colgroup"}


def markup_depth(text: str, most: int) -> int:
    """How deeply the elements of ``text`` (HTML or XML) nest, counted up to ``most + 1``.

    A linear scan of the tags, no tree: comments and the text of script and style elements are
    skipped, void elements (``<br>``) and self-closed ones (``<x/>``) do not nest, an element an
    HTML parser closes implicitly (``<p>``, ``<li>``, ``<td>`` ...) closes an open one of its kind,
    and a stray end tag is ignored. The count can only be too high for sloppy markup (an
    unclosed ``<div>``), which a parser nests as deeply.
    """
    stack: list[str] = []
    deepest, position, lower = 0, 0, None
    while (match := _TAG.search(text, position)) is not None:
        if match.group(1):  # a comment: skip to its end
            end = text.find("-->", match.end())
            if end < 0:
                break
            position = end + 3
            continue
        closing, name = match.group(2), match.group(3).lower()
        close = text.find(">", match.end())
        if close < 0:
            break
        position = close + 1
        if closing:
            if name in stack[-most - 1:]:  # pop back to it
                while stack.pop() != name:
                    pass
            continue
        if name in _VOID or text[close - 1] == "/":
            continue
        if name in _RAW_TEXT:  # one element whose text is skipped to its end tag
            deepest = max(deepest, len(stack) + 1)
            lower = lower if lower is not None else text.lower()
            end = lower.find(f"</{name}", position)
            if end < 0:
                break
            position = end
            continue
        if name in _CLOSES_ITSELF and stack and stack[-1] == name:
            stack.pop()
        stack.append(name)
        if len(stack) > deepest:
            deepest = len(stack)
            if deepest > most:
                break
    return deepest


def check_markup(text: str | bytes, limits: Limits, what: str = "the markup") -> None:
    """Refuse HTML or XML that is larger than ``limits.markup_mb`` or nests deeper than ``limits.depth``.

    Raises:
        LimitExceeded: naming the limit.
    """
    if len(text) > limits.markup_mb * MB:
        raise _over(f"{what} is", _mb(len(text)), _mb(limits.markup_mb * MB), "markup_mb")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = markup_depth(text, limits.depth)
    if depth > limits.depth:
        raise _over(f"{what} nests elements more than", f"{limits.depth:,} deep", f"{limits.depth:,}", "depth")
