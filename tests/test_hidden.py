"""Hidden states read from llama.cpp's graph (rag/generate/hidden.py), with the small bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from rag.core.bundled import gguf_path
from rag.generate.base import GenerationSettings
from rag.generate.hidden import LayerTap
from rag.generate.llamacpp import LlamaCppGenerator

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def tapped() -> tuple[LlamaCppGenerator, LayerTap]:
    tap = LayerTap(layers=(4, 12, 23))  # qwen-0.5b has 24 layers
    settings = GenerationSettings(threads=2, adapt_threads=False)
    return LlamaCppGenerator(gguf_path("qwen-0.5b"), settings, name="qwen-0.5b", tap=tap), tap


def test_an_armed_tap_keeps_the_last_tokens_state_at_each_layer(tapped) -> None:
    generator, tap = tapped
    generator._llm.reset()
    with tap.armed() as rows:
        generator.next_token_probabilities(QUESTION, ["Paris"])
    assert sorted(rows) == [4, 12, 23]
    for row in rows.values():
        assert row.shape == (896,) and np.isfinite(row).all() and np.abs(row).sum() > 0
    assert not np.allclose(rows[4], rows[23])  # different layers, different states


def test_the_state_is_the_same_whether_the_prompt_was_cached_or_not(tapped) -> None:
    """A probe is a dot product with the state, so what matters is the state's distance relative
    to its size. Evaluated in a batch (fresh) or as one token after a cached prefix, llama.cpp
    runs different kernels; their rounding differs by CPU (0.8-2.3% of the state's norm on a
    2-core AMD EPYC, where single elements differ by up to 0.28), while another prompt's state
    is 16-104% away."""
    generator, tap = tapped
    generator._llm.reset()
    with tap.armed() as fresh:
        generator.next_token_probabilities(QUESTION, ["Paris"])
    with tap.armed() as cached:  # same messages: only the last token is evaluated again
        generator.next_token_probabilities(QUESTION, ["Paris"])
    generator._llm.reset()
    with tap.armed() as other:
        generator.next_token_probabilities([{"role": "user", "content": "Name a colour."}], ["Red"])
    for layer in tap.layers:
        size = np.linalg.norm(fresh[layer])
        assert np.linalg.norm(fresh[layer] - cached[layer]) / size < 0.05
        assert np.linalg.norm(fresh[layer] - other[layer]) / size > 0.1  # the measure tells prompts apart


def test_a_disarmed_tap_keeps_nothing_and_changes_no_answer(tapped) -> None:
    generator, tap = tapped
    with tap.armed():
        pass
    text = "".join(generator.stream(QUESTION, max_tokens=4))
    assert tap.rows == {} and "paris" in text.lower()


def test_a_generator_given_hidden_layers_keeps_the_prompt_and_answer_states(tapped) -> None:
    """GenerationSettings.hidden_layers: what the probe verifier reads (rag/answer/verifier.py), the same
    state a caller's tap reads at the prompt's end, and the answer unchanged."""
    settings = GenerationSettings(threads=2, adapt_threads=False, hidden_layers=(12,))
    generator = LlamaCppGenerator(gguf_path("qwen-0.5b"), settings, name="qwen-0.5b")
    text = "".join(generator.stream(QUESTION, max_tokens=4))
    assert "paris" in text.lower()
    assert generator.stats is not None
    hidden = generator.stats.hidden
    assert sorted(hidden) == ["answer L12", "prompt L12"]
    prompt, answer = np.array(hidden["prompt L12"]), np.array(hidden["answer L12"])
    assert prompt.shape == answer.shape == (896,) and not np.allclose(prompt, answer)
    other, tap = tapped
    other._llm.reset()
    with tap.armed() as rows:
        other.next_token_probabilities(QUESTION, ["Paris"])
    np.testing.assert_allclose(prompt, rows[12], rtol=0.05, atol=0.05)
    assert "".join(LlamaCppGenerator(gguf_path("qwen-0.5b"), GenerationSettings(threads=2, adapt_threads=False),
                                     name="qwen-0.5b").stream(QUESTION, max_tokens=4)) == text
