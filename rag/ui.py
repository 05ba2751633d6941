"""The chat window: a Gradio app over :class:`~rag.answering.Assistant`.

Three parts, each usable without the others:

- rendering: :func:`render_answer` and :func:`render_sources` turn an :class:`Answer` into
  HTML. Everything that comes from a document or the model is escaped first, so markup
  inside an article is shown, never run; only our own tags (``<mark>``, ``<sup>``...) remain.
- :class:`ChatService`: what the app does, free of Gradio: one or more collections (named
  indexes), each model loaded once and shared by all of them, one question at a time
  (llama.cpp is not thread-safe), uploads checked and confined to the data directory.
- :func:`build_app` / :func:`launch`: the Gradio wiring. Gradio is imported there only.

Example:
    >>> from rag.ui import ChatService, launch
    >>> launch(ChatService.open(".rag/index"))      # http://127.0.0.1:7860, blocks  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import shutil
import threading
import typing
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rag import defaults
from rag.answering import DEFAULT_K, MAX_QUESTION_CHARS, Answer, Assistant, check_question
from rag.citations import Citation
from rag.collections import DEFAULT as DEFAULT_COLLECTION
from rag.collections import Keys, collection_dir
from rag.conversation import Turn, resolve_followup
from rag.errors import InvalidInput
from rag.feedback import MAX_COMMENT_CHARS, record_feedback
from rag.generation import DEFAULT_MODEL, GenerationSettings, is_remote
from rag.index import Index
from rag.loading import SUPPORTED_SUFFIXES
from rag.models import BUNDLED, data_dir
from rag.retrieval import MODES, Mode, check_k, check_mode
from rag.types import Hit
from rag.web import is_url

if TYPE_CHECKING:
    import gradio

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_K = defaults.MAX_K
MAX_UPLOAD_FILES = 20
MAX_UPLOAD_MB = 20
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
UPLOAD_LIMITS = (
    f"At most {MAX_UPLOAD_FILES} files at a time, {MAX_UPLOAD_MB} MB each: "
    + " ".join(sorted(SUPPORTED_SUFFIXES))
)
EMPTY_SOURCES = '<div class="rag-sources"><p class="rag-note">The sources of each answer appear here.</p></div>'

# ------------------------------------------------------------------ rendering

# Besides HTML, the chat renders Markdown: characters Markdown or LaTeX would act on become
# numeric entities too, which both show as the character itself. One table, one pass, so
# no entity is escaped twice.
_INERT = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
    | {c: f"&#{ord(c)};" for c in "\\`*_{}[]()#+-!|~$:="}
)


def escape_text(text: str) -> str:
    """``text`` as inert HTML: no tag, attribute, entity, Markdown or LaTeX in it takes effect."""
    return text.translate(_INERT)


def _cite_marks(numbers: Sequence[int]) -> str:
    return "".join(f'<sup class="rag-cite">{escape_text(f"[{n}]")}</sup>' for n in numbers)


def render_answer(answer: Answer, searched: str | None = None) -> str:
    """The answer as chat HTML: each sentence with its ``[n]`` markers, unsupported ones marked.

    ``searched`` is the standalone question a follow-up was rewritten to; it is shown so the
    user can see what was looked up.
    """
    parts: list[str] = []
    if searched and searched != answer.question:
        searched = None
    if searched:
        parts.append(f'<p class="rag-searched"><em>Searched for: {escape_text(searched)}</em></p>')
    if answer.refused:
        parts.append(f'<p class="rag-refusal"><strong>{escape_text(answer.text)}</strong></p>')
        if answer.raw and answer.refusal_reason:
            # the model did write an answer: say why it is not shown
            parts.append(f'<p class="rag-note"><small>Withheld: {escape_text(answer.refusal_reason)}.</small></p>')
        return "\n".join(parts)
    if not answer.sentences and not answer.conflicts:
        parts.append(f"<p>{escape_text(answer.text)}</p>")
        return "\n".join(parts)
    sentences = []
    for s in answer.sentences:
        body = escape_text(s.text) + _cite_marks(s.citations)
        if not s.supported:
            body = (
                f'<span class="rag-unsupported" title="No source supports this sentence">{body} '
                "<em>(not supported by the sources)</em></span>"
            )
        sentences.append(body)
    if sentences:  # none when only the sources' disagreement is shown
        parts.append("<p>" + " ".join(sentences) + "</p>")
    for conflict in answer.conflicts:
        # Both values with their sources; the quotes are highlighted in the sources panel.
        given = "; ".join(f"{escape_text(v.value)}{_cite_marks([v.citation.n])}" for v in conflict.values)
        parts.append(f'<p class="rag-conflict"><strong>The sources disagree:</strong> {given}.</p>')
    return "\n".join(parts)


def _marked(text: str, spans: list[tuple[int, int]]) -> str:
    """Escaped ``text`` with ``spans`` (offsets into it; merged where they overlap) in ``<mark>``."""
    merged: list[list[int]] = []
    for a, b in sorted((max(0, a), min(len(text), b)) for a, b in spans):
        if a >= b:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out, pos = [], 0
    for a, b in merged:
        out.append(escape_text(text[pos:a]))
        out.append(f'<mark class="rag-quote">{escape_text(text[a:b])}</mark>')
        pos = b
    out.append(escape_text(text[pos:]))
    return "".join(out)


def _head(n: int | None, hit: Hit, extra: str = "", url: str | None = None) -> str:
    """A passage's heading: its number, title (a link to ``url``, the web page it was read from),
    document id, date, and ``extra`` (escaped), which defaults to the page the passage starts on
    in a paged document."""
    if not extra and hit.page is not None:
        extra = escape_text(f" · p. {hit.page}")
    label = f'<span class="rag-n">{escape_text(f"[{n}]")}</span> ' if n is not None else ""
    meta = " · ".join(escape_text(x) for x in (hit.doc_id, hit.date or "no date") if x) + extra
    title = f"<strong>{escape_text(hit.title or hit.doc_id)}</strong>"
    if url and is_url(url):
        title = f'<a href="{escape_text(url)}" target="_blank" rel="noopener noreferrer">{title}</a>'
    return f'<div class="rag-head">{label}{title} <small>{meta}</small></div>'


def render_sources(answer: Answer | None) -> str:
    """The sources panel: each cited passage with its supporting quotes highlighted, then the
    other retrieved passages in a collapsed list."""
    if answer is None:
        return EMPTY_SOURCES
    by_n: dict[int, list[Citation]] = {}
    for c in answer.citations:
        by_n.setdefault(c.n, []).append(c)
    hits_by_chunk = {h.chunk_id: h for h in answer.hits}
    source_hits = {s.n: s.hit for s in answer.sources}
    out = ['<div class="rag-sources">']
    if by_n:
        out.append("<h3>Sources</h3>")
    elif answer.refused:
        out.append('<p class="rag-note">No passage answers this question.</p>')
    cited_chunks = set()
    for n, cites in by_n.items():
        hit = source_hits.get(n) or hits_by_chunk.get(cites[0].chunk_id)
        if hit is None:
            continue
        cited_chunks.add(hit.chunk_id)
        inside = [(c.start - hit.start, c.end - hit.start) for c in cites if hit.start <= c.start and c.end <= hit.end]
        notes = []
        if any(not c.supported for c in cites):
            notes.append("the highlighted sentence is the closest match, but it does not support the answer")
        disagreeing = {(v.citation.n, v.citation.start) for c in answer.conflicts for v in c.values}
        if any((c.n, c.start) in disagreeing for c in cites):
            notes.append("this source disagrees with another about the answer: both are highlighted")
        elif any(c.added for c in cites):
            notes.append("the checker attached this source to a sentence the model left uncited")
        pages = sorted({c.page for c in cites if c.page is not None})
        extra = escape_text(" · " + ", ".join(f"p. {p}" for p in pages)) if pages else ""
        url = next((c.url for c in cites if c.url), None)
        out.append(f'<section class="rag-source" id="rag-source-{n}">{_head(n, hit, extra, url)}')
        out.append(f'<p class="rag-passage">{_marked(hit.text, inside)}</p>')
        for c in cites:
            if (c.start - hit.start, c.end - hit.start) not in inside:
                out.append(f'<blockquote><mark class="rag-quote">{escape_text(c.quote)}</mark></blockquote>')
        out.extend(f'<p class="rag-note">{escape_text(note)}</p>' for note in notes)
        out.append("</section>")
    others = [h for h in answer.hits if h.chunk_id not in cited_chunks]
    if others:
        label = "Other retrieved passages" if by_n else "Retrieved passages"
        out.append(f'<details class="rag-others"><summary>{label} ({len(others)})</summary>')
        for h in others:
            score = escape_text(f" · score {h.score:.3f}")
            out.append(f'<div class="rag-hit">{_head(None, h, score)}<p class="rag-passage">{escape_text(h.text)}</p></div>')
        out.append("</details>")
    out.append("</div>")
    return "\n".join(out)


# ------------------------------------------------------------------ uploads

def safe_upload_name(name: str) -> str:
    """A file name that stays inside the upload folder: the last path component, with
    anything but letters, digits, ``.``, ``-`` and ``_`` replaced.

    Raises:
        ValueError: nothing usable is left, or the type is not one ``rag index`` reads.
    """
    base = re.split(r"[/\\]", str(name))[-1]
    base = re.sub(r"[^\w.-]+", "_", base)[-120:].lstrip("._-")  # cut first, so no cut leaves a hidden file
    suffix = Path(base).suffix.lower()
    if not Path(base).stem or suffix not in SUPPORTED_SUFFIXES:
        raise InvalidInput(f"'{name}' is not a supported file; allowed: {' '.join(sorted(SUPPORTED_SUFFIXES))}")
    return base


def check_uploads(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """``(file, safe name)`` for each upload, or a ValueError naming the limit it breaks."""
    if not paths:
        raise InvalidInput("choose one or more files to add")
    if len(paths) > MAX_UPLOAD_FILES:
        raise InvalidInput(f"{len(paths)} files chosen; at most {MAX_UPLOAD_FILES} can be added at a time")
    checked = []
    for raw in paths:
        path = Path(raw)
        name = safe_upload_name(path.name)
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise InvalidInput(f"{name} is {size / 1024 / 1024:.1f} MB; the limit is {MAX_UPLOAD_MB} MB per file")
        checked.append((path, name))
    return checked


# ------------------------------------------------------------------ the service


class QueuedResponse:
    """The :class:`rag.answering.Response` of an answer worked out in another thread: iterate it
    for the text pieces as they arrive, then call :meth:`answer`; the thread's error, if any,
    is raised here."""

    def __init__(self, question: str, items: queue.Queue[object]) -> None:
        self.question = question  # as searched: a follow-up rewritten to stand alone
        self._items = items
        self._answer: Answer | None = None
        self._done = False

    def __iter__(self) -> Iterator[str]:
        while not self._done:
            item = self._items.get()
            if item is _DONE:
                self._done = True
            elif isinstance(item, _Failed):
                self._done = True
                raise item.error
            elif isinstance(item, Answer):
                self._answer = item
            else:
                yield cast(str, item)  # the worker puts text pieces, then the Answer

    def answer(self) -> Answer:
        for _ in self:
            pass
        if self._answer is None:
            raise RuntimeError("the assistant finished without an answer")
        return self._answer


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_DONE = object()


DEFAULT_CONCURRENCY = defaults.CONCURRENCY


class ReadWriteLock:
    """Many readers or one writer; a waiting writer goes before readers that come after it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writer and not self._readers)
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


# A service runs a llama.cpp model in a supervised process of its own (rag/engine.py).
SERVICE_SETTINGS = GenerationSettings(process=True)


@dataclass
class ChatService:
    """The app's work without Gradio: answer, list, add and remove documents, record feedback.

    Any number of sessions can call it. Answers read the index together, and adding or
    removing documents waits for them (and they for it). A local model answers one question at
    a time (its threads already use every core); a model on a server (``openai:``) answers up
    to ``concurrency`` at once. Each model is loaded once, on first use, and kept. By default
    (``settings.process``) a llama.cpp model runs in a supervised process of its own
    (:mod:`rag.engine`): if it crashes, the question it was answering gets an error, the model
    restarts, and the service and its index carry on.
    """

    index: Index  # the first collection's (``collection``): the one a request that names none gets
    model: str = DEFAULT_MODEL
    k: int = DEFAULT_K
    mode: Mode = "hybrid"
    settings: GenerationSettings = SERVICE_SETTINGS
    assistants: dict[str, Assistant] = field(default_factory=dict)  # per model, over ``index``
    upload_dir: Path | None = None
    concurrency: int = DEFAULT_CONCURRENCY  # questions at once for a model on a server
    collection: str = DEFAULT_COLLECTION  # the name of ``index``
    more: dict[str, Index] = field(default_factory=dict)  # the other collections served, by name
    keys: Keys = field(default_factory=Keys)  # which key opens which collection (rag.collections)

    def __post_init__(self) -> None:
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise InvalidInput(f"concurrency must be >= 1, got {self.concurrency}")
        self.indexes = {self.collection: self.index, **self.more}
        self._index_locks = {name: ReadWriteLock() for name in self.indexes}  # changes wait for answers
        self._views: dict[tuple[str, str], Assistant] = {}  # (collection, model) -> the model's assistant
        self._local = threading.Lock()  # the in-process model: one answer at a time
        self._remote = threading.BoundedSemaphore(self.concurrency)
        self._setup = threading.Lock()
        self.check_settings(self.model, self.k, self.mode)

    def _model_slot(self, model: str) -> AbstractContextManager[Any]:
        """What an answer from ``model`` holds while it runs (the one place this is decided)."""
        return self._remote if is_remote(model) else self._local

    @classmethod
    def open(
        cls, index_dir: str | Path | None = None, model: str = DEFAULT_MODEL, k: int = DEFAULT_K,
        mode: Mode = "hybrid", settings: GenerationSettings | None = None, concurrency: int = DEFAULT_CONCURRENCY,
        store: str | None = None, collections: Sequence[str] = (), keys: Keys | None = None, create: bool = True,
    ) -> ChatService:
        """Open (or create) the index (``store`` as for :meth:`Index.open`); the model is loaded by
        :meth:`load` or the first question (in its own process unless ``settings`` say otherwise).

        With ``collections`` (names, :mod:`rag.collections`), serve those instead of ``index_dir``:
        the first answers requests that name none, and every one shares the one model. With
        ``create=False`` a missing index is an error (:class:`rag.index.IndexOpenError`)."""
        if not collections:
            return cls(Index.open(index_dir, store=store, create=create), model=model, k=k, mode=mode,
                       settings=settings or SERVICE_SETTINGS, concurrency=concurrency, keys=keys or Keys())
        opened = {name: Index.open(collection_dir(name), store=store, create=create and name == DEFAULT_COLLECTION)
                  for name in dict.fromkeys(collections)}
        first, *rest = opened
        return cls(opened[first], model=model, k=k, mode=mode, settings=settings or SERVICE_SETTINGS,
                   concurrency=concurrency, collection=first, more={n: opened[n] for n in rest}, keys=keys or Keys())

    def collections(self) -> list[str]:
        """The names of the collections served, the first being the one a request gets by default."""
        return list(self.indexes)

    def check_collection(self, collection: str | None) -> str:
        """``collection`` (default: the first) if this server serves it."""
        name = collection or self.collection
        if name not in self.indexes:
            raise InvalidInput(f"unknown collection '{name}'; this server offers {', '.join(self.indexes)}")
        return name

    def models(self) -> list[str]:
        """The models users may pick: the served one, any already set up, and the bundled ones."""
        return list(dict.fromkeys([self.model, *self.assistants, *BUNDLED]))

    def check_settings(self, model: str, k: int, mode: str) -> None:
        # subtle: the model list is closed, so a client cannot make the server load an
        # arbitrary file or call an arbitrary URL (paths and openai: URLs are valid model names).
        if model != self.model and model not in self.assistants and model not in BUNDLED:
            raise InvalidInput(f"unknown model '{model}'; this server offers {', '.join(self.models())}")
        check_k(k, most=MAX_K)
        check_mode(mode)

    def _assistant(self, model: str, collection: str | None = None) -> Assistant:
        """``model``'s assistant over ``collection``: each collection's shares the model's one
        generator, loaded once by the assistant over the first collection."""
        with self._setup:
            if model not in self.assistants:
                self.assistants[model] = Assistant(self.index, model=model, k=self.k, mode=self.mode, settings=self.settings)
            base = self.assistants[model]
        if collection is None or collection == self.collection:
            return base
        generator = base.load()
        with self._setup:
            if (collection, model) not in self._views:
                self._views[collection, model] = replace(base, index=self.indexes[collection], generator=generator)
            return self._views[collection, model]

    def load(self, model: str | None = None) -> dict[str, float]:
        """Load and warm ``model`` (default: the served one), the embedder and the search
        indexes now, so the first question does not wait; returns the seconds each part took."""
        model = model or self.model
        self.check_settings(model, self.k, self.mode)
        with self._model_slot(model), self._index_locks[self.collection].reading():
            return self._assistant(model).warm()

    def ready(self, model: str | None = None) -> bool:
        """Whether ``model`` (default: the served one) is loaded, so a question starts at once."""
        assistant = self.assistants.get(model or self.model)
        return assistant is not None and assistant.generator is not None

    def respond(
        self, question: str, model: str | None = None, k: int | None = None, mode: Mode | None = None,
        history: Sequence[Turn] = (), collection: str | None = None,
    ) -> QueuedResponse:
        """Like :meth:`Assistant.respond`, as many at once as the model allows (see the class):
        iterate the result for the text, then call its ``answer()``. With the conversation's
        earlier ``history``, a follow-up ("and when?") is answered as the standalone question it
        stands for (:func:`rag.conversation.resolve_followup`), kept in the result's ``question``.

        The work runs in its own thread, so its locks are released even if the caller stops
        reading (a browser tab closed mid-answer).
        """
        model, k, mode = model or self.model, k or self.k, mode or self.mode
        self.check_settings(model, k, mode)
        collection = self.check_collection(collection)
        question = resolve_followup(check_question(question), history)
        items: queue.Queue[object] = queue.Queue()

        def work() -> None:
            try:
                # the model slot first: a question waiting for it does not hold up index changes
                with self._model_slot(model), self._index_locks[collection].reading():
                    response = self._assistant(model, collection).respond(question, k=k, mode=mode)
                    for piece in response:
                        items.put(piece)
                    items.put(response.answer())
            except BaseException as e:  # noqa: BLE001 - handed to the reader, who re-raises it
                items.put(_Failed(e))
            finally:
                items.put(_DONE)

        threading.Thread(target=work, name="rag-answer", daemon=True).start()
        return QueuedResponse(question, items)

    def stream(
        self, question: str, model: str | None = None, k: int | None = None, mode: Mode | None = None,
        collection: str | None = None,
    ) -> Iterator[str | Answer]:
        """The text pieces of :meth:`respond`, then its :class:`Answer`."""
        response = self.respond(question, model, k, mode, collection=collection)
        yield from response
        yield response.answer()

    def ask(
        self, question: str, model: str | None = None, k: int | None = None, mode: Mode | None = None,
        collection: str | None = None,
    ) -> Answer:
        """The final :class:`Answer` of :meth:`respond`."""
        return self.respond(question, model, k, mode, collection=collection).answer()

    def search(self, query: str, k: int, mode: Mode, collection: str | None = None) -> list[Hit]:
        """The passages of ``collection`` that best match ``query`` (no model involved)."""
        collection = self.check_collection(collection)
        with self._index_locks[collection].reading():
            return self.indexes[collection].search(query, k=k, mode=mode)

    def document_rows(self, collection: str | None = None) -> list[list[Any]]:
        """``[id, title, date, chunks]`` for each document of ``collection``."""
        index = self.indexes[self.check_collection(collection)]
        counts: dict[str, int] = {}
        for chunk in index.chunks():
            counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
        return [[d.id, d.title, d.date or "", counts.get(d.id, 0)] for d in index.documents()]

    def upload_folder(self, collection: str | None = None) -> Path:
        """Where the chat window keeps a collection's uploads: ``uploads`` in the data directory
        (or ``upload_dir``) for the first collection, ``uploads-NAME`` beside it for the others."""
        base = self.upload_dir or data_dir() / "uploads"
        name = self.check_collection(collection)
        return (base if name == self.collection else base.with_name(f"{base.name}-{name}")).resolve()

    def add_files(self, paths: Sequence[str | Path], collection: str | None = None) -> str:
        """Copy uploads into the data directory and index them, as ``rag index`` would.

        Raises:
            ValueError: too many files, one too large, or of a type that cannot be indexed.
        """
        checked = check_uploads(paths)
        collection = self.check_collection(collection)
        folder = self.upload_folder(collection)
        folder.mkdir(parents=True, exist_ok=True)
        copies = []
        for src, name in checked:
            dest = (folder / name).resolve()
            if dest.parent != folder:  # safe_upload_name should make this impossible; never trust it alone
                raise InvalidInput(f"'{src.name}' would be written outside the upload folder")
            shutil.copyfile(src, dest)
            copies.append(dest)
        with self._index_locks[collection].writing():
            report = self.indexes[collection].add(copies)
        lines = [report.summary()]
        for skipped in report.skipped:
            Path(skipped.source).unlink(missing_ok=True)
            lines.append(f"skipped {Path(skipped.source).name}: {skipped.reason}")
        return "\n".join(lines)

    def rescan(self, collection: str | None = None) -> str:
        """Index the upload folder again, as ``rag index FOLDER --sync``: files added to it are
        indexed, changed ones updated, and documents whose file was deleted from it removed."""
        collection = self.check_collection(collection)
        folder = self.upload_folder(collection)
        folder.mkdir(parents=True, exist_ok=True)
        with self._index_locks[collection].writing():
            report = self.indexes[collection].add([folder], sync=True)
        return "\n".join([f"re-scanned {folder}: {report.summary()}"] + [f"skipped {s}" for s in report.skipped])

    def remove(self, doc_id: str, collection: str | None = None) -> str:
        """Delete a document from the index (and its uploaded copy, if it came from the app)."""
        if not doc_id:
            raise InvalidInput("choose a document to remove")
        collection = self.check_collection(collection)
        index = self.indexes[collection]
        with self._index_locks[collection].writing():
            index.remove(doc_id)
        folder = self.upload_folder(collection)
        for suffix in SUPPORTED_SUFFIXES:
            copy = (folder / f"{doc_id}{suffix}").resolve()
            if copy.parent == folder:
                copy.unlink(missing_ok=True)
        return f"removed {doc_id}; {len(index.documents())} documents left"


# ------------------------------------------------------------------ the Gradio app

CSS = """
.rag-sources { font-size: 0.95em; }
.rag-source, .rag-hit { border-left: 3px solid #c7d2fe; padding: 2px 10px; margin: 8px 0; }
.rag-passage { white-space: pre-wrap; margin: 4px 0; }
mark.rag-quote { background: #fde68a; color: inherit; padding: 0 1px; }
.rag-unsupported { text-decoration: underline wavy #dc2626; }
.rag-refusal { color: #92400e; }
.rag-conflict { border-left: 3px solid #d97706; padding-left: 8px; }
.rag-note, .rag-searched { color: #6b7280; font-size: 0.9em; }
sup.rag-cite { color: #4338ca; font-weight: 600; }
"""


LOGIN_HELP = ("This server is closed with keys: log in with a collection's name and its key, "
              "or any other name and the server's key.")


def import_gradio() -> Any:
    """Import Gradio with its telemetry off (it reads the setting at import)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError:
        raise ImportError("the chat window needs gradio: pip install gradio (or pip install -e .)") from None
    return gradio


def build_app(service: ChatService) -> gradio.Blocks:
    """The Gradio app. Its API endpoints: ``/answer`` (question, model, k, mode, collection ->
    the answer as ``rag ask --json`` data), ``/chat`` (what the chat box calls), ``/feedback``,
    ``/documents`` (collection), ``/add_documents`` and ``/remove_document``. A session reaches
    only the collections its login opens (:meth:`rag.collections.Keys.for_user`); every handler
    checks the collection it is given."""
    gr = import_gradio()

    def takes_request(fn: Any) -> Any:
        """Gradio hands the request (and so the logged-in name) to a parameter annotated
        ``gr.Request``, found with typing.get_type_hints; this module's annotations are strings
        (``from __future__ import annotations``) naming a module it imports lazily, so the one
        annotation Gradio needs is set as the object itself (the others resolved as they are)."""
        fn.__annotations__ = {**typing.get_type_hints(fn), "request": gr.Request}
        return fn

    def opened(request: Any) -> list[str]:
        """The collections this session may open (all on an open server)."""
        return service.keys.for_user(getattr(request, "username", None), service.collections())

    def allowed(collection: str | None, request: Any) -> str:
        """The collection a request names (default: the first it may open), if it may open it."""
        names = opened(request)
        name = collection or (names[0] if names else service.collection)
        if name not in names:  # the same words whether it exists or not
            raise gr.Error(f"No collection '{name}' here.")
        return name

    @takes_request
    def chat(
        question: str, shown: list[dict[str, str]], turns: list[Turn], model: str, k: float, mode: str,
        collection: str, request: Any = None,
    ) -> Iterator[tuple[Any, ...]]:  # the Gradio updates of the chat's outputs, in order
        asked = (question or "").strip()
        if not asked:
            raise gr.Error("Type a question first.")
        name = allowed(collection, request)
        shown = [*shown, {"role": "user", "content": escape_text(asked)}, {"role": "assistant", "content": "…"}]
        try:
            if not service.ready(model):
                # say so: loading a model takes seconds to a minute, longer on a busy machine
                loading = f"Loading the model {model}… the answer starts when it is ready."
                yield shown, shown, f'<div class="rag-sources"><p class="rag-note">{escape_text(loading)}</p></div>', \
                    turns, None, "", ""
                service.load(model)
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            raise gr.Error(str(e)) from None
        searching = '<div class="rag-sources"><p class="rag-note">Searching…</p></div>'
        yield shown, shown, searching, turns, None, "", ""
        text = ""
        try:
            response = service.respond(asked, model, int(k), check_mode(mode), history=turns, collection=name)
            searched = response.question
            for piece in response:
                text += piece
                shown[-1] = {"role": "assistant", "content": escape_text(text)}
                yield shown, shown, gr.skip(), turns, None, "", ""
            answer = response.answer()
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            raise gr.Error(str(e)) from None
        shown[-1] = {"role": "assistant", "content": render_answer(answer, searched if searched != asked else None)}
        turns = [*turns, Turn(searched, answer.text, answer.refused)]
        yield shown, shown, render_sources(answer), turns, (asked, answer), "", ""

    @takes_request
    def answer(question: str, model: str = "", k: int = 0, mode: str = "", collection: str = "",
               request: Any = None) -> dict[str, Any]:
        """Answer one question (no conversation) from ``collection`` (default: the first this
        session opens); returns the ``rag ask --json`` data."""
        name = allowed(collection, request)
        try:
            return service.ask(question, model or None, int(k) or None, check_mode(mode) if mode else None,
                               collection=name).to_dict()
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            raise gr.Error(str(e)) from None

    def feedback(rating: str, comment: str, last: tuple[str, Answer] | None) -> tuple[str, str]:
        if last is None:
            raise gr.Error("Ask a question first; feedback is about the last answer.")
        try:
            record_feedback(last[1], rating, comment, asked=last[0])
        except (ValueError, OSError) as e:
            raise gr.Error(str(e)) from None
        return f"Thanks: feedback ({rating}) saved for “{escape_text(last[0])}”.", ""

    @takes_request
    def documents(collection: str = "", request: Any = None) -> list[list[Any]]:
        return service.document_rows(allowed(collection, request))

    def doc_views(message: str, name: str) -> tuple[str, list[list[Any]], Any]:
        rows = service.document_rows(name)
        return escape_text(message), rows, gr.update(choices=[r[0] for r in rows], value=None)

    @takes_request
    def start(request: Any = None) -> tuple[Any, ...]:
        """When the page opens: the collections this session may open, and the first one's documents."""
        names = opened(request)
        first = names[0] if names else service.collection
        return (gr.update(choices=names, value=first, visible=len(names) > 1), *doc_views("", first))

    @takes_request
    def switch(collection: str, request: Any = None) -> tuple[Any, ...]:
        """Another collection: its documents, and a new conversation."""
        return (*doc_views("", allowed(collection, request)), [], [], [], None, EMPTY_SOURCES)

    @takes_request
    def add(files: list[str] | None, collection: str, request: Any = None) -> tuple[str, list[list[Any]], Any, None]:
        name = allowed(collection, request)
        try:
            message = service.add_files(files or [], name)
        except (ValueError, OSError) as e:
            raise gr.Error(str(e)) from None
        return (*doc_views(message, name), None)

    @takes_request
    def rescan(collection: str, request: Any = None) -> tuple[str, list[list[Any]], Any]:
        name = allowed(collection, request)
        try:
            return doc_views(service.rescan(name), name)
        except OSError as e:
            raise gr.Error(str(e)) from None

    @takes_request
    def remove(doc_id: str | None, collection: str, request: Any = None) -> tuple[str, list[list[Any]], Any]:
        name = allowed(collection, request)
        try:
            return doc_views(service.remove(doc_id or "", name), name)
        except (ValueError, KeyError) as e:
            raise gr.Error(str(e.args[0] if isinstance(e, KeyError) else e)) from None

    def load_model(model: str) -> Iterator[str]:
        if service.ready(model):
            yield f"{escape_text(model)} is loaded."
            return
        yield f"Loading {escape_text(model)}…"
        try:
            timings = service.load(model)
        except (ValueError, OSError, RuntimeError) as e:
            raise gr.Error(str(e)) from None
        yield f"{escape_text(model)} is loaded ({sum(timings.values()):.1f} s)."

    with gr.Blocks(title="rag: answers from your articles", analytics_enabled=False) as app:
        shown = gr.State([])
        turns = gr.State([])
        last = gr.State(None)
        with gr.Row(equal_height=True):
            gr.Markdown("## Answers from your articles, with sources you can check", elem_id="rag-title")
            # Filled when the page loads, with the collections this session may open (app.load).
            collection = gr.Dropdown([], value="", label="Collection", elem_id="rag-collection", allow_custom_value=True,
                                     visible=len(service.collections()) > 1, scale=0, min_width=220)
        with gr.Tab("Ask"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Chat", elem_id="rag-chat", height=480, sanitize_html=True, allow_tags=False,
                        latex_delimiters=[], feedback_options=None, buttons=["copy"],
                    )
                    with gr.Row():
                        question = gr.Textbox(
                            placeholder="Ask a question about the articles…", show_label=False, scale=5,
                            elem_id="rag-question", max_length=MAX_QUESTION_CHARS, submit_btn=False,
                        )
                        ask = gr.Button("Ask", variant="primary", scale=1, elem_id="rag-ask")
                    with gr.Row():
                        # ✓ and ✗ are in DejaVu, which every Chromium install has; 👍/👎 need a
                        # colour-emoji font and showed as empty boxes without one.
                        up = gr.Button("✓ Good answer", size="sm", elem_id="rag-up")
                        down = gr.Button("✗ Bad answer", size="sm", elem_id="rag-down")
                        new = gr.Button("New conversation", size="sm")
                    comment = gr.Textbox(
                        label="Comment on the last answer (optional)", max_length=MAX_COMMENT_CHARS, lines=1,
                    )
                    status = gr.Markdown(elem_id="rag-status")
                with gr.Column(scale=2):
                    sources = gr.HTML(EMPTY_SOURCES, elem_id="rag-sources", js_on_load=None)
            with gr.Accordion("Settings", open=False):
                with gr.Row():
                    model = gr.Dropdown(service.models(), value=service.model, label="Model")
                    k = gr.Slider(1, MAX_K, value=service.k, step=1, label="Passages to retrieve")
                    mode = gr.Radio(list(MODES), value=service.mode, label="Retrieval mode")
        with gr.Tab("Documents"):
            table = gr.Dataframe(
                value=None, headers=["id", "title", "date", "chunks"], interactive=False,
                label="Indexed documents", elem_id="rag-docs",
            )
            with gr.Row():
                with gr.Column():
                    files = gr.File(
                        label=f"Add files. {UPLOAD_LIMITS}", file_count="multiple",
                        file_types=sorted(SUPPORTED_SUFFIXES),
                    )
                    add_button = gr.Button("Add to the index", variant="primary")
                    rescan_button = gr.Button("Re-scan the upload folder", size="sm")
                with gr.Column():
                    # Filled when the page loads (app.load below), not at build: Gradio puts a
                    # component's build-time choices in the API description it serves before login.
                    doc_id = gr.Dropdown([], value=None, label="Document", allow_custom_value=False)
                    remove_button = gr.Button("Remove from the index", variant="stop")
            doc_status = gr.Markdown(elem_id="rag-doc-status")

        # Gradio runs this many answers at once; the service's own locks still hold a local model to one
        model_queue = {"concurrency_limit": service.concurrency if is_remote(service.model) else 1, "concurrency_id": "model"}
        gr.on(
            [question.submit, ask.click], chat, inputs=[question, shown, turns, model, k, mode, collection],
            outputs=[chatbot, shown, sources, turns, last, question, status], api_name="chat", **model_queue,
        )
        gr.api(answer, api_name="answer", **model_queue)
        up.click(lambda comment_text, answered: feedback("up", comment_text, answered), [comment, last], [status, comment], api_name="feedback_up")
        down.click(lambda comment_text, answered: feedback("down", comment_text, answered), [comment, last], [status, comment], api_name="feedback_down")
        new.click(
            lambda: ([], [], [], None, EMPTY_SOURCES, ""), outputs=[chatbot, shown, turns, last, sources, status],
            api_visibility="private",
        )
        chatbot.clear(
            lambda: ([], [], None, EMPTY_SOURCES), outputs=[shown, turns, last, sources], api_visibility="private"
        )
        # Its own queue: a question asked meanwhile runs and says that the model is loading
        # (ChatService's lock makes it wait for the load).
        model.change(load_model, model, status, api_name="load_model", concurrency_limit=1, concurrency_id="load")
        gr.api(documents, api_name="documents")
        app.load(start, None, [collection, doc_status, table, doc_id], api_visibility="private")
        collection.input(switch, collection, [doc_status, table, doc_id, chatbot, shown, turns, last, sources],
                         api_visibility="private")
        add_button.click(add, [files, collection], [doc_status, table, doc_id, files], api_name="add_documents", **model_queue)
        remove_button.click(remove, [doc_id, collection], [doc_status, table, doc_id], api_name="remove_document", **model_queue)
        rescan_button.click(rescan, collection, [doc_status, table, doc_id], api_name="rescan_uploads", **model_queue)
    return app


def theme(gr: Any) -> Any:
    """Gradio's default theme with its bundled Source Sans Pro at 400 and 700: its SemiBold (600)
    file is a 5 KB subset without "A" or "B", so bold text drew those letters in another font
    (the title's "A"); asked for 600, the browser now takes the complete Bold file."""
    font = gr.themes.LocalFont("Source Sans Pro", weights=(400, 700))
    return gr.themes.Default(font=[font, "ui-sans-serif", "system-ui", "sans-serif"])


def _key_check(service: ChatService) -> Any:
    """Gradio's login check (:meth:`rag.collections.Keys.login`: a collection's name and its key,
    or any other name and the server key; compared in constant time)."""

    def check(user: str, password: str) -> bool:
        return service.keys.login(user, password, service.collections())

    return check


def launch(
    service: ChatService, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, block: bool = True,
    api_key: str | None = None,
) -> tuple[gradio.Blocks, str]:
    """Serve the app at ``http://host:port`` (no share link, no telemetry), the OpenAI-compatible
    API at ``/v1`` beside it (:mod:`rag.api`) and MCP at ``/mcp`` (:mod:`rag.mcp_server`, when the
    ``mcp`` SDK is installed); returns the app and its URL.

    With keys (``service.keys``; ``api_key`` is short for a server key) everything the server
    offers is closed without one: the chat window asks for it on a login page (a collection's
    name and its key, or any other name and the server key; ``gradio_client`` passes it as
    ``auth=(name, key)``), so do Gradio's own endpoints (answers, documents, uploads), and
    ``/v1`` and ``/mcp`` take it as a Bearer token. Each sees only the collections its key opens.

    With ``block=False`` it returns at once (tests); call ``app.close()`` to stop it.
    """
    from rag.api import mount

    if api_key:
        service.keys = Keys(api_key, service.keys.collections)
    gr = import_gradio()
    app = build_app(service)
    app.queue(max_size=64)
    app.launch(
        server_name=host, server_port=port, share=False, prevent_thread_lock=True,
        max_file_size=f"{MAX_UPLOAD_MB}mb", footer_links=["api"], run_history=False, ssr_mode=False,
        mcp_server=False, enable_monitoring=False, show_error=True, quiet=not block, css=CSS,
        theme=theme(gr), auth=_key_check(service) if service.keys.closed else None,
        auth_message=LOGIN_HELP,
    )
    mount(app.server_app, service)
    if importlib.util.find_spec("mcp") is not None:  # the MCP SDK is optional for the chat window
        from rag.mcp_server import HttpEndpoint

        # an ASGI app as a route's endpoint: Starlette hands it the request as is (typed for functions only)
        app.server_app.add_route("/mcp", HttpEndpoint(service, host))  # type: ignore[arg-type]
    if block:
        app.block_thread()
    return app, app.local_url or f"http://{host}:{port}/"


__all__ = [
    "ChatService", "build_app", "launch", "import_gradio", "render_answer", "render_sources", "escape_text", "safe_upload_name",
    "check_uploads", "MAX_UPLOAD_FILES", "MAX_UPLOAD_MB",
]
