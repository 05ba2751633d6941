"""Shared fixtures: no network, a private data directory, a fake embedder, a judging fake generator
and a tiny corpus."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import rag.search.index
from rag.answer.assistant import Assistant
from rag.cli import main
from rag.core.types import GenerationStats
from rag.search.embedding import embedder_name
from rag.search.index import Index
from rag.serve.app import launch
from rag.serve.service import ChatService

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


class FakeEmbedder:
    """Deterministic bag-of-words vectors: texts sharing words get similar vectors.

    Implements the one thing the index needs from an embedder, so unit tests are
    fast and exact without loading a model.
    """

    def __init__(self, name: str = "fake-embedder", dim: int = 64) -> None:
        self.name = name
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[i, h % self.dim] += 1.0 if (h >> 8) % 2 else -1.0
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
            if not norm:
                out[i, 0] = 1.0
        return out

    embed_query = embed  # symmetric: a query is embedded like a document


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse outbound connections and keep project data in a temporary folder."""
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if self.family == socket.AF_UNIX or host in ("127.0.0.1", "::1", "localhost"):
            return real_connect(self, address)
        raise RuntimeError(f"tests must not use the network (tried to connect to {address})")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    data = tmp_path_factory.mktemp("rag-data")
    monkeypatch.setenv("RAG_DATA_DIR", str(data))
    monkeypatch.setenv("RAG_INDEX_DIR", str(data / "index"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


TINY_CORPUS = {
    "volcano.txt": (
        "Mount Etna Erupts Again\n"
        "Mount Etna, the volcano on Sicily, erupted on Monday. Lava flowed down the eastern slope. "
        "The airport in Catania closed for six hours.\n"
        "Scientists at the INGV institute recorded strong tremors before the eruption."
    ),
    "chess.md": (
        "# Chess Olympiad Ends in Budapest\n\n"
        "The Chess Olympiad finished in Budapest with India winning the open section. "
        "Gukesh scored nine points on the top board.\n\n"
        "The women's section was also won by India, ahead of Kazakhstan."
    ),
    "bakery.html": (
        "<html><head><title>Bakery Wins Prize</title><script>alert('x')</script></head>"
        "<body><nav>Home | News | Contact</nav><article><h1>Village Bakery Wins Bread Prize</h1>"
        "<p>The Miller bakery in Ashford won the national sourdough prize on Friday.</p>"
        "<p>Its rye loaf uses a starter kept alive since 1952.</p></article>"
        "<footer>Copyright 2024 Ashford News</footer></body></html>"
    ),
}


@pytest.fixture
def index(tmp_path: Path, tiny_corpus: Path) -> Index:
    """The tiny corpus indexed with the fake embedder (the FAISS store in tmp_path/ix)."""
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([tiny_corpus])
    return index


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in TINY_CORPUS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]  # pages object filled in below
    font_id = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for text in pages:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content_id = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (content_id, font_id)
        )
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


class JudgingGenerator:
    """A generator that streams a fixed reply, keeps generation statistics like the llama.cpp
    backend, and answers judge turns with fixed next-token probabilities.

    ``yes`` is P("Yes") for every judge turn, or a function of the turn's text; P("No") is the
    rest. ``refusing`` is the probability of a first token "I" (as in "I don't know").
    """

    name = "judging"

    def __init__(self, reply: str, yes: float | Callable[[str], float] = 0.9, refusing: float = 0.01,
                 logprob: float = -0.1, hidden: dict[str, tuple[float, ...]] | None = None) -> None:
        self.reply = reply
        self.hidden = hidden or {}  # GenerationStats.hidden: the states a llama.cpp model keeps for the probes
        self.yes = yes
        self.refusing = refusing
        self.logprob = logprob
        self.turns: list[str] = []  # the judge turns asked
        self.conversations: list[list[dict[str, str]]] = []
        self.stats: GenerationStats | None = None

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        self.conversations.append(messages)
        pieces = [word + " " for word in self.reply.split(" ")]
        first = pieces[0].strip() or "?"
        self.stats = GenerationStats(
            prompt_tokens=500, cached_tokens=200, tokens=tuple(pieces), token_logprobs=tuple(self.logprob for _ in pieces),
            first_choices=((first, 1 - self.refusing), ("I", self.refusing)), hidden=self.hidden,
        )
        yield from pieces

    def next_token_probabilities(self, messages: list[dict[str, str]], candidates: Sequence[str]) -> list[float]:
        self.conversations.append(messages)
        turn = messages[-1]["content"]
        self.turns.append(turn)
        yes = self.yes(turn) if callable(self.yes) else self.yes
        table = {"Yes": yes, "yes": 0.0, "No": 1 - yes, "no": 0.0}
        return [table.get(c, 0.0) for c in candidates]


class ScriptedGenerator:
    """Streams a fixed reply word by word and records the prompts it was given."""

    name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.prompts: list[str] = []  # the last (question) message of each call
        self.conversations: list[list[dict[str, str]]] = []

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        self.prompts.append(messages[-1]["content"])
        self.conversations.append(messages)
        for word in self.reply.split(" "):
            yield word + " "


# ---------------------------------------------------------------------- the chat service and the CLI

HOSTILE = {
    # Markup in an article's text (and so in its title, passages and quotes) must be shown, not run.
    "harbour.txt": (
        'Harbour <img src=x onerror="window.__xss=1"> Festival Opens <script>window.__xss=2</script>\n'
        'The harbour festival in Tallinn opened on Saturday with <b>fireworks</b> and '
        '<img src=x onerror="window.__xss=3"> tall ships. Organisers expect 40,000 visitors ${window.__xss=4} '
        "at the old port.\n"
        'Tickets <script>alert(document.cookie)</script> are sold at the gate <a href="javascript:window.__xss=5">here</a>.'
    ),
}
REPLIES = {
    "bakery": "The Miller bakery in Ashford won the national sourdough prize [1].",
    "lava": "Lava flowed down the eastern slope [1]. It reached the sea on Tuesday [1].",
    "harbour": 'The festival opened on Saturday with <b>fireworks</b> and <img src=x onerror="window.__xss=3"> tall ships [1].',
    "olympiad": "India won the open section [1].",
    # a summary's prompt (rag/answer/summary.py): the bakery article's, whichever is asked for
    "summarize the main facts": "The Miller bakery in Ashford won the national sourdough prize [1].",
    "the numbered sources come from two articles": "The Miller bakery won the sourdough prize [1], and lava flowed down the eastern slope [2].",
}


class RoutedGenerator:
    """Replies by the first key of ``replies`` found in the question, word by word, with an
    optional pause per word so tests can overlap two answers."""

    name = "routed"

    def __init__(self, replies: dict[str, str] = REPLIES, pause: float = 0.0) -> None:
        self.replies = replies
        self.pause = pause
        self.active = 0
        self.most_active = 0

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        question = messages[-1]["content"].rsplit("Question:", 1)[-1].lower()
        reply = next((r for key, r in self.replies.items() if key in question), "I don't know.")
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            for word in reply.split(" "):
                time.sleep(self.pause)
                yield word + " "
        finally:
            self.active -= 1


def make_service(folder: Path, corpus: Path, pause: float = 0.0) -> ChatService:
    for name, text in HOSTILE.items():
        (corpus / name).write_text(text, encoding="utf-8")
    index = Index.open(folder / "ix", embedder=FakeEmbedder())
    index.add([corpus])
    generator = RoutedGenerator(pause=pause)
    return ChatService(
        index, model="routed", assistants={"routed": Assistant(index, model="routed", generator=generator)},
        upload_dir=folder / "uploads",
    )



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(service: ChatService) -> Iterator[str]:
    """The app served on a free loopback port for the duration of the block."""
    app, url = launch(service, port=free_port(), block=False)
    try:
        yield url
    finally:
        app.close()



@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI builds its embedder from a name; give it the fake one under that name."""
    monkeypatch.setattr(rag.search.index, "load_embedder", lambda spec: FakeEmbedder(name=embedder_name(spec)))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err
