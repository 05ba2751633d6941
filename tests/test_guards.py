"""Hostile files are refused cheaply (rag/ingest/guards.py, rag/ingest/sandbox.py): zip bombs in DOCX
and EPUB, deeply nested HTML and XML, a reader that runs too long, grows too large or crashes. Each is
one Skipped line naming the limit, within seconds and well under 1 GB, and the rest of the batch and
the index are untouched. The files are built on the fly (tests/bombs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.core.errors import InvalidInput
from rag.core.types import Document, Skipped
from rag.ingest.guards import LimitExceeded, Limits, check_markup, check_zip, markup_depth
from rag.ingest.loading import load
from rag.ingest.sandbox import ReaderCrashed, Sandbox
from rag.search.index import Index

from . import bombs
from .conftest import FakeEmbedder, run_cli

GB_MB = 2048  # the bombs inflate to 2 GB


@pytest.fixture(scope="module")
def zero_bomb() -> tuple[bytes, int, int]:
    return bombs.zero_bomb(GB_MB)


def only(items: list[Document | Skipped]) -> Skipped:
    [item] = items
    assert isinstance(item, Skipped), item
    return item


# ---------------------------------------------------------------------------------- archives


def test_a_docx_zip_bomb_is_refused_from_its_directory(tmp_path: Path, zero_bomb: tuple[bytes, int, int]) -> None:
    bomb = bombs.docx(tmp_path / "bomb.docx", zero_bomb)
    assert bomb.stat().st_size < 3 * 1024 * 1024  # 2 GB inside
    started = time.monotonic()
    skipped = only(list(load([bomb])))
    assert time.monotonic() - started < 10
    assert skipped.source == str(bomb)
    assert skipped.reason == "'word/document.xml' inflates to 2,048 MB, over the limit of 64 MB (RAG_MAX_MEMBER_MB)"


def test_an_epub_zip_bomb_is_refused(tmp_path: Path, zero_bomb: tuple[bytes, int, int]) -> None:
    skipped = only(list(load([bombs.epub(tmp_path / "bomb.epub", zero_bomb)])))
    assert skipped.reason.startswith("'chapter.xhtml' inflates to 2,048 MB, over the limit of 64 MB")


def test_an_epub_whose_directory_lies_about_a_bomb_is_read_no_further_than_it_says(tmp_path: Path, zero_bomb: tuple[bytes, int, int]) -> None:
    # the directory says 1 KB: zipfile inflates no more than that, and the CRC fails
    skipped = only(list(load([bombs.epub(tmp_path / "liar.epub", zero_bomb, declared=1024)])))
    assert skipped.reason.startswith("unreadable EPUB (BadZipFile: Bad CRC-32")


def test_a_member_that_inflates_too_many_times_is_refused_below_the_size_limits(tmp_path: Path) -> None:
    bomb = bombs.docx(tmp_path / "dense.docx", bombs.zero_bomb(50))  # 50 MB from 52 KB
    with pytest.raises(LimitExceeded, match=r"^'word/document.xml' inflates 1,0\d\d times, over the limit of 100 times \(RAG_MAX_RATIO\)$"):
        check_zip(bomb, Limits())
    check_zip(bomb, Limits(ratio=2000))  # the limit is the setting


def test_an_archive_over_the_total_or_member_count_limit_is_refused(tmp_path: Path) -> None:
    members = {f"part{i}.xml": bombs.deflated(os.urandom(600_000)) for i in range(4)}
    archive = bombs.write_zip(tmp_path / "many.docx", members)
    with pytest.raises(LimitExceeded, match=r"inflates to more than 2\.3 MB, over the limit of 2\.0 MB \(RAG_MAX_ARCHIVE_MB\)"):
        check_zip(archive, Limits(archive_mb=2))
    with pytest.raises(LimitExceeded, match=r"^holds 4 files, over the limit of 3 \(RAG_MAX_MEMBERS\)$"):
        check_zip(archive, Limits(members=3))
    check_zip(archive, Limits())


# ---------------------------------------------------------------------------------- markup


def test_deeply_nested_html_is_refused_in_a_moment(tmp_path: Path) -> None:
    page = tmp_path / "deep.html"
    page.write_text(bombs.nested(200_000))  # 2 MB
    started = time.monotonic()
    skipped = only(list(load([page])))
    assert time.monotonic() - started < 10
    assert skipped.reason == "the HTML nests elements more than 512 deep, over the limit of 512 (RAG_MAX_DEPTH)"


def test_deeply_nested_xml_in_an_epub_chapter_is_refused(tmp_path: Path) -> None:
    chapter = bombs.nested(40_000, tag="section").encode()  # 760 KB: under the ratio check
    skipped = only(list(load([bombs.epub(tmp_path / "deep.epub", bombs.deflated(chapter))])))
    assert skipped.reason.startswith("'chapter.xhtml' nests elements more than 512 deep")


def test_markup_over_the_size_limit_is_refused() -> None:
    with pytest.raises(LimitExceeded, match=r"^the page is 2\.0 MB, over the limit of 1\.0 MB \(RAG_MAX_MARKUP_MB\)$"):
        check_markup("<p>" + "x" * (2 * 1024 * 1024), Limits(markup_mb=1), "the page")


@pytest.mark.parametrize(("markup", "depth"), [
    ("<html><body><div><p>a<p>b<p>c</div></body></html>", 4),  # <p> closes the open <p>
    ("<ul><li>a<li>b<li><ul><li>c</ul></ul>", 4),
    ("<div><br><img src=x><hr/><input></div>", 1),  # void and self-closed elements do not nest
    ("<div><!-- <div><div><div> --><script>if (a<b) x='<div><div><div>'</script></div>", 2),
    ("<div></span></b></div><div><div></div></div>", 2),  # stray end tags are ignored
    ("<?xml version='1.0'?><a><b><c/><c></c></b></a>", 3),
    ("<div><div><div>", 3),  # unclosed: a parser nests them as deeply
])  # fmt: skip
def test_markup_depth_counts_what_a_parser_would_nest(markup: str, depth: int) -> None:
    assert markup_depth(markup, 100) == depth


def test_real_documents_pass_the_guards() -> None:
    from .test_web import STORY

    check_markup(STORY, Limits())
    assert markup_depth(STORY, 100) < 10


def test_deeply_nested_json_in_a_jsonl_line_is_one_skipped_line(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "ok", "text": "A fine line."}) + "\n" + "[" * 200_000 + "\n")
    items = list(load([corpus]))
    assert [type(i) for i in items] == [Document, Skipped]
    assert items[1].reason == "JSON nested too deeply to read"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------- the batch and the index


def test_a_refused_file_leaves_the_batch_and_the_index_intact(tmp_path: Path, tiny_corpus: Path, zero_bomb: tuple[bytes, int, int]) -> None:
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([tiny_corpus])
    before = {d.id for d in index.documents()}
    batch = tmp_path / "batch"
    batch.mkdir()
    bombs.docx(batch / "a_bomb.docx", zero_bomb)
    (batch / "b_deep.html").write_text(bombs.nested(200_000))
    (batch / "c_good.txt").write_text("The harbour festival in Tallinn opened on Saturday with tall ships.")
    started = time.monotonic()
    report = index.add([batch])
    assert time.monotonic() - started < 20
    assert sorted(Path(s.source).name for s in report.skipped) == ["a_bomb.docx", "b_deep.html"]
    assert {d.id for d in index.documents()} == before | {"c_good"}
    assert len(Index.open(tmp_path / "ix", embedder=FakeEmbedder()).documents()) == len(before) + 1


def test_an_upload_through_the_window_goes_through_the_same_guards(tmp_path: Path, tiny_corpus: Path, zero_bomb: tuple[bytes, int, int]) -> None:
    from rag.serve.service import ChatService

    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([tiny_corpus])
    service = ChatService(index, upload_dir=tmp_path / "uploads")
    before = service.document_rows()
    message = service.add_files([bombs.epub(tmp_path / "book.epub", zero_bomb)])
    assert "skipped book.epub: 'chapter.xhtml' inflates to 2,048 MB, over the limit of 64 MB (RAG_MAX_MEMBER_MB)" in message
    assert service.document_rows() == before
    assert not list((tmp_path / "uploads").iterdir())  # the refused upload is not kept


def test_the_cli_names_each_refused_file_and_its_limit_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    page = tmp_path / "deep.html"
    page.write_text(bombs.nested(10_000))
    code, _, err = run_cli(capsys, "index", str(page), "--index-dir", str(tmp_path / "ix"))
    assert code == 1
    assert err.splitlines() == [
        f"skipped {page}: the HTML nests elements more than 512 deep, over the limit of 512 (RAG_MAX_DEPTH)",
        f"rag: error: no documents to index in {page} (1 skipped); the index was not changed",
    ]


def test_a_limit_set_in_the_environment_is_used_and_a_bad_one_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = tmp_path / "page.html"
    page.write_text(bombs.nested(20))
    monkeypatch.setenv("RAG_MAX_DEPTH", "10")
    assert "over the limit of 10 (RAG_MAX_DEPTH)" in only(list(load([page]))).reason
    monkeypatch.setenv("RAG_MAX_DEPTH", "deep")
    with pytest.raises(InvalidInput, match=r"^RAG_MAX_DEPTH must be a number > 0, got 'deep'$"):
        Limits.from_env()
    code, _, err = run_cli(capsys, "index", str(page), "--index-dir", str(tmp_path / "ix"))
    assert code == 1 and err == "rag: error: RAG_MAX_DEPTH must be a number > 0, got 'deep'\n"


def test_hostile_files_are_read_in_well_under_a_gigabyte(tmp_path: Path, zero_bomb: tuple[bytes, int, int]) -> None:
    bombs.docx(tmp_path / "bomb.docx", zero_bomb)
    bombs.epub(tmp_path / "bomb.epub", zero_bomb)
    bombs.epub(tmp_path / "liar.epub", zero_bomb, declared=1024)
    (tmp_path / "deep.html").write_text(bombs.nested(200_000))
    # A fresh interpreter, so its peak memory (and its reader child's) is the loading's alone.
    script = (
        "import resource, sys\n"
        "from rag.ingest.loading import load\n"
        "from rag.ingest.sandbox import close_idle\n"
        "items = list(load([sys.argv[1]]))\n"
        "close_idle()\n"  # the reader child is waited for, so its peak counts
        # subtle: ru_maxrss of RUSAGE_SELF keeps the high-water mark of the process that exec'd this
        # one (pytest, gigabytes into a full run); VmHWM is this program's own. The reader child is
        # started from this small program, so its ru_maxrss is its own.
        "own = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
        "peak = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(len(items), sum(type(i).__name__ == 'Skipped' for i in items), peak // 1024)\n"
    )
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert time.monotonic() - started < 30  # four files, one interpreter and one reader started
    items, skipped, peak_mb = map(int, out.split())
    assert items == skipped == 4
    assert peak_mb < 1024, f"peak {peak_mb} MB"


# ---------------------------------------------------------------------------------- the reader's budgets


def test_a_reader_past_its_time_is_stopped_and_the_next_one_runs() -> None:
    with Sandbox(Limits(seconds=0.5)) as sandbox:
        started = time.monotonic()
        with pytest.raises(LimitExceeded, match=r"^reading it took longer than 0\.5 s, the limit \(RAG_EXTRACT_SECONDS\)$"):
            sandbox.run(time.sleep, 30)
        assert time.monotonic() - started < 3
        assert sandbox.run(len, "four") == 4
        assert sandbox.started == 2


def test_a_reader_that_grows_past_its_memory_is_stopped() -> None:
    with Sandbox(Limits(memory_mb=512)) as sandbox:
        with pytest.raises(LimitExceeded, match=r"^reading it needs more than 512 MB of memory, the limit \(RAG_EXTRACT_MEMORY_MB\)$"):
            sandbox.run(bytearray, 2 * 1024**3)
        assert sandbox.run(len, "four") == 4


def test_a_reader_that_crashes_costs_one_document() -> None:
    with Sandbox(Limits()) as sandbox:
        with pytest.raises(ReaderCrashed, match=r"^the reader stopped \(signal 6: SIGABRT\) while reading it$"):
            sandbox.run(os.abort)
        assert sandbox.run(len, "four") == 4


def test_a_readers_own_error_is_raised_as_it_was() -> None:
    with Sandbox(Limits()) as sandbox, pytest.raises(LimitExceeded, match="^over$"):
        sandbox.run(_raise_limit, "over")


def _raise_limit(message: str) -> None:
    raise LimitExceeded(message)
