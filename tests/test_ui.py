"""The chat window's logic without a server: rendering, uploads, the service's rules."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rag.answer.assistant import REFUSAL_TEXT, Answer, Assistant
from rag.answer.conversation import Turn
from rag.search.index import Index
from rag.serve.render import escape_text, render_answer, render_sources
from rag.serve.service import MAX_UPLOAD_BYTES, MAX_UPLOAD_FILES, ChatService, check_uploads, safe_upload_name

from .conftest import FakeEmbedder, JudgingGenerator, RoutedGenerator, make_service


@pytest.fixture
def service(tmp_path: Path, tiny_corpus: Path) -> ChatService:
    return make_service(tmp_path, tiny_corpus)


def tags(html: str) -> set[str]:
    return set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", html))


# ------------------------------------------------------------------ rendering


def test_escape_text_leaves_nothing_active() -> None:
    out = escape_text('<img src=x onerror="x()"> *bold* [1](javascript:x) $$a$$ &amp; it\'s')
    assert "<" not in out and ">" not in out and '"' not in out and "'" not in out
    assert not re.search(r"[*_\[\]()$`]", out)
    assert "&amp;amp;" in out  # an entity in the text is shown as typed, not decoded


def test_answer_shows_markers_and_sources_highlight_the_quote(service: ChatService) -> None:
    answer = service.ask("Which bakery won the sourdough prize?")
    chat = render_answer(answer)
    assert '<sup class="rag-cite">&#91;1&#93;</sup>' in chat and "rag-unsupported" not in chat
    assert "prize.<sup" in chat  # no stray space where the marker stood
    panel = render_sources(answer)
    [cited] = answer.citations
    assert f'<mark class="rag-quote">{escape_text(cited.quote)}</mark>' in panel
    assert "Village Bakery Wins Bread Prize" in panel and "bakery" in panel
    # the passage around the quote is shown, and the passages not cited are collapsed below
    assert "Its rye loaf uses a starter" in panel
    assert re.search(r"<details class=\"rag-others\"><summary>Other retrieved passages \(\d\)</summary>", panel)
    assert panel.index("<details") > panel.index("<mark")


def test_unsupported_sentence_is_marked(service: ChatService) -> None:
    answer = service.ask("Where did the lava flow?")
    supported = [s.supported for s in answer.sentences]
    assert supported == [True, False]  # "reached the sea on Tuesday" is in no source
    chat = render_answer(answer)
    assert chat.count('class="rag-unsupported"') == 1
    assert re.search(r'rag-unsupported"[^>]*>It reached the sea on Tuesday.*not supported by the sources', chat)


def test_refusal_is_plain_and_lists_what_was_searched(service: ChatService) -> None:
    answer = service.ask("What does the rye loaf cost?")
    assert answer.refused
    assert REFUSAL_TEXT in render_answer(answer)
    panel = render_sources(answer)
    assert "No passage answers this question." in panel and "<mark" not in panel
    assert "Retrieved passages (" in panel


def test_hostile_document_and_answer_render_as_text(service: ChatService) -> None:
    answer = service.ask("How did the harbour festival open?")
    assert answer.citations and answer.citations[0].doc_id == "harbour"
    for html in (render_answer(answer), render_sources(answer)):
        assert tags(html) <= {"p", "sup", "span", "em", "strong", "div", "section", "mark", "small", "h3", "details", "summary", "blockquote"}
        assert "onerror=" not in html and "${" not in html and "javascript:" not in html
    assert escape_text('<img src=x onerror="window.__xss=3">') in render_answer(answer)


def test_searched_question_is_shown_for_followups(service: ChatService) -> None:
    answer = service.ask("Which bakery won the sourdough prize? (Follow-up to: x)")
    assert "Searched for: Which bakery" in render_answer(answer, answer.question)
    assert "Searched for" not in render_answer(answer, None)


def test_quote_outside_the_passage_is_still_shown(service: ChatService) -> None:
    answer = service.ask("Which bakery won the sourdough prize?")
    moved = replace(answer.citations[0], start=10_000, end=10_010, quote="elsewhere <b>")
    panel = render_sources(replace(answer, citations=(moved,)))
    assert '<blockquote><mark class="rag-quote">elsewhere &lt;b&gt;</mark></blockquote>' in panel


def test_no_answer_yet_shows_a_placeholder() -> None:
    assert "appear here" in render_sources(None)


# ------------------------------------------------------------------ uploads


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.txt", "report.txt"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\win.ini.md", "win.ini.md"),
        ("/abs/path/a b;c.HTML", "a_b_c.HTML"),
        (".hidden.jsonl", "hidden.jsonl"),
        ("Café notes.md", "Café_notes.md"),
    ],
)
def test_upload_names_stay_in_the_folder(name: str, safe: str) -> None:
    assert safe_upload_name(name) == safe


@pytest.mark.parametrize("name", ["evil.exe", "..", "../.txt", "noext", "a.txt/..", ""])
def test_unusable_upload_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a supported file; allowed: .docx .epub .htm .html .jsonl"):
        safe_upload_name(name)


def test_upload_limits(tmp_path: Path) -> None:
    files = []
    for i in range(MAX_UPLOAD_FILES + 1):
        files.append(tmp_path / f"f{i}.txt")
        files[-1].write_text("Some words here.")
    with pytest.raises(ValueError, match=f"21 files chosen; at most {MAX_UPLOAD_FILES}"):
        check_uploads(files)
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(ValueError, match="big.txt is 20.0 MB; the limit is 20 MB per file"):
        check_uploads([files[0], big])
    with pytest.raises(ValueError, match="choose one or more files"):
        check_uploads([])


# ------------------------------------------------------------------ the service


def test_add_and_remove_documents(service: ChatService, tmp_path: Path) -> None:
    incoming = tmp_path / "incoming" / "sub"
    incoming.mkdir(parents=True)
    good = incoming / "Glacier News.md"
    good.write_text("# Glacier Retreats\n\nThe Rhone glacier lost two metres of ice this summer.", encoding="utf-8")
    empty = incoming / "empty.txt"
    empty.write_text("", encoding="utf-8")
    message = service.add_files([good, empty])
    assert message.startswith("1 added, 0 updated, 0 unchanged, 1 skipped")
    assert "skipped empty.txt:" in message
    assert "Glacier_News" in [row[0] for row in service.document_rows()]
    uploads = sorted(p.name for p in (tmp_path / "uploads").iterdir())
    assert uploads == ["Glacier_News.md"]  # the skipped copy is not kept
    assert service.remove("Glacier_News").startswith("removed Glacier_News;")
    assert "Glacier_News" not in [row[0] for row in service.document_rows()]
    assert not (tmp_path / "uploads" / "Glacier_News.md").exists()
    with pytest.raises(KeyError, match="no document 'Glacier_News'"):
        service.remove("Glacier_News")


def test_settings_are_checked(service: ChatService) -> None:
    with pytest.raises(ValueError, match="unknown model 'openai:http://example.com#m'; this server offers routed, qwen-1.5b, qwen-0.5b"):
        service.ask("Which bakery?", model="openai:http://example.com#m")
    with pytest.raises(ValueError, match="number of passages must be 1 to 10, got 11"):
        service.ask("Which bakery?", k=11)
    with pytest.raises(ValueError, match="mode"):
        service.ask("Which bakery?", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the question is empty"):
        service.ask("  ")


def test_one_answer_at_a_time_and_answers_do_not_mix(tmp_path: Path, tiny_corpus: Path) -> None:
    service = make_service(tmp_path, tiny_corpus, pause=0.01)
    questions = {"bakery": "Which bakery won the sourdough prize?", "harbour": "How did the harbour festival open?"}
    results: dict[str, Answer] = {}

    def ask(key: str) -> None:
        results[key] = service.ask(questions[key])

    threads = [threading.Thread(target=ask, args=(key,)) for key in questions for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    generator = service.assistants["routed"].generator
    assert generator.most_active == 1  # type: ignore[union-attr]
    assert results["bakery"].citations[0].doc_id == "bakery"
    assert results["harbour"].citations[0].doc_id == "harbour"


def test_a_reader_that_stops_does_not_block_the_next(service: ChatService) -> None:
    stream = service.stream("Which bakery won the sourdough prize?")
    next(stream)
    stream.close()  # the browser tab went away mid-answer
    assert service.ask("Which bakery won the sourdough prize?").citations


def test_errors_from_the_model_reach_the_caller(service: ChatService) -> None:
    class Broken:
        name = "broken"

        def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
            raise RuntimeError("model crashed")
            yield ""

    service.assistants["routed"].generator = Broken()
    with pytest.raises(RuntimeError, match="model crashed"):
        service.ask("Which bakery won the sourdough prize?")
    service.assistants["routed"].generator = RoutedGenerator()
    assert service.ask("Which bakery won the sourdough prize?").citations  # the lock was released


# ------------------------------------------------------------------ rag serve


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "--port must be 1 to 65535, got 70000"),
        (["--k", "11"], "number of passages must be 1 to 10, got 11"),
        (["--model", "gpt-9"], "unknown model 'gpt-9'"),
        (["--concurrency", "0"], "--concurrency must be >= 1, got 0"),
    ],
)
def test_serve_reports_bad_options_in_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    assert main(["serve", *argv]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rag: error: ") and message in last and "Traceback" not in err


def test_a_withheld_answer_says_why(tmp_path: Path, tiny_corpus: Path) -> None:
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([tiny_corpus])
    generator = JudgingGenerator("The Miller bakery in <b>Ashford</b> [1].", yes=0.05)
    answer = Assistant(index, generator=generator).ask("Which bakery won the sourdough prize?")  # type: ignore[arg-type]
    chat = render_answer(answer)
    assert REFUSAL_TEXT in chat and "Withheld: no sentence of the answer is supported by the sources." in chat
    assert "<b>" not in chat  # nothing of the model's text is rendered as markup
    # what the model wrote, collapsed under the refusal, with the quote it cites
    assert '<details class="rag-withheld"><summary>Not verified: The Miller bakery in &lt;b&gt;Ashford&lt;/b&gt; &#91;1&#93;.</summary>' in chat
    assert chat.index(REFUSAL_TEXT) < chat.index("Not verified")


def test_rescan_indexes_the_upload_folder_and_drops_deleted_files(service: ChatService, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    (uploads / "glacier.md").write_text("# Glacier Retreats\n\nThe Rhone glacier lost two metres of ice.", encoding="utf-8")
    message = service.rescan()
    assert "1 added, 0 updated, 0 unchanged, 0 skipped, 0 removed" in message
    assert "glacier" in [row[0] for row in service.document_rows()]
    before = {row[0] for row in service.document_rows()}
    (uploads / "glacier.md").unlink()
    assert "0 added, 0 updated, 0 unchanged, 0 skipped, 1 removed" in service.rescan()
    assert {row[0] for row in service.document_rows()} == before - {"glacier"}  # the corpus outside it is kept


def test_the_service_answers_a_follow_up_with_its_history(service: ChatService) -> None:
    first = service.ask("Which bakery won the sourdough prize?")
    history = [Turn("Which bakery won the sourdough prize?", first.text, first.refused)]
    response = service.respond("And what is its rye loaf made with?", history=history)
    answer = response.answer()
    assert response.question != "And what is its rye loaf made with?" and "bakery" in response.question
    assert answer.question == response.question
    alone = service.respond("And what is its rye loaf made with?")
    assert alone.question == "And what is its rye loaf made with?"  # no history: asked as it is
    alone.answer()
