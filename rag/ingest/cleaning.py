"""Turn extracted text into clean article text: normalised whitespace, no web boilerplate.

Scraped articles carry page furniture around the story: "Newsletter Signup", comment
forms, cookie and copyright lines, and lists of unrelated headlines after the article.
Left in, that text is chunked, embedded and retrieved like content. Two rules remove it:

- a line that *is* boilerplate (matched as a whole line) is dropped wherever it stands;
- a line that marks the *end* of the article ("Leave a Reply", "You May Also Like")
  drops itself and everything after it, but only in the second half of the text, so a
  stray phrase near the top cannot swallow the story.

Title and date guesses live here too, because they read the same cleaned lines.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date as _date

_FLAGS = re.IGNORECASE

# Whole-line patterns (matched against the stripped line).
BOILERPLATE_LINES = [
    re.compile(p, _FLAGS)
    for p in (
        r"newsletter sign[ -]?up",
        r"sign up for (our|the) .*newsletter.*",
        r"subscribe( now| today| to (our|the) [\w ]+)?[.!]?",
        r"click (here )?to comment",
        r"leave a (reply|comment)",
        r"\d+ comments?",
        r"your email address will not be published\..*",
        r"required fields are marked.*",
        r"this site uses akismet.*",
        r"connect with us",
        r"follow us( on [\w ,&]+)?",
        r"share (this|on) [\w ]+",
        # short lines only: a sentence about copyright law or cookies is content
        r"(copyright\s*)?(©|\(c\)|copyright \d{4}).{0,100}",
        r".{0,100}all rights reserved\.?",
        r".{0,100}\b(we use|(site|website) uses|accept( all)?|manage|allow( all)?) cookies\b.{0,200}",
        r".{0,100}\bcookie (policy|settings|preferences|consent)\b.{0,100}",
        r"\d+ min(ute)?s? read",
        r"advertisement|sponsored( content)?",
        r"skip to (main )?content",
        r"source: .*\b(via|/)\b.*\b(photo|images?|stock|getty|alamy|shutterstock|reuters|ap)\b.*",
        r"about the author",
        r"keep up with the latest .*",
        r"delivered (daily|weekly).*inbox\.?",
        r"(read|see) more( here)?[.:]?",
    )
]

# Lines after which the article is over (navigation, comments, related stories).
TAIL_MARKERS = [
    re.compile(p, _FLAGS)
    for p in (
        r"leave a (reply|comment)",
        r"click (here )?to comment",
        r"you may also like",
        r"more insights",
        r"related (articles|posts|stories|news|content)",
        r"recommended( for you| stories)?",
        r"read next",
        r"more from .{1,40}",
        r"trending( now| stories)?",
        r"(latest|top) (news|stories|headlines)",
        r"most (popular|read)",
    )
]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Runs of two or more spaces, or one unusual space; a lone " " is left alone, so ordinary
# text has no match (re.sub builds one piece per match: millions for a 50 MB file).
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]{2,}|[\t\u00a0\u2000-\u200b\u202f\u205f\u3000]")


def normalize(text: str) -> str:
    """Normalise Unicode and whitespace; keep single line breaks and one blank line at most."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text.replace("\t", " "))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def is_boilerplate(line: str) -> bool:
    line = line.strip()
    return any(p.fullmatch(line) for p in BOILERPLATE_LINES)


def strip_boilerplate(text: str) -> str:
    """Drop boilerplate lines and everything after an end-of-article marker."""
    lines = text.split("\n")
    total = max(len(text), 1)
    kept: list[str] = []
    position = 0
    for line in lines:
        stripped = line.strip()
        past_half = position / total >= 0.5
        position += len(line) + 1
        if past_half and any(p.fullmatch(stripped) for p in TAIL_MARKERS):
            break
        if is_boilerplate(stripped):
            continue
        kept.append(line)
    return normalize("\n".join(kept))


def clean(text: str) -> str:
    """The full cleaning step applied to every loaded document."""
    return strip_boilerplate(normalize(text))


_SENTENCE_END = (".", "!", "?", ",", ";", ":")


def guess_title(text: str, max_lines: int = 3) -> str:
    """The first heading-like line near the top, else the start of the first line.

    A heading is short (2 to 15 words) and does not end like a sentence.
    """
    lines = [line for line in text.split("\n") if line.strip()][:max_lines]
    for line in lines:
        words = line.split()
        if 2 <= len(words) <= 15 and len(line) <= 120 and not line.endswith(_SENTENCE_END):
            return line.strip()
    if not lines:
        return ""
    first = lines[0]
    end = re.search(r"[.!?](\s|$)", first)
    title = first[: end.start() + 1] if end else first
    return title if len(title) <= 100 else title[:97].rstrip() + "..."


_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        "january february march april may june july august september october november december".split()
    )
}
_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december)"
_ISO = re.compile(r"\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b")
_MDY = re.compile(_MONTH + r"\s+(\d{1,2}),?\s+((?:19|20)\d\d)\b", _FLAGS)
_DMY = re.compile(r"\b(\d{1,2})\s+" + _MONTH + r",?\s+((?:19|20)\d\d)\b", _FLAGS)
_LABELLED = re.compile(r"\b(date|published|posted|updated)\b[:\s]+", _FLAGS)


def _iso(year: int, month: int, day: int) -> str | None:
    try:
        return _date(year, month, day).isoformat()
    except ValueError:
        return None


def date_spans(text: str) -> list[tuple[int, int, str]]:
    """Every full date in ``text`` (ISO, "March 5, 2024", "5 March 2024") as ``(start, end, YYYY-MM-DD)``, in order."""
    found: list[tuple[int, int, str]] = []
    for m in _ISO.finditer(text):
        if iso := _iso(int(m[1]), int(m[2]), int(m[3])):
            found.append((m.start(), m.end(), iso))
    for m in _MDY.finditer(text):
        if iso := _iso(int(m[3]), _MONTHS[m[1].lower()], int(m[2])):
            found.append((m.start(), m.end(), iso))
    for m in _DMY.finditer(text):
        if iso := _iso(int(m[3]), _MONTHS[m[2].lower()], int(m[1])):
            found.append((m.start(), m.end(), iso))
    return sorted(found)


def dates_in(text: str) -> list[tuple[int, str]]:
    """Every full date in ``text`` as ``(offset, YYYY-MM-DD)``, in order (:func:`date_spans`)."""
    return [(start, iso) for start, _, iso in date_spans(text)]


HEAD_LINES = 5  # a dateline or date line stands in the first lines of an article
HEAD_CHARS = 1000  # ... within its first characters (a file without line breaks is one long line)


def _labelled(text: str) -> str | None:
    for label in _LABELLED.finditer(text):
        dates = dates_in(text[label.end() : label.end() + 40])
        if dates and dates[0][0] == 0:
            return dates[0][1]
    return None


def _first(text: str) -> str | None:
    dates = dates_in(text)
    return dates[0][1] if dates else None


def find_date(text: str, metadata: str | None = None) -> str | None:
    """The date of the text, as ISO ``YYYY-MM-DD``, from the most to the least telling place: a
    date at the top (its first ``HEAD_LINES`` lines: a dateline "Doha, 5 March 2024 -", a date
    line, a labelled one there first), a labelled one anywhere ("date 2024-02-23",
    "Published: ..."), the date the file's ``metadata`` gives (a PDF's or Word file's creation
    date, an EPUB's ``dc:date``), else the first full date anywhere in the text, which may be
    any date the article mentions.

    >>> find_date("Kigali, 12 May 2024\\nThe treaty of 2019-01-02 was renewed.")
    '2024-05-12'
    >>> find_date("Treaty Renewed\\n" * 5 + "The treaty of 2019-01-02 was renewed.", metadata="2024-05-12")
    '2024-05-12'
    """
    head = "\n".join([line for line in text[:HEAD_CHARS].split("\n") if line.strip()][:HEAD_LINES])
    return _labelled(head) or _first(head) or _labelled(text) or metadata or _first(text)


def iso_date(value: object) -> str | None:
    """A metadata date (a ``datetime``, a ``date`` or a string starting ``YYYY-MM-DD``) as
    ``YYYY-MM-DD``; None for anything else, a year or a month alone included (no day is made up).

    >>> iso_date("2024-03-05T10:00:00Z"), iso_date("2024"), iso_date(_date(2021, 1, 2))
    ('2024-03-05', None, '2021-01-02')
    """
    if isinstance(value, _date):  # a datetime is a date too
        return _iso(value.year, value.month, value.day)
    if isinstance(value, str) and (m := re.match(r"\s*(\d{4})-(\d\d)-(\d\d)", value)):
        return _iso(int(m[1]), int(m[2]), int(m[3]))
    return None
