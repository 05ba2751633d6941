"""A local Hugging Face model directory (or a GGUF file read by transformers): ``hf:DIR``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.core.errors import GeneratorError, InvalidInput
from rag.core.types import Message
from rag.generate.base import GenerationSettings


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
