"""Hostile documents and uploads: names cannot leave the upload folder, and nothing from an
article or the model becomes markup (test_ui.py and test_browser.py have the worked cases;
these are the adversarial names and the properties over any text)."""

from __future__ import annotations

import hashlib
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.answer.assistant import Answer, Timings
from rag.core.types import AnswerSentence, Citation, Hit, Source, Span
from rag.ingest.loading import SUPPORTED_SUFFIXES
from rag.serve.render import escape_text, render_answer, render_sources
from rag.serve.service import ChatService, safe_upload_name

from .conftest import make_service


@pytest.fixture
def service(tmp_path: Path, tiny_corpus: Path) -> ChatService:
    return make_service(tmp_path, tiny_corpus)


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ upload names


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../x.txt", "x.txt"),
        ("/etc/cron.d/job.md", "job.md"),
        ("C:\\Users\\me\\..\\..\\evil.html", "evil.html"),
        ("a\x00b.txt", "a_b.txt"),
        ("tab\tnew\nline.txt", "tab_new_line.txt"),
        ("$(rm -rf ~);`id`.md", "rm_-rf_id_.md"),
        ("<script>alert(1)</script>.html", "script_.html"),
        ("\u202etxt.md", "txt.md"),  # right-to-left override, a classic for hiding a real suffix
        ("..\u2215..\u2215x.txt", "x.txt"),  # division slash, which looks like "/"
        ("...hidden.txt", "hidden.txt"),
        ("a" + "." * 150 + "b.txt", "b.txt"),
        ("n" * 5000 + ".jsonl", "n" * 114 + ".jsonl"),
    ],
)
def test_hostile_upload_names_are_made_safe(name: str, safe: str) -> None:
    assert safe_upload_name(name) == safe


@pytest.mark.parametrize("name", ["x.txt\x00.exe", "report.txt.exe", "....", "/", "..\\..\\", "\x00", ".txt"])
def test_hostile_upload_names_without_a_usable_file_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="is not a supported file"):
        safe_upload_name(name)


@settings(max_examples=500, deadline=None)
@given(name=st.text(max_size=300) | st.lists(st.sampled_from(["..", "/", "\\", ".", "a", ".txt", "\x00", "~", " "]), max_size=30).map("".join))
def test_any_upload_name_lands_inside_the_folder_or_is_refused(name: str) -> None:
    try:
        safe = safe_upload_name(name)
    except ValueError:
        return
    folder = Path("/srv/rag/uploads")
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert not safe.startswith((".", "-")) and len(safe) <= 120
    assert Path(safe).suffix.lower() in SUPPORTED_SUFFIXES
    assert (folder / safe).resolve().parent == folder


def test_uploads_with_hostile_names_stay_in_the_upload_folder(service: ChatService, tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    names = ["..%2f..%2fescape.txt", "$(touch pwned).md", "<img src=x onerror=alert(1)>.html", "x" * 240 + ".txt"]
    for name in names:
        (incoming / name).write_text(f"# Upload Test\n\nThis upload was named {name[:40]} and is about tides.", encoding="utf-8")
    outside = {p: tree(p) for p in (tmp_path / "corpus", incoming)}
    message = service.add_files([incoming / n for n in names])
    assert message.startswith("4 added")
    uploads = tmp_path / "uploads"
    stored = sorted(p.name for p in uploads.iterdir())
    assert len(stored) == 4 and all(p.resolve().parent == uploads.resolve() for p in uploads.iterdir())
    assert all(tree(p) == before for p, before in outside.items())  # nothing else was written
    assert not (tmp_path / "pwned").exists() and not (tmp_path.parent / "escape.txt").exists()
    ids = {row[0] for row in service.document_rows()}
    assert {Path(s).stem for s in stored} <= ids


def test_removing_a_document_never_deletes_outside_the_upload_folder(service: ChatService, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    corpus = tmp_path / "odd.jsonl"
    corpus.write_text(json.dumps({"_id": "../victim", "text": "A document whose id climbs out of the folder."}), encoding="utf-8")
    (tmp_path / "uploads").mkdir(exist_ok=True)
    service.index.add([corpus])
    assert service.remove("../victim").startswith("removed ../victim")
    assert victim.read_text(encoding="utf-8") == "keep me"


# ------------------------------------------------------------------ nothing becomes markup

ALLOWED_TAGS = {"p", "sup", "span", "em", "strong", "div", "section", "mark", "small", "h3", "details", "summary", "blockquote"}
ALLOWED_ATTRS = {"class", "id", "title"}


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


_hostile = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(['<script>alert(1)</script>', '<img src=x onerror="x()">', '"><svg onload=x()>', "javascript:x()",
                              "&lt;b&gt;", "&#60;", "[1](javascript:x)", "$$x$$", "*a*", "`c`", "{{7*7}}", "${x}", "'", '"', "<!--",
                              "]]>", "\x00", "\u202e", " ", "word"]), max_size=12).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(title=_hostile, doc_id=_hostile, body=_hostile, quote=_hostile, answer=_hostile, date=_hostile)
def test_rendered_answers_and_sources_hold_only_our_own_markup(
    title: str, doc_id: str, body: str, quote: str, answer: str, date: str
) -> None:
    text = f"{body} {quote}".strip() or "x"
    hit = Hit(chunk_id=f"{doc_id}#0", doc_id=doc_id, title=title, text=text, start=0, end=len(text), score=0.5, rank=1, date=date)
    other = Hit(chunk_id="other#0", doc_id="other", title=title, text=body or "y", start=0, end=len(body or "y"), score=0.1, rank=2)
    start = text.rfind(quote) if quote else 0
    citation = Citation(n=1, doc_id=doc_id, chunk_id=hit.chunk_id, title=title, start=start, end=start + len(quote),
                        quote=quote, supported=False, added=True)
    result = Answer(
        question=answer or "q", text=answer, refused=False, citations=(citation,),
        sentences=(AnswerSentence(answer, (1,), False), AnswerSentence(quote, (), True)),
        hits=(hit, other), sources=(Source(1, hit, (Span(0, len(text), text),)),),
        timings=Timings(0.0, None, 0.0), model="m",
    )
    for rendered in (render_answer(result, result.question), render_sources(result)):
        parser = TagCollector()
        parser.feed(rendered)
        for tag, attrs in parser.tags:
            assert tag in ALLOWED_TAGS, rendered
            assert {name for name, _ in attrs} <= ALLOWED_ATTRS, rendered
            assert all("javascript" not in (value or "").lower() for _, value in attrs)
    if title:
        assert f"<strong>{escape_text(title)}</strong>" in render_sources(result)  # shown as typed


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=200) | _hostile)
def test_escaped_text_is_inert_and_shows_exactly_what_was_written(text: str) -> None:
    out = escape_text(text)
    assert not set(re.sub(r"&(#\d+|amp|lt|gt|quot);", "", out)) & set("<>&\"'`*_[]()$\\{}#|~")
    assert html.unescape(out) == text
