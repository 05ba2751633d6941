"""The chat window keeps its conversations (rag/serve/conversations.py): driven through its API
with gradio_client, as tests/test_ui_app.py drives the rest (issue 47)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client  # noqa: E402

from rag.answer.assistant import Assistant  # noqa: E402
from rag.search.collections import Keys  # noqa: E402
from rag.search.index import Index  # noqa: E402
from rag.serve.conversations import ConversationStore  # noqa: E402
from rag.serve.service import ChatService  # noqa: E402

from .conftest import HOSTILE, FakeEmbedder, RoutedGenerator, make_service, run_cli, running  # noqa: E402

BAKERY = "Which bakery won the sourdough prize?"
QUOTE = "The Miller bakery in Ashford won the national sourdough prize on Friday."
KEYS = Keys(server="server-key", collections={"news": "news-key", "harbour": "harbour-key"})


@pytest.fixture
def url(tmp_path: Path, tiny_corpus: Path) -> Iterator[str]:
    with running(make_service(tmp_path, tiny_corpus)) as url:
        yield url


def text_of(message: dict) -> str:  # type: ignore[type-arg]
    return html.unescape(message["content"][0]["text"])


def test_the_window_saves_each_answer_and_lists_its_conversations_newest_first(url: str) -> None:
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    assert alice.predict(api_name="/conversations") == []
    alice.predict(BAKERY, api_name="/chat")
    alice.predict("and where is it?", api_name="/chat")
    bob.predict("Where did the lava flow?", api_name="/chat")
    store = ConversationStore()
    [bobs, alices] = store.list("default")  # each session its own conversation, the latest first
    assert (alices.title, alices.turn_count, bobs.title, bobs.turn_count) == (BAKERY, 2, "Where did the lava flow?", 1)
    first, followup = store.get(alices.id).turns
    assert first.asked == BAKERY and first.citations[0].quote == QUOTE and not first.refused
    assert followup.asked == "and where is it?" and followup.searched.startswith("Where is it? (about bakery")
    listed = alice.predict("default", api_name="/conversations")
    assert [c["id"] for c in listed] == [bobs.id, alices.id] and listed[1]["turn_count"] == 2


def test_a_resumed_conversation_is_shown_again_and_its_followups_use_it(url: str) -> None:
    first = Client(url, verbose=False)
    first.predict(BAKERY, api_name="/chat")
    [saved] = ConversationStore().list()
    later = Client(url, verbose=False)  # another visit: nothing in its chat yet
    messages, sources, status = later.predict(saved.id, api_name="/resume_conversation")
    assert [m["role"] for m in messages] == ["user", "assistant"] and text_of(messages[0]) == BAKERY
    assert "The Miller bakery in Ashford won the national sourdough prize" in text_of(messages[1])
    assert '<sup class="rag-cite">' in messages[1]["content"][0]["text"]
    assert f'<mark class="rag-quote">{QUOTE}</mark>' in sources and "Resumed" in status
    messages, *_ = later.predict("and where is it?", api_name="/chat")
    assert "Searched for: Where is it? (about bakery" in text_of(messages[-1])  # the resumed turn's topic
    assert len(messages) == 4
    [still] = ConversationStore().list()  # the follow-up went on the same conversation
    assert still.id == saved.id and still.turn_count == 2
    with pytest.raises(Exception, match="no conversation '0123456789ab'"):
        later.predict("0123456789ab", api_name="/resume_conversation")


def test_markup_in_a_resumed_answer_and_its_sources_stays_text(url: str) -> None:
    client = Client(url, verbose=False)
    client.predict("How did the harbour festival open?", api_name="/chat")
    [saved] = ConversationStore().list()
    messages, sources, _ = client.predict(saved.id, api_name="/resume_conversation")
    shown = messages[1]["content"][0]["text"]
    assert "tall ships" in shown and "<img" not in shown and "<b>" not in shown and "&lt;img" in shown
    assert "window.__xss=3" in html.unescape(shown)  # the words are there, as text
    assert "<img" not in sources and "<script" not in sources and "&lt;script&gt;" in sources


def test_rename_export_and_delete_through_the_window(url: str) -> None:
    client = Client(url, verbose=False)
    client.predict(BAKERY, api_name="/chat")
    [saved] = ConversationStore().list()
    listed, name_box, status = client.predict(saved.id, "Sourdough", api_name="/rename_conversation")
    assert listed["value"] == saved.id and listed["choices"][0][0].startswith("Sourdough · 1 question · ")
    assert name_box == "" and "Renamed to “Sourdough”" in status
    assert ConversationStore().get(saved.id).title == "Sourdough"
    markdown = Path(client.predict(saved.id, api_name="/export_markdown"))
    assert markdown.suffix == ".md" and markdown.read_text(encoding="utf-8") == ConversationStore().export(saved.id, "md")
    assert f"  > {QUOTE}" in markdown.read_text(encoding="utf-8")
    exported = json.loads(Path(client.predict(saved.id, api_name="/export_json")).read_text(encoding="utf-8"))
    assert exported["title"] == "Sourdough" and exported["turns"][0]["citations"][0]["quote"] == QUOTE
    listed, status, messages, _ = client.predict(saved.id, api_name="/delete_conversation")
    assert listed["choices"] == [] and "Deleted “Sourdough”" in status and messages == []  # it was the one in the chat
    assert ConversationStore().list() == []
    for api_name in ("/resume_conversation", "/export_markdown", "/delete_conversation"):
        with pytest.raises(Exception, match=f"no conversation '{saved.id}'"):
            client.predict(saved.id, api_name=api_name)
    client.predict(BAKERY, api_name="/chat")  # the chat goes on as a new conversation
    assert [c.turn_count for c in ConversationStore().list()] == [1]


@pytest.fixture
def closed(tmp_path: Path, tiny_corpus: Path) -> Iterator[str]:
    """Two collections closed with keys, as in tests/test_collections.py."""
    news = Index.open(tmp_path / "news", embedder=FakeEmbedder())
    news.add([tiny_corpus])
    shelf = tmp_path / "harbour-docs"
    shelf.mkdir()
    for name, text in HOSTILE.items():
        (shelf / name).write_text(text, encoding="utf-8")
    harbour = Index.open(tmp_path / "harbour", embedder=FakeEmbedder())
    harbour.add([shelf])
    service = ChatService(news, model="routed", assistants={"routed": Assistant(news, model="routed", generator=RoutedGenerator())},
                          collection="news", more={"harbour": harbour}, keys=KEYS)
    with running(service) as url:
        yield url


def test_each_key_sees_only_the_conversations_it_made(
    closed: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Client(closed, auth=("news", "news-key"), verbose=False)
    team.predict(BAKERY, api_name="/chat")  # the first collection this login opens: news
    [mine] = team.predict("news", api_name="/conversations")
    admin = Client(closed, auth=("admin", "server-key"), verbose=False)  # opens every collection, with another key
    assert admin.predict("news", api_name="/conversations") == []
    for api_name in ("/resume_conversation", "/export_json", "/delete_conversation"):
        with pytest.raises(Exception, match=f"no conversation '{mine['id']}'"):
            admin.predict(mine["id"], "news", api_name=api_name)
    harbour = Client(closed, auth=("harbour", "harbour-key"), verbose=False)
    with pytest.raises(Exception, match="No collection 'news' here"):
        harbour.predict("news", api_name="/conversations")
    assert ConversationStore().list() == []  # none was made without a key
    # the key's salted hash is the same for the CLI: the key that made it sees it there
    monkeypatch.delenv("RAG_API_KEY", raising=False)
    capsys.readouterr()  # the server's log of the refusals above
    code, out, _ = run_cli(capsys, "history", "list", "--api-key", "news-key", "--json")
    assert code == 0 and [c["id"] for c in json.loads(out)] == [mine["id"]]
    code, out, _ = run_cli(capsys, "history", "list", "--api-key", "server-key", "--json")
    assert json.loads(out) == []
