"""Saved conversations: the chat window's turns kept in SQLite, listed, resumed and exported.

One file, ``conversations.sqlite3`` in the data directory (:func:`rag.core.bundled.data_dir`), read
with the standard library's ``sqlite3`` (no server). Each turn keeps the question as asked and as
searched (a follow-up rewritten to stand alone), the answer, whether it was refused, its citations
(with the exact quotes and their offsets), the trust score, the withheld answer if any, and the time.

With keys (:class:`rag.search.collections.Keys`), a conversation belongs to the key that made it:
the store keeps a salted hash of that key, never the key, and every read and change filters by
it, so another key's conversations are neither listed nor found (a wrong key gets the same
"no conversation" as a missing id). Without a key, the conversations made without one.

Example:
    >>> store = ConversationStore()                                      # doctest: +SKIP
    >>> saved = store.create("default", title="Etna", key=None)          # doctest: +SKIP
    >>> store.append(saved.id, SavedTurn.of("Did Etna erupt?", answer))  # doctest: +SKIP
    >>> print(store.export(saved.id, "md"))                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answer.assistant import Withheld
from rag.answer.conversation import Turn
from rag.core.bundled import data_dir
from rag.core.errors import InvalidInput, NotFound, RagError
from rag.core.types import Citation

if TYPE_CHECKING:
    from rag.answer.assistant import Answer

CONVERSATIONS_FILE = "conversations.sqlite3"
SCHEMA_VERSION = 1  # kept in SQLite's own user_version; 0 is a new, empty file
FORMATS = ("md", "json")
MAX_TITLE_CHARS = 200
TITLE_FROM_QUESTION_CHARS = 80
_ID = re.compile(r"[0-9a-f]{12}")
# A key's hash is slow on purpose: the file may be copied, and a short key must not be guessed
# from it quickly. It is worked out once per key and store (_owner), not per request.
_KEY_ROUNDS = 100_000

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,          -- '' without a key, else the key's salted hash
    collection TEXT NOT NULL,
    title TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX conversations_by_owner ON conversations (owner, collection, updated);
CREATE TABLE turns (
    conversation TEXT NOT NULL REFERENCES conversations (id),
    position INTEGER NOT NULL,
    asked TEXT NOT NULL,
    searched TEXT NOT NULL,
    answer TEXT NOT NULL,
    refused INTEGER NOT NULL,
    citations TEXT NOT NULL,      -- JSON list
    trust REAL,
    withheld TEXT,                -- JSON object, or NULL
    time TEXT NOT NULL,
    PRIMARY KEY (conversation, position)
);
"""


def conversations_path() -> Path:
    """Where conversations are kept: ``conversations.sqlite3`` in :func:`rag.core.bundled.data_dir`."""
    return data_dir() / CONVERSATIONS_FILE


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _shown_time(iso: str) -> str:
    """``2026-12-07T15:01:03.120+00:00`` as ``2026-12-07 15:01 UTC``."""
    return f"{iso[:10]} {iso[11:16]} UTC"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def check_title(title: str) -> str:
    """A conversation's name on one line: not empty, at most 200 characters."""
    title = _one_line(title) if isinstance(title, str) else ""
    if not title:
        raise InvalidInput("a conversation's name cannot be empty")
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidInput(f"the name has {len(title)} characters; the limit is {MAX_TITLE_CHARS}")
    return title


def check_format(fmt: str) -> str:
    """An export format: ``md`` or ``json``."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}; choose {' or '.join(FORMATS)}")
    return fmt


# ------------------------------------------------------------------ what is kept


@dataclass(frozen=True)
class SavedTurn:
    """One answered question as it is kept: ``asked`` as the user wrote it, ``searched`` as it was
    looked up (a follow-up made standalone), the answer shown, its citations, the trust score
    (None when no score was worked out) and, on a refusal by the checks, the withheld answer."""

    asked: str
    searched: str
    answer: str
    refused: bool
    citations: tuple[Citation, ...]
    trust: float | None
    withheld: Withheld | None
    time: str

    @classmethod
    def of(cls, asked: str, answer: Answer, time: str | None = None) -> SavedTurn:
        """The turn of ``answer`` to a question typed as ``asked`` (``answer.question`` is what was searched)."""
        return cls(asked=asked, searched=answer.question, answer=answer.text, refused=answer.refused,
                   citations=answer.citations, trust=answer.trust.score if answer.trust is not None else None,
                   withheld=answer.withheld, time=time or _now())

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.asked, "searched_question": self.searched, "answer": self.answer,
                "refused": self.refused, "citations": [asdict(c) for c in self.citations], "trust": self.trust,
                "withheld": None if self.withheld is None else self.withheld.to_dict(), "time": self.time}


@dataclass(frozen=True)
class ConversationInfo:
    """A conversation as listed: its id, collection, name, times and number of turns."""

    id: str
    collection: str
    title: str
    created: str
    updated: str
    turn_count: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """One line for a list: the name, the number of questions and when it last changed."""
        questions = f"{self.turn_count} question{'s' if self.turn_count != 1 else ''}"
        return f"{self.title} · {questions} · {_shown_time(self.updated)}"


@dataclass(frozen=True)
class Conversation:
    """A conversation with its turns, oldest first."""

    id: str
    collection: str
    title: str
    created: str
    updated: str
    turns: tuple[SavedTurn, ...]

    def history(self) -> list[Turn]:
        """The turns as the chat's history, so a resumed conversation's follow-ups lean on them."""
        return [Turn(t.searched, t.answer, t.refused) for t in self.turns]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "collection": self.collection, "title": self.title, "created": self.created,
                "updated": self.updated, "version": SCHEMA_VERSION, "turns": [t.to_dict() for t in self.turns]}


# ------------------------------------------------------------------ exports


def to_json(conversation: Conversation) -> str:
    """The conversation as one JSON object (the shape of :meth:`Conversation.to_dict`)."""
    return json.dumps(conversation.to_dict(), ensure_ascii=False, indent=2) + "\n"


def _quoted(text: str, indent: str) -> list[str]:
    # Each line of the quote as it is: a quote must read back equal to the source text.
    return [f"{indent}> {line}" if line else f"{indent}>" for line in text.split("\n")]


def _source_lines(citations: tuple[Citation, ...], indent: str = "") -> list[str]:
    lines = []
    for c in citations:
        where = f"p. {c.page}, " if c.page is not None else ""
        notes = ("" if c.supported else " (does not support the answer)") + (" (added by the checker)" if c.added else "")
        lines.append(f"{indent}- [{c.n}] {_one_line(c.title) or c.doc_id} (`{c.doc_id}`, {where}characters "
                     f"{c.start}-{c.end}){notes}")
        if c.url:
            lines.append(f"{indent}  <{c.url}>")
        lines += _quoted(c.quote, indent + "  ")
    return lines


def to_markdown(conversation: Conversation) -> str:
    """The conversation as Markdown: each question, its answer with the ``[n]`` markers, then its
    numbered sources, each with its title, document id, offsets and the exact quote (written as
    it is in the document, not escaped: the quote is the evidence)."""
    count = len(conversation.turns)
    lines = [f"# {conversation.title}", "",
             f"Collection `{conversation.collection}`, conversation `{conversation.id}`, started "
             f"{_shown_time(conversation.created)}, {count} question{'s' if count != 1 else ''}."]
    for number, turn in enumerate(conversation.turns, start=1):
        lines += ["", f"## {number}. {_one_line(turn.asked)}", ""]
        if turn.searched != turn.asked:
            lines += [f"*Searched for: {_one_line(turn.searched)}*", ""]
        lines.append(f"**{turn.answer}**" if turn.refused else turn.answer)
        if turn.citations:
            lines += ["", "Sources:", "", *_source_lines(turn.citations)]
        if turn.withheld is not None:
            lines += ["", f"Not verified (withheld: {turn.withheld.reason}): {turn.withheld.text}"]
            if turn.withheld.citations:
                lines += ["", "Sources of the withheld answer:", "", *_source_lines(turn.withheld.citations)]
        score = f", trust score {turn.trust:.2f}" if turn.trust is not None else ""
        lines += ["", f"*Answered {_shown_time(turn.time)}{score}*"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the store


class ConversationStore:
    """Conversations in one SQLite file (default: :func:`conversations_path`), created with its
    schema on first use. Safe for several threads and processes: each call opens its own
    connection, and every change is one transaction (the file is in WAL mode, so reads do not
    wait for a write).

    ``key`` (every method): the key the caller holds (None: none). A conversation is found,
    listed and changed only with the key that made it; anything else is :class:`NotFound`.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else conversations_path()
        self._setup = threading.Lock()
        self._salt: bytes | None = None
        self._owners: dict[str, str] = {}  # key -> its hash, worked out once

    # ---------------------------------------------------------------- SQLite

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun and ended here (_transaction), not implicitly
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction (the file made first if need be): committed on
        success, rolled back on any error. A write takes the write lock at once (IMMEDIATE), so
        what it reads before writing cannot change under it."""
        self._ready()
        with self._open(write) as db:
            yield db

    @contextmanager
    def _open(self, write: bool, setup: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            with closing(self._connect()) as db:
                if setup:
                    db.execute("PRAGMA journal_mode=WAL")  # outside a transaction, as SQLite requires
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise  # a bug here, not a damaged or busy file
        except sqlite3.DatabaseError as e:
            raise RagError(f"cannot use the saved conversations in {self.path}: {e}") from None

    def _ready(self) -> bytes:
        """Make the file and its schema on first use; the salt of the key hashes."""
        with self._setup:
            if self._salt is None:
                self._salt = self._create()
            return self._salt

    def _create(self) -> bytes:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Conversations are private: the file (and SQLite's -wal and -shm, which copy its mode) for its owner only.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        with self._open(write=True, setup=True) as db:  # IMMEDIATE: two processes starting at once make it once
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                # statement by statement: executescript() would commit this transaction first
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO meta VALUES ('salt', ?)", (secrets.token_hex(16),))
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise RagError(f"{self.path} was written by a newer rag (schema {version}; this one reads "
                               f"{SCHEMA_VERSION}): upgrade rag")
            return bytes.fromhex(db.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()[0])

    def _owner(self, key: str | None) -> str:
        """Who a conversation belongs to: '' without a key, else the key's salted hash."""
        if not key:
            return ""
        salt = self._ready()
        with self._setup:
            if key not in self._owners:
                digest = hashlib.pbkdf2_hmac("sha256", key.encode(), salt, _KEY_ROUNDS)
                self._owners[key] = "pbkdf2:" + digest.hex()
            return self._owners[key]

    # ---------------------------------------------------------------- operations

    def create(self, collection: str, title: str, key: str | None = None) -> ConversationInfo:
        """A new, empty conversation in ``collection``, named ``title`` (its first line, cut to 80
        characters when longer)."""
        title = _one_line(title)
        if len(title) > TITLE_FROM_QUESTION_CHARS:  # cut at a word where there is one
            cut = title[: TITLE_FROM_QUESTION_CHARS - 1]
            title = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip() + "…"
        info = ConversationInfo(secrets.token_hex(6), collection, check_title(title), _now(), _now(), 0)
        owner = self._owner(key)
        with self._transaction(write=True) as db:
            db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?)",
                       (info.id, owner, info.collection, info.title, info.created, info.updated))
        return info

    def append(self, conversation_id: str, turn: SavedTurn, key: str | None = None) -> None:
        """Add ``turn`` after the conversation's last one."""
        owner = self._owner(key)
        with self._transaction(write=True) as db:
            self._find(db, conversation_id, owner)
            position = db.execute("SELECT COUNT(*) FROM turns WHERE conversation = ?", (conversation_id,)).fetchone()[0]
            withheld = None if turn.withheld is None else json.dumps(turn.withheld.to_dict(), ensure_ascii=False)
            db.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (conversation_id, position, turn.asked, turn.searched, turn.answer, int(turn.refused),
                        json.dumps([asdict(c) for c in turn.citations], ensure_ascii=False), turn.trust, withheld,
                        turn.time))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (turn.time, conversation_id))

    def list(self, collection: str | None = None, key: str | None = None) -> list[ConversationInfo]:
        """The conversations ``key`` made (in ``collection``, or in all), the latest changed first."""
        owner = self._owner(key)
        where, args = ("AND c.collection = ?", (owner, collection)) if collection is not None else ("", (owner,))
        with self._transaction() as db:
            rows = db.execute(
                "SELECT c.id, c.collection, c.title, c.created, c.updated, "
                "(SELECT COUNT(*) FROM turns t WHERE t.conversation = c.id) "
                f"FROM conversations c WHERE c.owner = ? {where} ORDER BY c.updated DESC, c.rowid DESC", args,
            ).fetchall()
        return [ConversationInfo(*row) for row in rows]

    def get(self, conversation_id: str, key: str | None = None, collection: str | None = None) -> Conversation:
        """The conversation with its turns (with ``collection``, only if it is that collection's)."""
        owner = self._owner(key)
        with self._transaction() as db:
            info = self._find(db, conversation_id, owner, collection)
            rows = db.execute("SELECT asked, searched, answer, refused, citations, trust, withheld, time FROM turns "
                              "WHERE conversation = ? ORDER BY position", (conversation_id,)).fetchall()
        return Conversation(info.id, info.collection, info.title, info.created, info.updated,
                            tuple(_turn(*row) for row in rows))

    def rename(self, conversation_id: str, title: str, key: str | None = None,
               collection: str | None = None) -> ConversationInfo:
        """Give the conversation a new name; returns it as listed."""
        title, owner = check_title(title), self._owner(key)
        with self._transaction(write=True) as db:
            self._find(db, conversation_id, owner, collection)
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))
            return self._find(db, conversation_id, owner)

    def delete(self, conversation_id: str, key: str | None = None, collection: str | None = None) -> ConversationInfo:
        """Delete the conversation and its turns; returns what it was, as listed."""
        owner = self._owner(key)
        with self._transaction(write=True) as db:
            info = self._find(db, conversation_id, owner, collection)
            db.execute("DELETE FROM turns WHERE conversation = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        return info

    def export(self, conversation_id: str, fmt: str = "md", key: str | None = None, collection: str | None = None) -> str:
        """The conversation as Markdown (:func:`to_markdown`) or JSON (:func:`to_json`)."""
        check_format(fmt)
        conversation = self.get(conversation_id, key, collection)
        return to_markdown(conversation) if fmt == "md" else to_json(conversation)

    @staticmethod
    def _find(db: sqlite3.Connection, conversation_id: str, owner: str, collection: str | None = None) -> ConversationInfo:
        """The conversation ``owner`` made (in ``collection``, when given), or :class:`NotFound`:
        the same words for an id that does not exist and for one another key made, so neither
        tells the other apart."""
        row = None
        if isinstance(conversation_id, str) and _ID.fullmatch(conversation_id):
            row = db.execute(
                "SELECT c.id, c.collection, c.title, c.created, c.updated, "
                "(SELECT COUNT(*) FROM turns t WHERE t.conversation = c.id) "
                "FROM conversations c WHERE c.id = ? AND c.owner = ?", (conversation_id, owner),
            ).fetchone()
        if row is None or (collection is not None and row[1] != collection):
            raise NotFound(f"no conversation '{_one_line(str(conversation_id))[:40]}'")
        return ConversationInfo(*row)


def _citation(data: dict[str, Any]) -> Citation:
    return Citation(**{name: data[name] for name in Citation.__dataclass_fields__ if name in data})


def _turn(asked: str, searched: str, answer: str, refused: int, citations: str, trust: float | None,
          withheld: str | None, time: str) -> SavedTurn:
    kept = None
    if withheld is not None:
        data = json.loads(withheld)
        kept = Withheld(data["text"], tuple(_citation(c) for c in data["citations"]), data["reason"],
                        data.get("score"), data.get("threshold"))
    return SavedTurn(asked, searched, answer, bool(refused), tuple(_citation(c) for c in json.loads(citations)),
                     trust, kept, time)


__all__ = [
    "CONVERSATIONS_FILE", "FORMATS", "SCHEMA_VERSION", "Conversation", "ConversationInfo", "ConversationStore",
    "SavedTurn", "check_format", "check_title", "conversations_path", "to_json", "to_markdown",
]
