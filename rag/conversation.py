"""Follow-up questions: rewrite a short follow-up into a question that stands on its own.

Retrieval sees one question at a time, so "and when was it?" finds nothing by itself. A
question that looks like a follow-up (it is short and either opens with "and", "what
about"... or leans on a pronoun with no name of its own) is sent as the follow-up plus the
previous turn's question and answer, which carry the names retrieval needs. Anything else
is sent unchanged. The rule is plain on purpose: the user sees the rewritten question in
the chat, and no model call is spent on it.

Example:
    >>> turn = Turn("Who visited Doha?", "Bernard Quintin visited Doha.")
    >>> resolve_followup("and when was it?", [turn])
    'When was it? (Follow-up to: Who visited Doha? Bernard Quintin visited Doha.)'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_FOLLOWUP_WORDS = 10
MAX_CONTEXT_CHARS = 300  # of the previous turn, so the rewritten question stays short
_OPENERS = re.compile(r"^(and|but|so|also|then|what about|how about|and what about)\b[\s,]*", re.IGNORECASE)
_PRONOUNS = {
    "it", "its", "he", "him", "his", "she", "her", "hers", "they", "them", "their", "theirs",
    "this", "that", "these", "those", "there", "then", "one",
}
_WORD = re.compile(r"[A-Za-z0-9']+")


@dataclass(frozen=True)
class Turn:
    """One finished exchange: the question as it was searched, and the answer shown."""

    question: str
    answer: str
    refused: bool = False


def is_followup(question: str) -> bool:
    """Whether ``question`` reads as a continuation of the previous turn."""
    words = _WORD.findall(question)
    if not words or len(words) > MAX_FOLLOWUP_WORDS:
        return False
    if _OPENERS.match(question.strip()):
        return True
    # A capitalised word after the first one is taken as a name: "When did Quintin go there?"
    # carries its own subject.
    named = any(w[0].isupper() for w in words[1:])
    return not named and any(w.lower() in _PRONOUNS for w in words)


def resolve_followup(question: str, history: Sequence[Turn]) -> str:
    """``question`` made standalone with the last turn of ``history``, or unchanged."""
    question = question.strip()
    if not history or not is_followup(question):
        return question
    last = history[-1]
    rest = _OPENERS.sub("", question).strip() or question
    rest = rest[0].upper() + rest[1:]
    context = last.question if last.refused else f"{last.question} {last.answer}"
    context = " ".join(context.split())
    if len(context) > MAX_CONTEXT_CHARS:
        context = context[:MAX_CONTEXT_CHARS].rsplit(" ", 1)[0] + "..."
    return f"{rest} (Follow-up to: {context})"


__all__ = ["Turn", "is_followup", "resolve_followup"]
