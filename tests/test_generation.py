"""Generation settings are checked when made, before any model loads."""

from __future__ import annotations

import pytest

from rag.generate.base import GenerationSettings


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("threads", 0, "threads must be >= 1"), ("batch_threads", 0, "batch threads must be >= 1"),
     ("context_size", 100, "context size must be >= 256"), ("max_tokens", 0, "max answer length must be >= 1")],
)
def test_bad_settings_are_refused_with_their_name(field: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GenerationSettings(**{field: value})


def test_batch_threads_default_to_the_decode_threads() -> None:
    assert GenerationSettings(threads=1).batch_threads is None  # the backend then uses threads
    assert GenerationSettings(threads=1, batch_threads=2).batch_threads == 2
