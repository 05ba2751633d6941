"""Text generators: a prompt (or chat messages) in, streamed text out.

Three backends share one small interface, :class:`Generator`:

- ``llama-cpp`` (default): a GGUF file run by llama-cpp-python, e.g. the bundled Qwen models;
- ``transformers``: a local Hugging Face model directory (or GGUF through transformers);
- ``openai``: any OpenAI-compatible server (llama.cpp server, Ollama, vLLM) by base URL.

:func:`load_generator` picks one by name::

    qwen-1.5b | qwen-0.5b | PATH.gguf | hf:DIR | openai:URL#MODEL
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rag.models import BUNDLED, gguf_path

Message = dict[str, str]
DEFAULT_MODEL = "qwen-1.5b"


@dataclass(frozen=True)
class GenerationSettings:
    """Runtime settings shared by every backend."""

    threads: int = max(1, os.cpu_count() or 1)
    context_size: int = 2048
    max_tokens: int = 120
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.context_size < 256:
            raise ValueError(f"context size must be >= 256 tokens, got {self.context_size}")
        if self.max_tokens < 1:
            raise ValueError(f"max answer length must be >= 1 token, got {self.max_tokens}")


@runtime_checkable
class Generator(Protocol):
    """Anything that streams a completion for chat messages."""

    name: str

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        """Yield the reply to ``messages`` piece by piece."""
        ...


class GeneratorError(RuntimeError):
    """A model backend cannot run: a missing package, an unreachable or failing server."""


def as_messages(prompt: str | list[Message]) -> list[Message]:
    """A plain prompt becomes one user message (what the bundled models follow best)."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


class LlamaCppGenerator:
    """A GGUF model run in-process by llama-cpp-python.

    llama-cpp-python keeps the KV cache of the previous prompt and only evaluates the
    tokens after the longest common prefix, so a fixed instruction at the start of
    every prompt is paid for once.
    """

    def __init__(self, path: Path, settings: GenerationSettings = GenerationSettings(), name: str | None = None) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise GeneratorError("the llama-cpp backend needs llama-cpp-python: pip install llama-cpp-python") from None
        if not path.is_file():
            raise ValueError(f"no GGUF file at {path}")
        self.name = name or path.name
        self.settings = settings
        self._llm = Llama(
            model_path=str(path),
            n_ctx=settings.context_size,
            n_threads=settings.threads,
            n_threads_batch=settings.threads,
            n_batch=512,
            verbose=False,
        )

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        chunks = self._llm.create_chat_completion(
            messages=messages,
            max_tokens=max_tokens or self.settings.max_tokens,
            temperature=self.settings.temperature,
            stream=True,
        )
        for chunk in chunks:
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                yield piece

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))


class TransformersGenerator:
    """A local Hugging Face model directory run with transformers (CPU or GPU)."""

    def __init__(self, path: Path, settings: GenerationSettings = GenerationSettings(), gguf_file: str | None = None) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise GeneratorError("the transformers backend needs transformers and torch") from None
        if not path.exists():
            raise ValueError(f"no model directory at {path}")
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
    """Any OpenAI-compatible ``/v1/chat/completions`` server, streamed over server-sent events."""

    def __init__(self, base_url: str, model: str, settings: GenerationSettings = GenerationSettings(), timeout: float = 120) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"OpenAI base URL must start with http:// or https://, got '{base_url}'")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{self.base_url}#{model}"
        self.settings = settings
        self.timeout = timeout
        self.api_key = os.environ.get("OPENAI_API_KEY", "none")

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        body = json.dumps(
            {
                "model": self.model,
                "messages": messages,
                "max_tokens": max_tokens or self.settings.max_tokens,
                "temperature": self.settings.temperature,
                "stream": True,
            }
        ).encode()
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        )
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raise GeneratorError(f"{self.base_url} answered HTTP {e.code}: {e.read()[:200]!r}") from None
        except (urllib.error.URLError, OSError) as e:
            raise GeneratorError(f"cannot reach the OpenAI-compatible server at {self.base_url}: {e}") from None
        with response:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                choices = json.loads(data).get("choices") or [{}]
                piece = (choices[0].get("delta") or {}).get("content")
                if piece:
                    yield piece


def known_models() -> str:
    names = ", ".join(f"{n} ({m.description})" for n, m in BUNDLED.items())
    return f"{names}; or PATH.gguf, hf:DIR, openai:URL#MODEL"


def load_generator(name: str = DEFAULT_MODEL, settings: GenerationSettings = GenerationSettings()) -> Generator:
    """Build the generator that ``name`` designates (see the module docstring).

    Raises:
        ValueError: an unknown name (the message lists the known ones) or a missing file.
    """
    if name in BUNDLED:
        return LlamaCppGenerator(gguf_path(name), settings, name=name)
    if name.startswith("openai:"):
        url, _, model = name[len("openai:") :].partition("#")
        if not url or not model:
            raise ValueError(f"write an OpenAI-compatible model as openai:URL#MODEL, got '{name}'")
        return OpenAIGenerator(url, model, settings)
    if name.startswith("hf:"):
        target = Path(name[3:]).expanduser()
        if target.suffix == ".gguf":
            return TransformersGenerator(target.parent, settings, gguf_file=target.name)
        return TransformersGenerator(target, settings)
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ValueError(f"no GGUF file at {path}")
        return LlamaCppGenerator(path, settings)
    raise ValueError(f"unknown model '{name}'; known models: {known_models()}")
