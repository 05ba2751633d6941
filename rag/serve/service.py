"""What the chat window and its APIs do, free of Gradio: :class:`ChatService`.

One or more collections (named indexes), each model loaded once and shared by all of them, one
question at a time (llama.cpp is not thread-safe), uploads checked and confined to the data
directory. The Gradio app (:mod:`rag.serve.app`), the OpenAI API (:mod:`rag.serve.api`) and MCP
(:mod:`rag.serve.mcp_server`) all sit on it.
"""

from __future__ import annotations

import queue
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from rag.answer.assistant import Answer, Assistant, check_question
from rag.answer.conversation import Turn, resolve_followup
from rag.answer.summary import Progress, Summary
from rag.core import defaults
from rag.core.bundled import BUNDLED, data_dir
from rag.core.errors import InvalidInput
from rag.core.types import Hit, Scope
from rag.generate.base import GenerationSettings
from rag.generate.registry import is_remote
from rag.ingest.loading import SUPPORTED_SUFFIXES
from rag.search.collections import DEFAULT as DEFAULT_COLLECTION
from rag.search.collections import Keys, collection_dir
from rag.search.index import Index
from rag.search.retrieval import Mode, check_k, check_mode

MAX_UPLOAD_FILES = 20
MAX_UPLOAD_MB = 20
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
UPLOAD_LIMITS = (
    f"At most {MAX_UPLOAD_FILES} files at a time, {MAX_UPLOAD_MB} MB each: "
    + " ".join(sorted(SUPPORTED_SUFFIXES))
)


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
    """The :class:`rag.answer.assistant.Response` of an answer worked out in another thread: iterate it
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


# A service runs a llama.cpp model in a supervised process of its own (rag/generate/process.py).
SERVICE_SETTINGS = GenerationSettings(process=True)


@dataclass
class ChatService:
    """The app's work without Gradio: answer, list, add and remove documents, record feedback.

    Any number of sessions can call it. Answers read the index together, and adding or
    removing documents waits for them (and they for it). A local model answers one question at
    a time (its threads already use every core); a model on a server (``openai:``) answers up
    to ``concurrency`` at once. Each model is loaded once, on first use, and kept. By default
    (``settings.process``) a llama.cpp model runs in a supervised process of its own
    (:mod:`rag.generate.process`): if it crashes, the question it was answering gets an error, the model
    restarts, and the service and its index carry on.
    """

    index: Index  # the first collection's (``collection``): the one a request that names none gets
    model: str = defaults.MODEL
    k: int = defaults.K
    mode: Mode = defaults.MODE
    settings: GenerationSettings = SERVICE_SETTINGS
    assistants: dict[str, Assistant] = field(default_factory=dict)  # per model, over ``index``
    upload_dir: Path | None = None
    concurrency: int = defaults.CONCURRENCY  # questions at once for a model on a server
    collection: str = DEFAULT_COLLECTION  # the name of ``index``
    more: dict[str, Index] = field(default_factory=dict)  # the other collections served, by name
    keys: Keys = field(default_factory=Keys)  # which key opens which collection (rag.search.collections)

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
        cls, index_dir: str | Path | None = None, model: str = defaults.MODEL, k: int = defaults.K,
        mode: Mode = defaults.MODE, settings: GenerationSettings | None = None, concurrency: int = defaults.CONCURRENCY,
        store: str | None = None, collections: Sequence[str] = (), keys: Keys | None = None, create: bool = True,
    ) -> ChatService:
        """Open (or create) the index (``store`` as for :meth:`Index.open`); the model is loaded by
        :meth:`load` or the first question (in its own process unless ``settings`` say otherwise).

        With ``collections`` (names, :mod:`rag.search.collections`), serve those instead of ``index_dir``:
        the first answers requests that name none, and every one shares the one model. With
        ``create=False`` a missing index is an error (:class:`rag.search.index.IndexOpenError`)."""
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
        check_k(k, most=defaults.MAX_K)
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
        history: Sequence[Turn] = (), collection: str | None = None, scope: Scope | None = None,
    ) -> QueuedResponse:
        """Like :meth:`Assistant.respond`, as many at once as the model allows (see the class):
        iterate the result for the text, then call its ``answer()``. With the conversation's
        earlier ``history``, a follow-up ("and when?") is answered as the standalone question it
        stands for (:func:`rag.answer.conversation.resolve_followup`), kept in the result's ``question``.
        With a ``scope``, only passages of its documents and dates are searched; a document it
        names that the collection does not hold is an error now (NotFound), before any work.

        The work runs in its own thread, so its locks are released even if the caller stops
        reading (a browser tab closed mid-answer).
        """
        model, k, mode = model or self.model, k or self.k, mode or self.mode
        self.check_settings(model, k, mode)
        collection = self.check_collection(collection)
        question = resolve_followup(check_question(question), history)
        scope = self.indexes[collection].check_scope(scope)
        items: queue.Queue[object] = queue.Queue()

        def work() -> None:
            try:
                # the model slot first: a question waiting for it does not hold up index changes
                with self._model_slot(model), self._index_locks[collection].reading():
                    response = self._assistant(model, collection).respond(question, k=k, mode=mode, scope=scope)
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
        collection: str | None = None, scope: Scope | None = None,
    ) -> Iterator[str | Answer]:
        """The text pieces of :meth:`respond`, then its :class:`Answer`."""
        response = self.respond(question, model, k, mode, collection=collection, scope=scope)
        yield from response
        yield response.answer()

    def ask(
        self, question: str, model: str | None = None, k: int | None = None, mode: Mode | None = None,
        collection: str | None = None, scope: Scope | None = None,
    ) -> Answer:
        """The final :class:`Answer` of :meth:`respond`."""
        return self.respond(question, model, k, mode, collection=collection, scope=scope).answer()

    def summarize(self, doc_ids: Sequence[str], model: str | None = None, collection: str | None = None
                  ) -> Iterator[str | Progress | Summary]:
        """A summary of one document of ``collection``, or two compared (:meth:`Assistant.summarize_stream`):
        the model's words as they come, progress after each part of a long document, then the
        :class:`~rag.answer.summary.Summary`. It queues for the model like a question."""
        model = model or self.model
        self.check_settings(model, self.k, self.mode)
        collection = self.check_collection(collection)
        for doc_id in doc_ids:
            self.indexes[collection].document(doc_id)  # an unknown id fails here, before the queue
        items: queue.Queue[object] = queue.Queue()

        def work() -> None:
            try:
                with self._model_slot(model), self._index_locks[collection].reading():
                    for item in self._assistant(model, collection).summarize_stream(*doc_ids):
                        items.put(item)
            except BaseException as e:  # noqa: BLE001 - handed to the reader, who re-raises it
                items.put(_Failed(e))
            finally:
                items.put(_DONE)

        threading.Thread(target=work, name="rag-summary", daemon=True).start()
        while (item := items.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield cast("str | Progress | Summary", item)

    def search(
        self, query: str, k: int, mode: Mode, collection: str | None = None, scope: Scope | None = None
    ) -> list[Hit]:
        """The passages of ``collection`` that best match ``query`` (no model involved), from the
        documents and dates of ``scope`` when given."""
        collection = self.check_collection(collection)
        with self._index_locks[collection].reading():
            return self.indexes[collection].search(query, k=k, mode=mode, scope=scope)

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
