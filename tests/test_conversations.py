"""Saved conversations (rag/serve/conversations.py): kept across a restart, exported with quotes
that equal their sources, each key's kept from the others, and `rag history` (issue 47)."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from rag.answer.assistant import REFUSAL_TEXT, Answer, Withheld
from rag.answer.conversation import Turn
from rag.core.errors import InvalidInput, NotFound, RagError
from rag.search.collections import Keys
from rag.serve.conversations import (
    SCHEMA_VERSION,
    ConversationStore,
    SavedTurn,
    conversations_path,
    to_markdown,
)
from rag.serve.service import ChatService

from .conftest import make_service, run_cli

BAKERY = "Which bakery won the sourdough prize?"
SOURCE = re.compile(r"^- \[(\d+)\] .* \(`([^`]+)`, (?:p\. \d+, )?characters (\d+)-(\d+)\)")


@pytest.fixture
def service(tmp_path: Path, tiny_corpus: Path) -> ChatService:
    return make_service(tmp_path, tiny_corpus)


def answered(service: ChatService) -> list[tuple[str, Answer]]:
    """Real answers from the tiny corpus (the routed generator): a cited one, a follow-up, one
    with markup in its source, one with two sentences, and a refusal that keeps the withheld answer."""
    bakery = service.ask(BAKERY)
    assert bakery.trust is not None and bakery.trust.score is None  # the routed generator gives nothing to score
    bakery = replace(bakery, trust=replace(bakery.trust, score=0.87))
    followup = service.respond("and where is it?", history=[Turn(bakery.question, bakery.text)]).answer()
    harbour = service.ask("How did the harbour festival open?")
    lava = service.ask("Where did the lava flow?")
    withheld = replace(bakery, text=REFUSAL_TEXT, refused=True, citations=(), withheld=Withheld(
        bakery.text, bakery.citations, "trust score 0.31 is below the threshold 0.50", 0.31, 0.5))
    return [(BAKERY, bakery), ("and where is it?", followup), ("How did the harbour festival open?", harbour),
            ("Where did the lava flow?", lava), (BAKERY, withheld)]


def saved(store: ConversationStore, service: ChatService, key: str | None = None, collection: str = "default") -> str:
    turns = answered(service)
    conversation = store.create(collection, turns[0][0], key)
    for asked, answer in turns:
        store.append(conversation.id, SavedTurn.of(asked, answer), key)
    return conversation.id


def quoted_sources(markdown: str) -> list[tuple[int, str, int, int, str]]:
    """``(n, doc_id, start, end, quote)`` of every source listed in an exported conversation."""
    lines, found = markdown.split("\n"), []
    for i, line in enumerate(lines):
        if m := SOURCE.match(line):
            quote, j = [], i + 1
            while j < len(lines) and lines[j].startswith("  >"):
                quote.append(lines[j].removeprefix("  >").removeprefix(" "))
                j += 1
            found.append((int(m[1]), m[2], int(m[3]), int(m[4]), "\n".join(quote)))
    return found


def test_a_conversation_survives_a_new_store_on_the_same_file(service: ChatService) -> None:
    store = ConversationStore()
    conversation_id = saved(store, service)
    before = store.get(conversation_id)
    after = ConversationStore(conversations_path()).get(conversation_id)  # as after a restart
    assert after == before and len(after.turns) == 5
    first, followup, *_, refused = after.turns
    assert first.asked == first.searched == BAKERY and not first.refused and first.trust == 0.87
    assert first.citations[0].doc_id == "bakery" and first.citations[0].quote.startswith("The Miller bakery")
    assert followup.asked == "and where is it?" and followup.searched.startswith("Where is it? (about bakery")
    assert refused.refused and refused.answer == REFUSAL_TEXT and refused.citations == ()
    assert refused.withheld is not None and refused.withheld.text == first.answer
    assert refused.withheld.citations == first.citations and refused.withheld.score == 0.31
    assert after.history()[1] == Turn(followup.searched, followup.answer, False)
    with closing(sqlite3.connect(conversations_path())) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conversations_path().stat().st_mode & 0o777 == 0o600


def test_markdown_export_quotes_equal_the_source_text(service: ChatService) -> None:
    store = ConversationStore()
    conversation = store.get(saved(store, service))
    markdown = store.export(conversation.id, "md")
    assert markdown == to_markdown(conversation)
    sources = quoted_sources(markdown)
    cited = [c for t in conversation.turns for c in (*t.citations, *(t.withheld.citations if t.withheld else ()))]
    assert len(sources) == len(cited) == 5  # every citation listed, the withheld answer's too
    for _, doc_id, start, end, quote in sources:
        assert quote and service.index.document(doc_id).text[start:end] == quote, (doc_id, start, end, quote)
    assert [s[0] for s in sources] == [c.n for c in cited]
    assert "\nThe Miller bakery in Ashford won the national sourdough prize [1].\n" in markdown
    assert "## 2. and where is it?\n\n*Searched for: Where is it? (about bakery" in markdown
    assert '<img src=x onerror="window.__xss=1">' in markdown  # a title as written: the file is a record, not a page
    assert f"**{REFUSAL_TEXT}**" in markdown and "Not verified (withheld: trust score 0.31 is below" in markdown


def test_json_export_has_every_field_of_every_turn(service: ChatService) -> None:
    store = ConversationStore()
    conversation = store.get(saved(store, service))
    data = json.loads(store.export(conversation.id, "json"))
    assert data["id"] == conversation.id and data["collection"] == "default" and data["version"] == SCHEMA_VERSION
    first, followup = data["turns"][:2]
    assert set(first) == {"question", "searched_question", "answer", "refused", "citations", "trust", "withheld", "time"}
    assert set(first["citations"][0]) >= {"n", "doc_id", "title", "quote", "start", "end", "supported"}
    assert followup["question"] == "and where is it?" and followup["searched_question"] != followup["question"]
    assert data["turns"][-1]["withheld"]["citations"][0]["quote"] == first["citations"][0]["quote"]
    with pytest.raises(InvalidInput, match="unknown export format 'pdf'"):
        store.export(conversation.id, "pdf")


def test_another_keys_conversations_are_not_listed_or_reachable(service: ChatService) -> None:
    store = ConversationStore()
    mine = saved(store, service, key="key-a")
    theirs = store.create("default", "theirs", key="key-b").id
    open_one = store.create("default", "no key").id
    assert [c.id for c in store.list(key="key-a")] == [mine]
    assert [c.id for c in store.list(key="key-b")] == [theirs]
    assert [c.id for c in store.list()] == [open_one]  # without a key: those made without one
    missing, turn = "0123456789ab", store.get(mine, "key-a").turns[0]
    for key in ("key-b", None, "key-a-but-longer"):
        for method, args in ((store.get, ()), (store.rename, ("mine now",)), (store.delete, ()),
                             (store.export, ("md",)), (store.append, (turn,))):
            with pytest.raises(NotFound) as wrong_key:
                method(mine, *args, key=key)  # type: ignore[operator]
            assert str(wrong_key.value) == f"no conversation '{mine}'"
    with pytest.raises(NotFound) as absent:
        store.get(missing, "key-a")
    assert str(absent.value) == f"no conversation '{missing}'"  # the same words as another key's
    assert len(store.get(mine, "key-a").turns) == 5  # nothing above changed it
    stored = b"".join(p.read_bytes() for p in conversations_path().parent.glob("conversations.sqlite3*"))
    assert b"key-a" not in stored and b"key-b" not in stored  # a salted hash, never the key


def test_a_window_login_acts_with_the_key_its_name_stands_for() -> None:
    keys = Keys(server="server-key", collections={"news": "news-key"})
    assert keys.for_login("news") == "news-key" and keys.for_login("anyone") == "server-key"
    assert keys.for_login(None) is None and Keys().for_login("anyone") is None  # an open server: no key
    assert Keys(collections={"news": "news-key"}).for_login("anyone") is None


def test_list_by_collection_newest_first_rename_and_delete(service: ChatService) -> None:
    store = ConversationStore()
    old = store.create("default", "first").id
    other = store.create("news", "elsewhere").id
    new = store.create("default", BAKERY * 3).id
    assert [c.id for c in store.list("default")] == [new, old] and [c.id for c in store.list("news")] == [other]
    assert store.list("default")[0].title.endswith("…") and len(store.list("default")[0].title) <= 80
    store.append(old, SavedTurn.of(BAKERY, service.ask(BAKERY)))  # a new turn brings it to the top
    assert [c.id for c in store.list("default")] == [old, new] and store.list("default")[0].turn_count == 1

    assert store.rename(old, "  Bakery\nprize  ").title == "Bakery prize"
    assert store.get(old).title == "Bakery prize"
    for bad, words in (("   ", "cannot be empty"), ("x" * 201, "the limit is 200")):
        with pytest.raises(InvalidInput, match=words):
            store.rename(old, bad)
    with pytest.raises(NotFound):
        store.get(old, collection="news")  # another collection's id: not found there

    assert store.delete(old).title == "Bakery prize"
    assert [c.id for c in store.list("default")] == [new]
    with closing(sqlite3.connect(conversations_path())) as db:
        assert db.execute("SELECT COUNT(*) FROM turns WHERE conversation = ?", (old,)).fetchone()[0] == 0
    with pytest.raises(NotFound, match=f"no conversation '{old}'"):
        store.delete(old)


def test_threads_and_stores_append_at_once_without_losing_a_turn(service: ChatService) -> None:
    turn = SavedTurn.of(BAKERY, service.ask(BAKERY))
    shared = ConversationStore()
    conversation_id = shared.create("default", "busy", key="k").id
    errors: list[BaseException] = []

    def add(store: ConversationStore) -> None:
        try:
            for i in range(10):
                store.append(conversation_id, replace(turn, asked=f"{threading.get_ident()} {i}"), "k")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=add, args=(shared if i % 2 else ConversationStore(),)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    turns = shared.get(conversation_id, "k").turns
    assert len(turns) == 40 and len({t.asked for t in turns}) == 40


def test_a_file_from_a_newer_rag_is_refused_in_one_line() -> None:
    path = conversations_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RagError, match="written by a newer rag") as error:
        ConversationStore().list()
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------- rag history


def test_history_lists_shows_and_exports(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, service: ChatService, tmp_path: Path
) -> None:
    monkeypatch.delenv("RAG_API_KEY", raising=False)
    code, out, err = run_cli(capsys, "history", "list")
    assert code == 0 and out == "" and "no saved conversations made without a key" in err
    store = ConversationStore()
    open_id = saved(store, service)
    news_id = store.create("news", "elsewhere").id
    keyed_id = saved(store, service, key="team-key")

    code, out, _ = run_cli(capsys, "history", "list")
    rows = [line.split("\t") for line in out.splitlines()]
    assert code == 0 and [r[0] for r in rows] == [news_id, open_id]
    assert rows[1][2:] == ["default", "5 questions", BAKERY] and rows[1][1].endswith(" UTC")
    code, out, _ = run_cli(capsys, "history", "list", "--collection", "news", "--json")
    assert code == 0 and [c["id"] for c in json.loads(out)] == [news_id]
    code, out, _ = run_cli(capsys, "history", "list", "--api-key", "team-key", "--json")
    assert [c["id"] for c in json.loads(out)] == [keyed_id]
    monkeypatch.setenv("RAG_API_KEY", "team-key")
    code, out, _ = run_cli(capsys, "history", "list", "--json")
    assert [c["id"] for c in json.loads(out)] == [keyed_id]

    code, out, _ = run_cli(capsys, "history", "show", keyed_id)
    assert code == 0 and out == store.export(keyed_id, "md", "team-key") and out.startswith(f"# {BAKERY}\n")
    code, out, _ = run_cli(capsys, "history", "export", keyed_id, "--format", "json")
    assert code == 0 and json.loads(out)["id"] == keyed_id
    target = tmp_path / "bakery.md"
    code, out, err = run_cli(capsys, "history", "export", keyed_id, "--out", str(target))
    assert code == 0 and out == "" and f"wrote {target}" in err
    assert target.read_text(encoding="utf-8") == store.export(keyed_id, "md", "team-key")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["history", "show", "0123456789ab"], "no conversation '0123456789ab'"),
        (["history", "export", "nonsense id"], "no conversation 'nonsense id'"),
        (["history", "show", "{keyed}"], "no conversation '{keyed}'"),  # another key's: the same words
        (["history", "show", "{keyed}", "--api-key", "wrong"], "no conversation '{keyed}'"),
        (["history", "list", "--collection", "Bad Name"], "a collection name is"),
        (["history", "export", "{keyed}", "--api-key", "team-key", "--out", "/no/such/dir/x.md"], "No such file"),
    ],
)
def test_history_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    monkeypatch.delenv("RAG_API_KEY", raising=False)
    keyed = ConversationStore().create("default", "private", key="team-key").id
    code, out, err = run_cli(capsys, *[a.replace("{keyed}", keyed) for a in argv])
    assert code == 1 and out == ""
    assert err.startswith("rag: error: ") and message.replace("{keyed}", keyed) in err and err.count("\n") == 1


def test_history_rejects_an_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_cli(capsys, "history", "export", "0123456789ab", "--format", "pdf")
    assert exit_.value.code == 2 and "invalid choice: 'pdf'" in capsys.readouterr().err
