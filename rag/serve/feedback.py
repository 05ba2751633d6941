"""Save what users thought of an answer, one JSON object per line, for building gold sets.

Each record holds the rating, the optional comment, and the question, answer and
citations it is about, so a later script can turn thumbs-up answers into gold questions
without the app running. The file is ``feedback.jsonl`` in the data directory.

Example:
    >>> record_feedback(answer, "up", comment="exactly right")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.core.bundled import data_dir
from rag.core.errors import InvalidInput

if TYPE_CHECKING:
    from rag.answer.assistant import Answer

RATINGS = ("up", "down")
MAX_COMMENT_CHARS = 2000
FEEDBACK_FILE = "feedback.jsonl"

_lock = threading.Lock()  # one writer at a time, so lines from two sessions never interleave


def feedback_path() -> Path:
    """Where feedback goes: ``feedback.jsonl`` in :func:`rag.core.bundled.data_dir`."""
    return data_dir() / FEEDBACK_FILE


def record_feedback(
    answer: Answer, rating: str, comment: str = "", asked: str | None = None, path: Path | None = None
) -> dict[str, Any]:
    """Append one feedback record about ``answer`` and return it.

    Args:
        rating: ``up`` or ``down``.
        comment: free text, at most 2000 characters.
        asked: the user's own words, when they differ from the question that was searched
            (a follow-up is searched as a standalone question, kept as ``searched_question``).

    Raises:
        ValueError: an unknown rating or a comment that is too long.
    """
    if rating not in RATINGS:
        raise InvalidInput(f"rating must be one of {', '.join(RATINGS)}, got {rating!r}")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise InvalidInput(f"the comment has {len(comment)} characters; the limit is {MAX_COMMENT_CHARS}")
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rating": rating,
        "comment": comment,
        **answer.to_dict(),
        "question": asked or answer.question,
        "searched_question": answer.question,
    }
    target = path or feedback_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _lock, open(target, "a", encoding="utf-8") as f:
        f.write(line)
    return record


__all__ = ["RATINGS", "MAX_COMMENT_CHARS", "feedback_path", "record_feedback"]
