"""The model engine in its own process: a crash in native code costs one answer, not the server.

llama.cpp is C++: a segfault in it (ggml-org/llama.cpp issue 20824 on AMX CPUs, see
:mod:`rag.generate.runtime`), an out-of-memory kill or the next native bug ends the process it runs
in. :class:`ModelProcess` runs the generator in a child process and speaks to it over a pipe;
it is itself a generator (``stream``, ``next_token_probabilities``, ``prime``), so the
:class:`~rag.answer.assistant.Assistant` uses it like the in-process one. The child keeps the model,
its KV cache (so the cached prompt prefix and the judge turns cost what they cost in-process)
and streams each token back as it is decoded.

A watcher thread waits on each child, so a death is noticed when it happens, not when the next
question is written to a dead pipe: a new child is started and primed at once, the server log says
why the old one stopped and how long the new one took, and a question that arrives meanwhile waits
for it. A call the child dies in before it sent anything back (no token of an answer yet, a judge
turn) is sent again, once, to the new child, so the caller never sees that death. Only an answer
that was already streaming fails, with :class:`~rag.core.errors.GeneratorError` ("the model process
stopped (signal 11: SIGSEGV) during the answer; restarting it"). A call that runs past
``time_limit_s`` is cut off the same way. A child that keeps dying (``CRASH_LOOP`` deaths within
``CRASH_WINDOW_S``) is not restarted in a loop: calls fail at once with "the model process keeps
crashing: ..." until ``CRASH_WINDOW_S`` has passed since the last death, when one more child is
tried. Nothing outside the child is touched: the index and every other session live in the parent.

``rag serve`` runs its model this way (:class:`~rag.serve.service.ChatService`); a one-shot ``rag ask``
keeps it in-process (eval/README.md, "The model in its own process").

Example:
    >>> from rag.generate.base import GenerationSettings; from rag.generate.registry import load_generator
    >>> model = load_generator("qwen-1.5b", GenerationSettings(process=True, time_limit_s=120))  # doctest: +SKIP
    >>> "".join(model.stream([{"role": "user", "content": "Say hi."}]))                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from rag.core.child import connect, describe_exit, spawn
from rag.core.errors import GeneratorError, InvalidInput, RagError
from rag.core.types import Message

# What builds the generator in the child: a module-level function and its arguments, pickled to
# the child, a fresh interpreter (``python -m rag.generate.process FD``, :func:`rag.core.child.spawn`).
Factory = tuple[Callable[..., Any], tuple[Any, ...]]

# Messages. Parent -> child: (CALL, method, args) and, during a stream, (CANCEL,).
# Child -> parent: (READY, name), (PIECE, text) while streaming, (DONE, result), (ERROR, kind, text).
CALL, CANCEL, READY, PIECE, DONE, ERROR = "call", "cancel", "ready", "piece", "done", "error"

# A child that dies this many times within this many seconds is not restarted until the window
# has passed since its last death: a model that crashes on load (a bad build, a CPU it cannot run
# on) would otherwise be restarted in a tight loop.
CRASH_LOOP = 3
CRASH_WINDOW_S = 60.0

log = logging.getLogger(__name__)


class ProcessDied(GeneratorError):
    """The child stopped without being asked to (``restarted``: a new one is already starting)."""

    def __init__(self, message: str, restarted: bool) -> None:
        super().__init__(message)
        self.restarted = restarted


class ModelProcess:
    """A generator run by a supervised child process (see the module docstring).

    ``factory`` builds the generator in the child; it must offer ``stream``, and for the
    matching calls ``next_token_probabilities`` and ``prime`` (the llama.cpp generator has all
    three). One call runs at a time; others wait for it.
    """

    def __init__(self, factory: Factory, name: str, time_limit_s: float | None = None) -> None:
        if time_limit_s is not None and time_limit_s <= 0:
            raise InvalidInput(f"the model's time limit must be > 0 seconds, got {time_limit_s}")
        self.name = name
        self.time_limit_s = time_limit_s
        self.stats: Any = None  # the last stream's GenerationStats, as the child reported them
        self.threads = 0
        self.restarts = 0  # children started after the first one
        self.retries = 0  # calls sent again to a new child after the last one died before answering
        self.restart = True  # start a new child when one dies (a one-off check turns this off)
        self.crash_loop = CRASH_LOOP  # this many deaths within CRASH_WINDOW_S stop the restarts
        self._factory = factory
        self._prefix: list[Message] | None = None  # primed again in every new child
        self._lock = threading.Lock()
        self._closing = threading.Event()  # close() is waiting: a watcher stops waiting for a new child
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Any = None
        self._ready = False  # the child has loaded the model and said so
        self._busy = False  # a call was sent and its DONE or ERROR has not come back yet
        self._started_at = 0.0  # when the current child was started (monotonic)
        self._deaths: deque[float] = deque()  # when the last children died (monotonic)
        self._crashing = ""  # why no child is started now (a crash loop), or ""
        self._start()

    # ------------------------------------------------------------------ the generator interface

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        """The reply to ``messages``, piece by piece as the child decodes it."""
        with self._lock:
            for attempt in (1, 2):
                deadline = self._deadline()
                sent_any = False
                try:
                    self._send((CALL, "stream", (messages, max_tokens)), deadline)
                    while True:
                        kind, value = self._receive(deadline)
                        if kind == DONE:
                            self.stats = value
                            self.threads = getattr(value, "threads", 0)
                            return
                        sent_any = True
                        yield value
                except ProcessDied as e:
                    if sent_any or not self._may_retry(e, attempt):
                        raise
                finally:
                    if self._busy:
                        self._cancel(deadline)  # the reader stopped early: stop the child too

    def next_token_probabilities(self, messages: list[Message], candidates: Sequence[str]) -> list[float]:
        """For each candidate, the probability that the reply to ``messages`` starts with its first token."""
        result: list[float] = self._call("next_token_probabilities", (messages, tuple(candidates)))
        return result

    def prime(self, messages: list[Message]) -> bool:
        """Put ``messages`` in the child's KV cache (see ``LlamaCppGenerator.prime``); every
        child started later primes them before its first call."""
        self._prefix = list(messages)
        restored: bool = self._call("prime", (self._prefix,))
        return restored

    # ------------------------------------------------------------------ the child's life

    @property
    def pid(self) -> int | None:
        """The child's process id (None while none runs)."""
        return self._process.pid if self._process is not None else None

    def close(self) -> None:
        """Stop the child (a later call starts a new one)."""
        self._closing.set()  # a watcher priming a new child lets go of the lock
        try:
            with self._lock:
                self._stop()
        finally:
            self._closing.clear()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the child has loaded the model (and primed the prefix); False on a timeout,
        a child that failed to start, or none running."""
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            if self._process is None:
                return False
            self._await_ready(None if timeout is None else time.monotonic() + timeout)
            return True
        except RagError:
            return False
        finally:
            self._lock.release()

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown: nothing left to report to
            pass

    def _start(self) -> None:
        process, conn = spawn("rag.generate.process")
        conn.send((self._factory, self._prefix))
        self._process, self._conn, self._ready, self._busy = process, conn, False, False
        self._started_at = time.monotonic()
        # A weak reference: the watcher must not keep a dropped ModelProcess (and its child) alive.
        threading.Thread(target=_watch, args=(weakref.ref(self), process), name=f"rag-model-watch-{process.pid}", daemon=True).start()

    def _stop(self) -> None:
        process, conn = self._process, self._conn
        self._process, self._conn, self._ready, self._busy = None, None, False, False
        if conn is not None:
            conn.close()
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)

    def _call(self, method: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            for attempt in (1, 2):
                deadline = self._deadline()
                try:
                    self._send((CALL, method, args), deadline)
                    kind, value = self._receive(deadline)
                except ProcessDied as e:
                    if not self._may_retry(e, attempt):
                        raise
                    continue
                if kind != DONE:
                    raise GeneratorError(f"the model process answered '{kind}' to {method}")
                return value
            raise AssertionError("unreachable: the second attempt returns or raises")

    def _may_retry(self, died: ProcessDied, attempt: int) -> bool:
        """Whether a call the child died in before answering goes to the new child (once)."""
        if attempt > 1 or not died.restarted:
            return False
        self.retries += 1
        log.warning("%s; the question is sent again to the new model process", died)
        return True

    def _deadline(self) -> float | None:
        return None if self.time_limit_s is None else time.monotonic() + self.time_limit_s

    def _send(self, message: tuple[Any, ...], deadline: float | None) -> None:
        if self._process is None:
            if self._crashing:
                wait = CRASH_WINDOW_S - (time.monotonic() - self._deaths[-1])
                if wait > 0:
                    raise GeneratorError(f"{self._crashing}; it will be tried again in {wait:.0f} s")
                self._crashing = ""
            self._start()
        self._await_ready(deadline)
        try:
            self._conn.send(message)
        except OSError:  # the pipe broke: the child is gone
            self._died("while a request was sent")
        self._busy = True

    def _await_ready(self, deadline: float | None) -> None:
        """Wait for the child's READY (it has loaded the model and primed the prefix)."""
        if self._ready:
            return
        # in short steps, so that close() is not kept waiting by a model that is still loading
        while not self._conn.poll(0.25):
            if self._closing.is_set():
                raise GeneratorError("the model process was stopped while it was loading")
            if deadline is not None and time.monotonic() >= deadline:
                break  # _receive raises the time limit
        self._receive(deadline)  # READY, or an error raised by _receive
        self._ready = True
        if self.restarts:
            log.warning("model process %s ready in %.1f s (restart %d)", self.pid, time.monotonic() - self._started_at, self.restarts)

    def _receive(self, deadline: float | None) -> tuple[str, Any]:
        """The child's next message; raises for an error it reports, for its death and past ``deadline``."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            if not self._conn.poll(timeout):
                self._overdue()
            message = self._conn.recv()
        except (EOFError, OSError):
            self._died("while it was loading" if not self._ready else "during the answer")
        if message[0] == ERROR:
            self._busy = False
            if not self._ready:  # the child could not start and has exited: start afresh next time
                self._stop()
            raise _error(message[1], message[2])
        if message[0] == DONE:
            self._busy = False
        return message[0], message[1]

    def _cancel(self, deadline: float | None) -> None:
        try:
            self._conn.send((CANCEL,))
            while True:
                kind, value = self._receive(deadline)
                if kind == DONE:
                    self.stats = value  # what the stopped reply cost, as far as it went
                    return
        except RagError:
            pass  # it died or ran out of time meanwhile: already restarted

    def _died(self, when: str) -> NoReturn:
        """The child stopped on its own while a call was using it: restart it (unless it keeps
        crashing) and raise :class:`ProcessDied`."""
        assert self._process is not None
        try:
            code: int | None = self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # it closed its end but lives on: stop it
            code = None
        restarted = self._after_death(code, when)
        why = describe_exit(code)
        if restarted:
            raise ProcessDied(f"the model process stopped ({why}) {when}; restarting it", restarted=True)
        raise ProcessDied(self._crashing or f"the model process stopped ({why}) {when}", restarted=False)

    def _after_death(self, code: int | None, when: str) -> bool:
        """Stop what is left of a dead child, log it and start a new one unless it keeps crashing
        (or ``restart`` is off); whether a new one was started."""
        self._stop()
        now = time.monotonic()
        self._deaths.append(now)
        while len(self._deaths) > self.crash_loop:
            self._deaths.popleft()
        why = describe_exit(code)
        if len(self._deaths) == self.crash_loop and now - self._deaths[0] <= CRASH_WINDOW_S:
            self._crashing = (f"the model process keeps crashing: it stopped {self.crash_loop} times within "
                              f"{CRASH_WINDOW_S:g} s (last: {why} {when})")
            log.error("%s; not restarting it for %g s", self._crashing, CRASH_WINDOW_S)
            return False
        if not self.restart:
            log.warning("the model process stopped (%s) %s", why, when)
            return False
        # Restart now, so the model is loading (and primed) before the next question comes.
        self.restarts += 1
        self._start()
        log.warning("the model process stopped (%s) %s; restarting it as pid %s", why, when, self.pid)
        return True

    def _overdue(self) -> NoReturn:
        self._stop()
        self.restarts += 1
        self._start()
        raise GeneratorError(f"the model took longer than {self.time_limit_s:g} s and was stopped; restarting it")


def _watch(owner: weakref.ref[ModelProcess], process: subprocess.Popen[bytes]) -> None:
    """Wait for ``process`` to exit; if it died on its own while idle, restart it at once and wait
    until the new child is ready, holding the lock, so a question asked meanwhile waits for it."""
    code = process.wait()
    model = owner()
    if model is None:
        return
    with model._lock:
        if model._process is not process:
            return  # stopped on purpose, or a call already saw the death and restarted it
        if not model._after_death(code, "while idle" if model._ready else "while it was loading"):
            return
        try:
            model._await_ready(None)
        except RagError as e:  # the new child failed too (or close() stopped it): the next call says so
            if not model._closing.is_set():
                log.error("the restarted model process failed: %s", e)


def _error(kind: str, text: str) -> Exception:
    """The child's error as the parent raises it: the user's mistake, a model error, or a bug."""
    if kind == "input":
        return InvalidInput(text)
    if kind == "model":
        return GeneratorError(text)
    return RuntimeError(f"the model process failed:\n{text}")


def _child_main(conn: Connection) -> None:
    """The child: build the generator, prime it, then answer calls until the parent goes."""
    try:
        (function, args), prefix = conn.recv()
        generator = function(*args)
        if prefix is not None:
            generator.prime(prefix)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send((ERROR, *_describe(e)))
        return
    conn.send((READY, generator.name))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent closed the pipe or died
        if request[0] != CALL:
            continue  # a cancel that came after its stream had ended
        _, method, args = request
        try:
            if method == "stream":
                _stream(conn, generator, *args)
            else:
                conn.send((DONE, getattr(generator, method)(*args)))
        except (EOFError, OSError, BrokenPipeError):
            return
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
            conn.send((ERROR, *_describe(e)))


def _stream(conn: Any, generator: Any, messages: list[Message], max_tokens: int | None) -> None:
    pieces = generator.stream(messages, max_tokens)
    try:
        for piece in pieces:
            conn.send((PIECE, piece))
            if conn.poll():  # only a cancel can come while a stream runs
                conn.recv()
                break
    finally:
        pieces.close()  # the generator records its statistics when it stops
    conn.send((DONE, getattr(generator, "stats", None)))


def _describe(error: BaseException) -> tuple[str, str]:
    if isinstance(error, InvalidInput):
        return "input", str(error)
    if isinstance(error, RagError):
        return "model", str(error)
    return "bug", "".join(traceback.format_exception(error)).rstrip()


if __name__ == "__main__":
    _child_main(connect(sys.argv))
