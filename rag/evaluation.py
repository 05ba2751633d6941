"""Score answers against a gold set: answer accuracy, citations, refusals, latency.

A gold line is ``{"id", "question", "answers": [...], "sources": [...], "answerable": bool}``;
with ``"all": true`` every listed item must appear, and ``"a|b"`` gives alternatives
for one item (see eval/gold/README.md).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def load_gold(path: str | Path) -> list[dict[str, Any]]:
    """Read a gold JSONL file; a malformed line is an error naming the line."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise ValueError(f"{path}:{lineno}: each line needs a 'question' string")
        row.setdefault("id", f"line{lineno}")
        row.setdefault("answers", [])
        row.setdefault("sources", [])
        row.setdefault("answerable", bool(row["answers"]))
        rows.append(row)
    return rows


_PUNCTUATION = frozenset(string.punctuation) | {"’", "‘", "“", "”"}


def normalize(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().replace("–", " ").replace("-", " ")
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def is_correct(answer: str, gold: dict[str, Any]) -> bool:
    """Whether ``answer`` contains an acceptable answer (every item when ``all``)."""
    said = f" {normalize(answer)} "
    contains = lambda alt: f" {normalize(alt)} " in said  # noqa: E731 - whole words only
    if gold.get("all"):
        return all(any(contains(alt) for alt in item.split("|")) for item in gold["answers"])
    return any(contains(alt) for alt in gold["answers"])


def token_f1(answer: str, gold_answers: Iterable[str]) -> float:
    """Best SQuAD token F1 of ``answer`` against any gold answer."""
    pred = normalize(answer).split()
    best = 0.0
    for gold in gold_answers:
        ref = normalize(gold.replace("|", " ")).split()
        common = sum(min(pred.count(t), ref.count(t)) for t in set(ref))
        if common:
            p, r = common / len(pred), common / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None
