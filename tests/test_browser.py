"""The chat window in real headless Chromium (Debian's ``chromium``), driven by Playwright.

``make test`` installs Chromium when it is missing; elsewhere these tests are skipped
without it, except under CI, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from rag.serve.service import ChatService  # noqa: E402

from .conftest import make_service, running  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("RAG_SCREENSHOT_DIR") or Path(__file__).resolve().parent.parent / "build" / "screenshots")
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def service(tmp_path: Path, tiny_corpus: Path) -> ChatService:
    return make_service(tmp_path, tiny_corpus, pause=0.02)


@pytest.fixture
def page(browser: object, service: ChatService) -> Iterator[object]:
    with running(service) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        yield page
        page.close()


def ask(page: object, question: str) -> None:
    box = page.locator("#rag-question textarea")  # type: ignore[attr-defined]
    box.fill(question)
    box.press("Enter")
    page.locator("#rag-sources mark.rag-quote").first.wait_for(state="visible")  # type: ignore[attr-defined]


def test_question_answer_citation_and_highlighted_quote(page: object) -> None:
    ask(page, "Which bakery won the sourdough prize?")
    chat = page.locator("#rag-chat")  # type: ignore[attr-defined]
    sync_api.expect(chat).to_contain_text("The Miller bakery in Ashford won the national sourdough prize.")
    sync_api.expect(chat.locator("sup.rag-cite").first).to_have_text("[1]")
    sources = page.locator("#rag-sources")  # type: ignore[attr-defined]
    sync_api.expect(sources.locator(".rag-source .rag-head").first).to_contain_text("[1] Village Bakery Wins Bread Prize")
    sync_api.expect(sources.locator("mark.rag-quote").first).to_have_text(
        "The Miller bakery in Ashford won the national sourdough prize on Friday."
    )
    others = sources.locator("details.rag-others")
    sync_api.expect(others).not_to_have_attribute("open", re.compile(".*"))  # collapsed until clicked
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "chat.png"), full_page=True)  # type: ignore[attr-defined]
    assert (SCREENSHOTS / "chat.png").stat().st_size > 10_000


def test_bold_letters_all_come_from_the_bold_font(page: object) -> None:
    """The title's "A" and the sources' "B" were once drawn in another font than the letters
    around them: Gradio's bundled Source Sans Pro SemiBold is a subset without them. Bold "AB"
    must measure as Gradio's complete Source Sans Pro Bold draws it (issue 30)."""
    title = page.locator("#rag-title")  # type: ignore[attr-defined]
    sync_api.expect(title).to_contain_text("Answers from your articles")  # the theme's fonts are declared by now
    widths = page.evaluate("""async () => {
        const reference = new FontFace('ReferenceBold', 'url(static/fonts/SourceSansPro/SourceSansPro-Bold.woff2)');
        document.fonts.add(await reference.load());
        await document.fonts.load('600 40px "Source Sans Pro"', 'AB');
        const ctx = document.createElement('canvas').getContext('2d');
        const width = (font) => { ctx.font = font; return ctx.measureText('AB').width; };
        return [width('600 40px "Source Sans Pro"'), width('40px ReferenceBold')];
    }""")  # type: ignore[attr-defined]
    assert widths[0] == pytest.approx(widths[1], abs=0.05), widths


def test_markup_in_articles_and_answers_never_runs(page: object) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    ask(page, "How did the harbour festival open?")
    sources = page.locator("#rag-sources")  # type: ignore[attr-defined]
    sources.locator("details.rag-others summary").click()  # render the collapsed passages too
    # The markup is on the page as text: in the title, the passage and the model's answer.
    sync_api.expect(sources).to_contain_text('Harbour <img src=x onerror="window.__xss=1"> Festival Opens <script>')
    sync_api.expect(sources).to_contain_text("${window.__xss=4}")
    sync_api.expect(page.locator("#rag-chat")).to_contain_text('<img src=x onerror="window.__xss=3">')  # type: ignore[attr-defined]
    page.get_by_role("tab", name="Documents").click()  # type: ignore[attr-defined]
    sync_api.expect(page.locator("#rag-docs")).to_contain_text("Harbour <img src=x")  # type: ignore[attr-defined]
    page.wait_for_timeout(500)  # type: ignore[attr-defined]  # give a broken image's onerror time to fire
    assert page.evaluate("typeof window.__xss") == "undefined"  # type: ignore[attr-defined]
    assert page.evaluate("document.querySelectorAll('[onerror], a[href^=\"javascript\"]').length") == 0  # type: ignore[attr-defined]
    assert dialogs == []


def test_the_collection_picker_switches_answers_and_documents(browser: object, service: ChatService, tmp_path: Path) -> None:
    from dataclasses import replace

    from rag.search.index import Index

    from .conftest import FakeEmbedder

    shelf = tmp_path / "shelf"
    shelf.mkdir()
    (shelf / "regatta.txt").write_text("Kiel Regatta Results\nThe regatta in Kiel was won by a Danish crew on Sunday.")
    regattas = Index.open(tmp_path / "regattas", embedder=FakeEmbedder())
    regattas.add([shelf])
    two = replace(service, collection="news", more={"regattas": regattas}, assistants=dict(service.assistants))
    with running(two) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        picker = page.locator("#rag-collection input")
        sync_api.expect(picker).to_have_value("news")
        picker.click()
        page.get_by_role("option", name="regattas").click()
        sync_api.expect(picker).to_have_value("regattas")
        page.get_by_role("tab", name="Documents").click()
        docs = page.locator("#rag-docs")
        sync_api.expect(docs).to_contain_text("Kiel Regatta Results")
        sync_api.expect(docs).not_to_contain_text("Village Bakery")
        page.get_by_role("tab", name="Ask").click()
        box = page.locator("#rag-question textarea")
        box.fill("Which bakery won the sourdough prize?")
        box.press("Enter")  # the bakery is in the other collection: nothing here says it
        sync_api.expect(page.locator("#rag-chat")).to_contain_text("The articles do not contain the answer")
        sync_api.expect(page.locator("#rag-chat")).not_to_contain_text("Miller")
        page.close()


def test_past_conversations_are_listed_resumed_and_exported(page: object) -> None:
    quote = "The Miller bakery in Ashford won the national sourdough prize on Friday."
    ask(page, "Which bakery won the sourdough prize?")
    page.get_by_role("button", name="New conversation").click()  # type: ignore[attr-defined]
    ask(page, "How did the harbour festival open?")
    page.get_by_text("Past conversations").click()  # type: ignore[attr-defined]  # the accordion
    saved = page.locator("#rag-saved input")  # type: ignore[attr-defined]
    sync_api.expect(saved).to_have_value(re.compile(r"^How did the harbour festival open\? · 1 question · "))
    saved.click()
    options = page.get_by_role("option")  # type: ignore[attr-defined]
    sync_api.expect(options).to_have_count(2)
    sync_api.expect(options.nth(0)).to_contain_text("How did the harbour")  # the newest first
    sync_api.expect(options.nth(1)).to_contain_text("Which bakery won the sourdough prize? · 1 question")
    options.filter(has_text="Which bakery").click()
    page.locator("#rag-resume").click()  # type: ignore[attr-defined]
    chat = page.locator("#rag-chat")  # type: ignore[attr-defined]
    sync_api.expect(chat).to_contain_text("The Miller bakery in Ashford won the national sourdough prize")
    sync_api.expect(chat).not_to_contain_text("harbour festival")
    sync_api.expect(page.locator("#rag-sources mark.rag-quote").first).to_have_text(quote)  # type: ignore[attr-defined]
    page.locator("#rag-export-md").click()  # type: ignore[attr-defined]
    link = page.locator('#rag-export a[download$=".md"]')  # type: ignore[attr-defined]
    with page.expect_download() as download:  # type: ignore[attr-defined]
        link.click()
    markdown = Path(download.value.path()).read_text(encoding="utf-8")
    assert markdown.startswith("# Which bakery won the sourdough prize?\n") and f"  > {quote}\n" in markdown
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "conversations.png"), full_page=True)  # type: ignore[attr-defined]


def test_the_document_picker_limits_the_question(page: object) -> None:
    """The picker beside the question lists the collection's documents (filled from the documents
    table); a question asked with one picked is answered from its passages only."""
    picker = page.locator("#rag-scope-docs input")  # type: ignore[attr-defined]
    picker.click()
    options = page.locator("#rag-scope-docs [role=option]")  # type: ignore[attr-defined]
    sync_api.expect(options).to_have_count(4, timeout=TIMEOUT_MS)  # bakery, chess, harbour, volcano
    options.filter(has_text="chess").click()
    page.locator("#rag-title").click()  # type: ignore[attr-defined]  # close the list
    box = page.locator("#rag-question textarea")  # type: ignore[attr-defined]
    box.fill("Which bakery won the sourdough prize?")
    box.press("Enter")
    sources = page.locator("#rag-sources")  # type: ignore[attr-defined]
    sync_api.expect(sources).to_contain_text("Chess Olympiad Ends in Budapest")
    sync_api.expect(sources).not_to_contain_text("Village Bakery Wins Bread Prize")


def test_a_document_is_summarized_with_its_checked_quotes(page: object) -> None:
    page.get_by_role("tab", name="Documents").click()  # type: ignore[attr-defined]
    picker = page.locator("#rag-summary-docs input")  # type: ignore[attr-defined]
    picker.click()
    page.get_by_role("option", name="bakery", exact=True).click()  # type: ignore[attr-defined]
    page.locator("#rag-summarize").click()  # type: ignore[attr-defined]
    summary = page.locator("#rag-summary .rag-summary")  # type: ignore[attr-defined]
    summary.wait_for(state="visible")
    sync_api.expect(summary).to_contain_text("The Miller bakery in Ashford won the national sourdough prize.")
    sync_api.expect(summary.locator("mark.rag-quote")).to_contain_text("The Miller bakery in Ashford won the national sourdough prize on Friday.")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "summary.png"), full_page=True)  # type: ignore[attr-defined]
