"""Which generator a model name designates: one table that help, validation and loading read.

    qwen-1.5b | qwen-0.5b | PATH.gguf | hf:DIR | openai:URL#MODEL

The bundled names and ``PATH.gguf`` run with llama.cpp (:mod:`rag.generate.llamacpp`), in this
process or, with ``GenerationSettings.process``, in a supervised child
(:mod:`rag.generate.process`); ``hf:DIR`` with transformers (:mod:`rag.generate.hf`);
``openai:URL#MODEL`` on any OpenAI-compatible server (:mod:`rag.generate.remote`).
"""

from __future__ import annotations

from pathlib import Path

from rag.core import defaults
from rag.core.bundled import BUNDLED, gguf_path
from rag.core.errors import InvalidInput
from rag.core.registry import Entry, Registry
from rag.generate.base import GenerationSettings, Generator

GENERATORS: Registry[Generator] = Registry("model")


def _llama(path: Path, shown: str, settings: GenerationSettings) -> Generator:
    """llama.cpp, here or in a process of its own."""
    from rag.generate.llamacpp import LlamaCppGenerator, llama_in_child

    if settings.process:
        from rag.generate.process import ModelProcess

        return ModelProcess((llama_in_child, (path, settings, shown)), shown, settings.time_limit_s)
    return LlamaCppGenerator(path, settings, name=shown)


def _bundled_entry(name: str, description: str) -> Entry[Generator]:
    return Entry(name, description, load=lambda spec, settings: _llama(gguf_path(spec), spec, settings))


def _check_gguf(spec: str) -> None:
    if not Path(spec).expanduser().is_file():
        raise InvalidInput(f"no GGUF file at {Path(spec).expanduser()}")


def _check_hf(spec: str) -> None:
    target = Path(spec[3:]).expanduser()
    if not (target.parent if target.suffix == ".gguf" else target).is_dir():
        raise InvalidInput(f"no model directory at {target}")


def _load_hf(spec: str, settings: GenerationSettings) -> Generator:
    from rag.generate.hf import TransformersGenerator

    target = Path(spec[3:]).expanduser()
    if target.suffix == ".gguf":
        return TransformersGenerator(target.parent, settings, gguf_file=target.name)
    return TransformersGenerator(target, settings)


def _remote_parts(spec: str) -> tuple[str, str]:
    url, _, model = spec[len("openai:") :].partition("#")
    return url, model


def _check_remote(spec: str) -> None:
    url, model = _remote_parts(spec)
    if not url or not model:
        raise InvalidInput(f"write an OpenAI-compatible model as openai:URL#MODEL, got '{spec}'")


def _load_remote(spec: str, settings: GenerationSettings) -> Generator:
    from rag.generate.remote import OpenAIGenerator

    return OpenAIGenerator(*_remote_parts(spec), settings)


for _model in BUNDLED.values():
    GENERATORS.add(_bundled_entry(_model.name, _model.description))
GENERATORS.add(Entry(
    "PATH.gguf", "a GGUF file run by llama.cpp", check=_check_gguf,
    matches=lambda s: s.endswith(".gguf") and not s.startswith(("hf:", "openai:")),
    load=lambda spec, settings: _llama(Path(spec).expanduser(), Path(spec).expanduser().name, settings),
))
GENERATORS.add(Entry(
    "hf:DIR", "a Hugging Face model directory run by transformers", check=_check_hf,
    matches=lambda s: s.startswith("hf:"), load=_load_hf,
))
GENERATORS.add(Entry(
    "openai:URL#MODEL", "a model on an OpenAI-compatible server", check=_check_remote,
    matches=lambda s: s.startswith("openai:"), load=_load_remote,
))


def is_remote(name: str) -> bool:
    """Whether the model ``name`` runs on a server (which may answer several requests at once)
    rather than in this process (one at a time)."""
    return name.startswith("openai:")


def check_model(name: str) -> None:
    """Raise :class:`InvalidInput` unless ``name`` designates a model (see the module docstring);
    nothing is loaded. Called when an assistant opens, so a typo fails before any search."""
    GENERATORS.check(name)


def load_generator(name: str = defaults.MODEL, settings: GenerationSettings = GenerationSettings()) -> Generator:
    """Build the generator that ``name`` designates (see the module docstring).

    Raises:
        InvalidInput: an unknown name (the message lists the known ones) or a missing file.
    """
    return GENERATORS.load(name, settings)
