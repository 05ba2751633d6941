"""The model engine in its own process: a crash in native code costs one answer, not the server.

llama.cpp is C++: a segfault in it (ggml-org/llama.cpp issue 20824 on AMX CPUs, see
:mod:`rag.generate.runtime`), an out-of-memory kill or the next native bug ends the process it runs
in. :class:`ModelProcess` runs the generator in a child process and speaks to it over a pipe;
it is itself a generator (``stream``, ``next_token_probabilities``, ``prime``), so the
:class:`~rag.answer.assistant.Assistant` uses it like the in-process one. The child keeps the model,
its KV cache (so the cached prompt prefix and the judge turns cost what they cost in-process)
and streams each token back as it is decoded.

When the child dies, the call that was running raises :class:`~rag.core.errors.GeneratorError`
("the model process stopped (signal 11: SIGSEGV); restarting it") and a new child is started
at once, primed with the same prompt prefix, for the next question. A call that runs past
``time_limit_s`` is cut off the same way. Nothing outside the child is touched: the index and
every other session live in the parent.

``rag serve`` runs its model this way (:class:`~rag.serve.service.ChatService`); a one-shot ``rag ask``
keeps it in-process (eval/README.md, "The model in its own process").

Example:
    >>> from rag.generate.base import GenerationSettings; from rag.generate.registry import load_generator
    >>> model = load_generator("qwen-1.5b", GenerationSettings(process=True, time_limit_s=120))  # doctest: +SKIP
    >>> "".join(model.stream([{"role": "user", "content": "Say hi."}]))                        # doctest: +SKIP
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from rag.core.errors import GeneratorError, InvalidInput, RagError
from rag.core.types import Message

# What builds the generator in the child: a module-level function and its arguments, pickled to
# the child. The child is a fresh interpreter (``python -m rag.generate.process FD``): no copy of the
# parent's threads, locks or loaded libraries, and, unlike multiprocessing's "spawn", no
# re-import of the parent's main script, so any program may hold a ModelProcess.
Factory = tuple[Callable[..., Any], tuple[Any, ...]]

# Messages. Parent -> child: (CALL, method, args) and, during a stream, (CANCEL,).
# Child -> parent: (READY, name), (PIECE, text) while streaming, (DONE, result), (ERROR, kind, text).
CALL, CANCEL, READY, PIECE, DONE, ERROR = "call", "cancel", "ready", "piece", "done", "error"


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
        self.restart = True  # start a new child when one dies (a one-off check turns this off)
        self._factory = factory
        self._prefix: list[Message] | None = None  # primed again in every new child
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Any = None
        self._ready = False  # the child has loaded the model and said so
        self._busy = False  # a call was sent and its DONE or ERROR has not come back yet
        self._start()

    # ------------------------------------------------------------------ the generator interface

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        """The reply to ``messages``, piece by piece as the child decodes it."""
        with self._lock:
            deadline = self._deadline()
            self._send((CALL, "stream", (messages, max_tokens)), deadline)
            try:
                while True:
                    kind, value = self._receive(deadline)
                    if kind == DONE:
                        self.stats = value
                        self.threads = getattr(value, "threads", 0)
                        return
                    yield value
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
        with self._lock:
            self._stop()

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown: nothing left to report to
            pass

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-m", "rag.generate.process", str(theirs.fileno())], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
        )
        theirs.close()  # subtle: only the child holds its end now, so its death reads as EOF here
        conn = Connection(ours.detach())
        # where the factory's module is found, before the factory itself is unpickled
        conn.send(list(sys.path))
        conn.send((self._factory, self._prefix))
        self._process, self._conn, self._ready, self._busy = process, conn, False, False

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
            deadline = self._deadline()
            self._send((CALL, method, args), deadline)
            kind, value = self._receive(deadline)
            if kind != DONE:
                raise GeneratorError(f"the model process answered '{kind}' to {method}")
            return value

    def _deadline(self) -> float | None:
        return None if self.time_limit_s is None else time.monotonic() + self.time_limit_s

    def _send(self, message: tuple[Any, ...], deadline: float | None) -> None:
        if self._process is None:
            self._start()
        if not self._ready:
            self._receive(deadline)  # READY, or an error raised by _receive
            self._ready = True
        try:
            self._conn.send(message)
        except OSError:  # the pipe broke: the child is gone
            self._died("while a request was sent")
        self._busy = True

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
            while self._receive(deadline)[0] != DONE:
                pass
        except RagError:
            pass  # it died or ran out of time meanwhile: already restarted

    def _died(self, when: str) -> NoReturn:
        assert self._process is not None
        try:
            code: int | None = self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # it closed its end but lives on: stop it
            code = None
        started = self._ready
        self._stop()
        if code is not None and code < 0:
            why = f"signal {-code}: {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"signal {-code}"
        else:
            why = f"exit code {code}"
        if started and self.restart:
            # Restart now, so the model is loading (and primed) before the next question comes.
            self.restarts += 1
            self._start()
            raise GeneratorError(f"the model process stopped ({why}) {when}; restarting it")
        raise GeneratorError(f"the model process stopped ({why}) {when}")

    def _overdue(self) -> NoReturn:
        self._stop()
        self.restarts += 1
        self._start()
        raise GeneratorError(f"the model took longer than {self.time_limit_s:g} s and was stopped; restarting it")


def _error(kind: str, text: str) -> Exception:
    """The child's error as the parent raises it: the user's mistake, a model error, or a bug."""
    if kind == "input":
        return InvalidInput(text)
    if kind == "model":
        return GeneratorError(text)
    return RuntimeError(f"the model process failed:\n{text}")


def _child_main(conn: Connection) -> None:
    """The child: build the generator, prime it, then answer calls until the parent goes."""
    # Ctrl-C in the terminal reaches the whole process group: the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.path[:] = conn.recv()
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
    _child_main(Connection(int(sys.argv[1])))
