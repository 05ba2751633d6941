"""Text generators: a prompt (or chat messages) in, streamed text out.

Three backends share one small interface, :class:`Generator`:

- ``llama-cpp`` (default): a GGUF file run by llama-cpp-python, e.g. the bundled Qwen models;
- ``transformers``: a local Hugging Face model directory (or GGUF through transformers);
- ``openai``: any OpenAI-compatible server (llama.cpp server, Ollama, vLLM) by base URL.

:func:`load_generator` picks one by name::

    qwen-1.5b | qwen-0.5b | PATH.gguf | hf:DIR | openai:URL#MODEL
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rag import defaults
from rag.cpu import CpuMeter, free_threads
from rag.errors import GeneratorError, InvalidInput
from rag.llamacpp import context_hook, guard
from rag.models import BUNDLED, data_dir, gguf_path

if TYPE_CHECKING:
    from rag.hidden import LayerTap

Message = dict[str, str]
DEFAULT_MODEL = "qwen-1.5b"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    """Runtime settings shared by every backend."""

    threads: int = defaults.THREADS
    # threads for prompt processing (llama.cpp's n_threads_batch); None: the same as ``threads``
    batch_threads: int | None = None
    # before each answer, use only the cores other processes leave free (rag/cpu.py); a
    # --threads given on the command line turns this off
    adapt_threads: bool = True
    context_size: int = defaults.CONTEXT_SIZE
    max_tokens: int = defaults.MAX_TOKENS
    temperature: float = 0.0
    # run a llama.cpp model in a supervised child process (rag/engine.py): a crash in native
    # code costs the answer it was writing, and the next question gets a restarted model
    process: bool = False
    # with ``process``: a call to the model (an answer, a judge turn) running longer is cut off
    time_limit_s: float | None = None
    # llama.cpp: the layers whose last-token hidden state each answer keeps, at the prompt's end
    # and at the answer's last token (GenerationStats.hidden), for the fitted verifier's probes
    # (rag/verifier.py); the assistant sets them from rag/verifier-probe.json
    hidden_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise InvalidInput(f"threads must be >= 1, got {self.threads}")
        if self.batch_threads is not None and self.batch_threads < 1:
            raise InvalidInput(f"batch threads must be >= 1, got {self.batch_threads}")
        if self.context_size < 256:
            raise InvalidInput(f"context size must be >= 256 tokens, got {self.context_size}")
        if self.max_tokens < 1:
            raise InvalidInput(f"max answer length must be >= 1 token, got {self.max_tokens}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise InvalidInput(f"the model's time limit must be > 0 seconds, got {self.time_limit_s}")


@runtime_checkable
class Generator(Protocol):
    """Anything that streams a completion for chat messages."""

    name: str

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        """Yield the reply to ``messages`` piece by piece."""
        ...


def _states(moment: str, rows: dict[int, Any]) -> dict[str, tuple[float, ...]]:
    """A tap's rows as GenerationStats.hidden keys them: ``{"prompt L18": (...), ...}``."""
    return {f"{moment} L{layer}": tuple(map(float, row)) for layer, row in rows.items()}


def as_messages(prompt: str | list[Message]) -> list[Message]:
    """A plain prompt becomes one user message (what the bundled models follow best)."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


@dataclass(frozen=True)
class GenerationStats:
    """What one reply cost and how sure the model was of it (backends that can tell).

    ``prompt_tokens`` counts the formatted prompt, ``cached_tokens`` the part of it reused
    from the previous call's KV cache (so ``prompt_tokens - cached_tokens`` were evaluated).
    ``token_logprobs`` has the log-probability of each generated token, ``first_choices``
    the most likely first tokens of the reply with their probabilities, ``threads`` the threads
    it ran on.
    """

    prompt_tokens: int
    cached_tokens: int
    tokens: tuple[str, ...] = ()
    token_logprobs: tuple[float, ...] = ()
    first_choices: tuple[tuple[str, float], ...] = ()
    threads: int = 0
    # with GenerationSettings.hidden_layers: the last token's hidden state at each of those layers
    # at the prompt's end and at the answer's last token, keyed "prompt L18", "answer L14"
    hidden: dict[str, tuple[float, ...]] = field(default_factory=dict)


@runtime_checkable
class Scorer(Protocol):
    """A generator that can read its next-token distribution: the judge of :mod:`rag.judging`."""

    def next_token_probabilities(self, messages: list[Message], candidates: Sequence[str]) -> list[float]:
        """For each candidate, the probability that the reply to ``messages`` starts with its first token."""
        ...


class LlamaCppGenerator:
    """A GGUF model run in-process by llama-cpp-python, decoded greedily by this class.

    The KV cache of the previous call is kept and only the tokens after the longest common
    prefix are evaluated, so the fixed instruction at the start of every prompt is paid for
    once, and a judge turn appended to an answer's conversation costs only its own tokens.
    The decoding loop is ours (not ``create_chat_completion``) so that each reply records its
    prompt token counts and the probability of every token it chose (:class:`GenerationStats`).
    """

    FIRST_CHOICES = 10

    def __init__(
        self, path: Path, settings: GenerationSettings = GenerationSettings(), name: str | None = None,
        meter: CpuMeter | None = None, tap: LayerTap | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise GeneratorError("the llama-cpp backend needs llama-cpp-python: pip install llama-cpp-python") from None
        if not path.is_file():
            raise InvalidInput(f"no GGUF file at {path}")
        self.name = name or path.name
        self.settings = settings
        guard()  # no llama.cpp AMX buffer on CPUs where it crashes (rag/llamacpp.py)
        # The tap this generator arms itself (hidden_layers); a caller's tap
        # (eval/verifier_collect.py) is armed by the caller.
        self._own_tap: LayerTap | None = None
        if tap is None and settings.hidden_layers:
            from rag.hidden import LayerTap

            tap = self._own_tap = LayerTap(settings.hidden_layers)
        try:
            with context_hook(tap.install if tap else None):  # hidden states for a probe (rag/hidden.py)
                self._llm = Llama(
                    model_path=str(path),
                    n_ctx=settings.context_size,
                    n_threads=settings.threads,
                    n_threads_batch=settings.batch_threads or settings.threads,
                    n_batch=512,
                    verbose=False,
                )
        except ValueError as e:  # llama-cpp-python's only error for a file it cannot load
            raise GeneratorError(f"cannot load the model {path}: {e} (not a GGUF model llama.cpp can read?)") from None
        self._formatter: Any = None
        self._token_ids: dict[str, int] = {}
        self.stats: GenerationStats | None = None
        self.threads = settings.threads
        self._meter = (meter or CpuMeter()) if settings.adapt_threads else None
        self._path = path

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        import codecs

        import llama_cpp
        import numpy as np

        llm = self._llm
        prompt = self._chat_tokens(messages)
        limit = max_tokens or self.settings.max_tokens
        if len(prompt) + limit > llm.n_ctx():
            raise GeneratorError(
                f"the prompt has {len(prompt)} tokens; with {limit} for the answer that exceeds the context of "
                f"{llm.n_ctx()} (--context-size)"
            )
        self._fit_threads()
        hidden: dict[str, tuple[float, ...]] = {}
        # With hidden_layers, the tap keeps each evaluation's last row at those layers (rag/hidden.py).
        recording: contextlib.AbstractContextManager[dict[int, Any]] = (
            self._own_tap.armed() if self._own_tap else contextlib.nullcontext({}))
        with recording as rows:
            cached = self._evaluate(prompt)
            hidden.update(_states("prompt", rows))
            rng = np.random.default_rng(0)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            pieces: list[str] = []
            logprobs: list[float] = []
            first: tuple[tuple[str, float], ...] = ()
            try:
                for _ in range(limit):
                    logp = self._logprobs()
                    if self.settings.temperature > 0:
                        p = np.exp(logp / self.settings.temperature)
                        token = int(rng.choice(len(p), p=p / p.sum()))
                    else:
                        token = int(np.argmax(logp))
                    if not first:
                        top = np.argpartition(-logp, self.FIRST_CHOICES)[: self.FIRST_CHOICES]
                        first = tuple(
                            (llm.detokenize([int(t)]).decode("utf-8", "replace"), float(np.exp(logp[t])))
                            for t in sorted(top, key=lambda t: -logp[t])
                        )
                    if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                        break
                    logprobs.append(float(logp[token]))
                    piece = decoder.decode(llm.detokenize([token]))
                    pieces.append(piece)
                    if piece:
                        yield piece
                    llm.eval([token])
                hidden.update(_states("answer", rows))  # the last evaluation's: the answer's last token
            finally:
                self.stats = GenerationStats(len(prompt), cached, tuple(pieces), tuple(logprobs), first, self.threads, hidden)

    def next_token_probabilities(self, messages: list[Message], candidates: Sequence[str]) -> list[float]:
        import numpy as np

        self._evaluate(self._chat_tokens(messages))
        probs = np.exp(self._logprobs())
        return [float(probs[self._first_token(c)]) for c in candidates]

    def prime(self, messages: list[Message]) -> bool:
        """Put ``messages`` (the fixed start of every prompt) in the KV cache, and say whether a
        state saved by an earlier process was used.

        Evaluating the bundled 1.5B's 228 prefix tokens takes seconds; its saved state (6.5 MB,
        keyed to the model file, the llama.cpp version, the context settings and the tokens)
        loads in milliseconds. A state that cannot be read or set is evaluated afresh; one that
        cannot be written is skipped.
        """
        tokens = self._chat_tokens(messages)
        path = self._state_path(tokens)
        if path.is_file() and self._restore_state(path, tokens):
            return True
        self._evaluate(tokens)
        self._save_state(path)
        return False

    def _state_path(self, tokens: list[int]) -> Path:
        import llama_cpp

        stat = self._path.stat()
        key = hashlib.sha256(
            json.dumps([self._path.name, stat.st_size, stat.st_mtime_ns, llama_cpp.__version__,
                        self._llm.n_ctx(), self._llm.n_batch, tokens]).encode()
        ).hexdigest()[:24]
        return data_dir() / "cache" / f"prefix-{key}.state"

    def _restore_state(self, path: Path, tokens: list[int]) -> bool:
        import ctypes

        import llama_cpp

        try:
            data = path.read_bytes()
        except OSError:
            return False
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_set_data(self._llm._ctx.ctx, buffer, len(data)) != len(data):
            self._llm.n_tokens = 0  # nothing cached: the next evaluation starts from scratch
            return False
        self._llm.input_ids[: len(tokens)] = tokens
        self._llm.n_tokens = len(tokens)
        return True

    def _save_state(self, path: Path) -> None:
        import ctypes

        import llama_cpp

        ctx = self._llm._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(ctx, buffer, size)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(ctypes.string_at(buffer, written))
            os.replace(partial, path)  # whole or absent, whatever process reads it
        except OSError:
            pass  # a read-only data directory: the next start evaluates the prefix again

    def _fit_threads(self) -> None:
        """Run this answer on the cores other processes leave free (:mod:`rag.cpu`)."""
        if self._meter is None:
            return
        threads = free_threads(self.settings.threads, self._meter.others())
        if threads != self.threads:
            self._llm._ctx.set_n_threads(threads, min(threads, self.settings.batch_threads or threads))
            self.threads = threads

    def _chat_tokens(self, messages: list[Message]) -> list[int]:
        """``messages`` in the model's chat template, tokenised as ``create_chat_completion`` does."""
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = self._llm
            self._formatter = Jinja2ChatFormatter(
                template=llm.metadata["tokenizer.chat_template"],
                eos_token=self._text(llm.token_eos()),
                bos_token=self._text(llm.token_bos()),
            )
        result = self._formatter(messages=messages)
        return self._llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)

    def _evaluate(self, tokens: list[int]) -> int:
        """Evaluate ``tokens`` after the longest prefix already in the KV cache; return that prefix's length."""
        llm = self._llm
        cached = 0
        for a, b in zip(llm._input_ids, tokens):
            if a != b:
                break
            cached += 1
        # subtle: at least one token is evaluated, so the logits belong to the end of ``tokens``.
        reused = min(cached, len(tokens) - 1)
        llm.n_tokens = reused
        llm.eval(tokens[reused:])
        return reused

    def _logprobs(self) -> Any:
        """Log-probabilities of the next token after the last evaluated one."""
        import numpy as np

        llm = self._llm
        logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).astype(np.float64)
        shifted = logits - logits.max()
        return shifted - np.log(np.exp(shifted).sum())

    def _text(self, token: int) -> str:
        return self._llm._model.token_get_text(token) if token >= 0 else ""

    def _first_token(self, text: str) -> int:
        if text not in self._token_ids:
            self._token_ids[text] = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)[0]
        return self._token_ids[text]


class TransformersGenerator:
    """A local Hugging Face model directory run with transformers (CPU or GPU)."""

    def __init__(self, path: Path, settings: GenerationSettings = GenerationSettings(), gguf_file: str | None = None) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise GeneratorError("the transformers backend needs transformers and torch") from None
        if not path.exists():
            raise InvalidInput(f"no model directory at {path}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        torch.set_num_threads(settings.threads)
        kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        self.name = f"hf:{path.name}{'/' + gguf_file if gguf_file else ''}"
        self.settings = settings
        self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, **kwargs)
        self._model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, **kwargs)
        self._model.eval()

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        from threading import Thread

        from transformers import TextIteratorStreamer

        inputs: Any  # a BatchEncoding, a dict of tensors (transformers types it as a union of return shapes)
        if self._tokenizer.chat_template:
            inputs = self._tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:
            inputs = self._tokenizer("\n\n".join(m["content"] for m in messages), return_tensors="pt")
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(
            **inputs,
            streamer=streamer,
            max_new_tokens=max_tokens or self.settings.max_tokens,
            do_sample=self.settings.temperature > 0,
            pad_token_id=self._tokenizer.eos_token_id,
        )
        if self.settings.temperature > 0:
            kwargs["temperature"] = self.settings.temperature
        thread = Thread(target=self._model.generate, kwargs=kwargs, daemon=True)
        thread.start()
        yield from (piece for piece in streamer if piece)
        thread.join()


class OpenAIGenerator:
    """Any OpenAI-compatible ``/v1/chat/completions`` server, streamed over server-sent events.

    The answer's token log-probabilities and the first token's top choices are asked for
    (``logprobs``, ``top_logprobs``), so the trust score and the judge work as with the in-process
    model (:meth:`next_token_probabilities` is one request of one token that repeats the answer's
    conversation; a server that caches prompt prefixes makes it cheap). A server that returns
    none, or refuses the fields, gets plain requests from then on and the word check alone
    decides; it is said once (``scores`` is then False).
    """

    TOP = 10  # top_logprobs asked for: the first token's choices, and the judge's candidates

    def __init__(self, base_url: str, model: str, settings: GenerationSettings = GenerationSettings(), timeout: float = 120) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"OpenAI base URL must start with http:// or https://, got '{base_url}'")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{self.base_url}#{model}"
        self.settings = settings
        self.timeout = timeout
        self.api_key = os.environ.get("OPENAI_API_KEY", "none")
        # A server that serves a bundled model's file under its bundled name (llama_cpp.server
        # --model_alias qwen-1.5b) is scored by that model's fitted verifier; the file's hash cannot
        # be checked over HTTP, so the name is the user's word for it (README, "Models").
        self.serves = model if model in BUNDLED else None
        self.scores: bool | None = None  # whether the server returns log-probabilities (None: not yet known)
        self.stats: GenerationStats | None = None

    def _post(self, body: dict[str, Any]) -> Any:
        """The open response to ``body``; with log-probabilities asked for unless the server
        refused them before (an HTTP 400 to them: asked once more without)."""
        def send(payload: dict[str, Any]) -> Any:
            request = urllib.request.Request(
                f"{self.base_url}/chat/completions", data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
            )
            return urllib.request.urlopen(request, timeout=self.timeout)

        try:
            if self.scores is False:
                return send(body)
            try:
                return send({**body, "logprobs": True, "top_logprobs": self.TOP})
            except urllib.error.HTTPError as e:
                if e.code != 400:
                    raise
                self._no_scores("it refused the logprobs fields")
                return send(body)
        except urllib.error.HTTPError as e:
            raise GeneratorError(f"{self.base_url} answered HTTP {e.code}: {e.read()[:200]!r}") from None
        except (urllib.error.URLError, OSError) as e:
            raise GeneratorError(f"cannot reach the OpenAI-compatible server at {self.base_url}: {e}") from None

    def _no_scores(self, why: str) -> None:
        if self.scores is not False:
            log.warning("the server at %s returns no token log-probabilities (%s): answers are checked by "
                        "their words alone, with no trust score", self.base_url, why)
        self.scores = False

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens or self.settings.max_tokens,
                "temperature": self.settings.temperature, "stream": True}
        self.stats = None
        pieces: list[str] = []
        entries: list[dict[str, Any]] = []  # the logprobs of each generated token, as the server sent them
        with self._post(body) as response:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                choice = (json.loads(data).get("choices") or [{}])[0]
                entries.extend(((choice.get("logprobs") or {}).get("content")) or [])
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    pieces.append(piece)
                    yield piece
        if entries:
            self.scores = True
            first = tuple((str(t.get("token", "")), math.exp(float(t["logprob"]))) for t in entries[0].get("top_logprobs") or [])
            self.stats = GenerationStats(0, 0, tuple(str(e.get("token", "")) for e in entries),
                                         tuple(float(e["logprob"]) for e in entries), first)
        elif pieces and self.scores is None:
            self._no_scores("none came with the answer")

    def next_token_probabilities(self, messages: list[Message], candidates: Sequence[str]) -> list[float]:
        """From the top log-probabilities of a one-token reply: each candidate's probability (0 when
        it is not among them). Raises :class:`ScoresUnavailable` when the server gives none."""
        if self.scores is False:
            raise ScoresUnavailable(self.base_url)
        body = {"model": self.model, "messages": messages, "max_tokens": 1, "temperature": 0.0, "stream": False}
        with self._post(body) as response:
            reply = json.loads(response.read())
        content = (((reply.get("choices") or [{}])[0].get("logprobs")) or {}).get("content") or []
        if not content:
            self._no_scores("none came with the judge's reply")
            raise ScoresUnavailable(self.base_url)
        top: dict[str, float] = {}
        for t in content[0].get("top_logprobs") or []:
            top.setdefault(str(t.get("token", "")), math.exp(float(t["logprob"])))
        return [top.get(c, 0.0) for c in candidates]


class ScoresUnavailable(GeneratorError):
    """The backend cannot read next-token probabilities (a server without logprobs)."""


def known_models() -> str:
    names = ", ".join(f"{n} ({m.description})" for n, m in BUNDLED.items())
    return f"{names}; or PATH.gguf, hf:DIR, openai:URL#MODEL"


def is_remote(name: str) -> bool:
    """Whether the model ``name`` runs on a server (which may answer several requests at once)
    rather than in this process (one at a time)."""
    return name.startswith("openai:")


def check_model(name: str) -> None:
    """Raise :class:`InvalidInput` unless ``name`` designates a model (see the module docstring);
    nothing is loaded. Called when an assistant opens, so a typo fails before any search."""
    if name in BUNDLED:
        return
    if is_remote(name):
        url, _, model = name[len("openai:") :].partition("#")
        if not url or not model:
            raise InvalidInput(f"write an OpenAI-compatible model as openai:URL#MODEL, got '{name}'")
        return
    if name.startswith("hf:"):
        target = Path(name[3:]).expanduser()
        if not (target.parent if target.suffix == ".gguf" else target).is_dir():
            raise InvalidInput(f"no model directory at {target}")
        return
    if name.endswith(".gguf"):
        if not Path(name).expanduser().is_file():
            raise InvalidInput(f"no GGUF file at {Path(name).expanduser()}")
        return
    raise InvalidInput(f"unknown model '{name}'; known models: {known_models()}")


def load_generator(name: str = DEFAULT_MODEL, settings: GenerationSettings = GenerationSettings()) -> Generator:
    """Build the generator that ``name`` designates (see the module docstring).

    Raises:
        InvalidInput: an unknown name (the message lists the known ones) or a missing file.
    """
    check_model(name)
    if is_remote(name):
        url, _, model = name[len("openai:") :].partition("#")
        return OpenAIGenerator(url, model, settings)
    if name.startswith("hf:"):
        target = Path(name[3:]).expanduser()
        if target.suffix == ".gguf":
            return TransformersGenerator(target.parent, settings, gguf_file=target.name)
        return TransformersGenerator(target, settings)
    # a bundled model or a PATH.gguf: llama.cpp, here or in a process of its own
    path = gguf_path(name) if name in BUNDLED else Path(name).expanduser()
    shown = name if name in BUNDLED else path.name
    if settings.process:
        from rag.engine import ModelProcess

        return ModelProcess((llama_in_child, (path, settings, shown)), shown, settings.time_limit_s)
    return LlamaCppGenerator(path, settings, name=shown)


def llama_in_child(path: Path, settings: GenerationSettings, name: str) -> LlamaCppGenerator:
    """The llama.cpp generator as the child of a :class:`rag.engine.ModelProcess` builds it: the
    parent's CPU time (search, checks) is counted as the answer's own, not as another process
    keeping a core busy (rag/cpu.py)."""
    meter = CpuMeter(family=(os.getppid(),))
    return LlamaCppGenerator(path, settings, name=name, meter=meter)
