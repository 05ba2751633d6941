"""Follow-up questions: rewrite a short follow-up into a question that stands on its own.

Retrieval sees one question at a time, so "and when was it?" finds nothing by itself. A
question that looks like a follow-up (it is short and either opens with "and", "what
about"... or leans on a pronoun with no name of its own) is sent with what the previous turn
was about: the names and words of its question and the names in its answer. Anything else is sent unchanged. Only the topic is carried over, not the previous
question itself: a small model given both questions answers the old one again. The rule is
plain on purpose: the chat shows the rewritten question, and no model call is spent on it.

Example:
    >>> turn = Turn("When did Bernard Quintin visit Doha?", "He visited Doha on December 6, 2023.")
    >>> resolve_followup("and who did he meet?", [turn])
    'Who did he meet? (about Bernard Quintin, Doha, visit, December)'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.core.text import names

MAX_FOLLOWUP_WORDS = 10
MAX_TOPICS = 6  # names or words carried over, so the rewritten question stays short
_OPENERS = re.compile(r"^(and|but|so|also|then|what about|how about|and what about)\b[\s,]*", re.IGNORECASE)
_PRONOUNS = {
    "it", "its", "he", "him", "his", "she", "her", "hers", "they", "them", "their", "theirs",
    "this", "that", "these", "those", "there", "then", "one",
}
_WORD = re.compile(r"[A-Za-z0-9']+")
_FUNCTION_WORDS = {
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or", "is", "are",
    "was", "were", "be", "been", "do", "does", "did", "has", "have", "had", "what", "which", "who", "whom",
    "whose", "when", "where", "why", "how", "that", "this", "it", "its", "there", "about", "much", "many",
} | _PRONOUNS


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


def topics(turn: Turn) -> list[str]:
    """What ``turn`` was about: the names and other words of its question, then the names in its answer."""
    found: list[str] = []
    texts = [turn.question] + ([] if turn.refused else [re.sub(r"\[\d+(?:[,;\s]*\d+)*\]", "", turn.answer)])
    for text in texts:
        for name in names(text):
            # subtle: a lone capitalised word opening a sentence is usually "According", "Officials".
            if " " not in name and re.match(rf"\s*{re.escape(name)}\b", text):
                continue
            name = re.sub(r"^(The|A|An)\s+", "", name)
            if name.lower() not in _FUNCTION_WORDS:
                found.append(name)
        if text is turn.question:
            # Its other words too ("partner", "visit"): names alone lose what was asked about them.
            found += [w for w in _WORD.findall(text) if w.islower() and w not in _FUNCTION_WORDS]
    return list(dict.fromkeys(found))[:MAX_TOPICS]


def resolve_followup(question: str, history: Sequence[Turn]) -> str:
    """``question`` made standalone with the last turn of ``history``, or unchanged."""
    question = question.strip()
    if not history or not is_followup(question):
        return question
    about = topics(history[-1])
    if not about:
        return question
    rest = _OPENERS.sub("", question).strip() or question
    rest = rest[0].upper() + rest[1:]
    return f"{rest} (about {', '.join(about)})"


__all__ = ["Turn", "is_followup", "resolve_followup", "topics"]
