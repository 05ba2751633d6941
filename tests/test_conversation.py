from __future__ import annotations

import pytest

from rag.conversation import MAX_CONTEXT_CHARS, Turn, is_followup, resolve_followup

PREVIOUS = Turn("Who visited Doha?", "Bernard Quintin visited Doha [1].")


@pytest.mark.parametrize(
    "question",
    ["and when was it?", "When was it?", "What about his deputy?", "Also, why?", "Where did they meet?"],
)
def test_followups_are_recognised(question: str) -> None:
    assert is_followup(question)


@pytest.mark.parametrize(
    "question",
    [
        "When did Bernard Quintin visit Doha?",  # names its own subject
        "Which agency runs the Centre for Cybersecurity?",
        "What did the report say about ransomware attacks on hospitals in the last two years?",  # long
        "",
    ],
)
def test_standalone_questions_are_not_followups(question: str) -> None:
    assert not is_followup(question)


def test_followup_is_rewritten_with_the_previous_turn() -> None:
    resolved = resolve_followup("and when was it?", [Turn("Q0", "A0"), PREVIOUS])
    assert resolved == "When was it? (Follow-up to: Who visited Doha? Bernard Quintin visited Doha [1].)"


def test_refused_turn_contributes_only_its_question() -> None:
    refused = Turn("Who won the match?", "The articles do not contain the answer to this question.", refused=True)
    assert resolve_followup("and where was it?", [refused]) == "Where was it? (Follow-up to: Who won the match?)"


def test_no_history_or_standalone_question_is_unchanged() -> None:
    assert resolve_followup("  and when was it? ", []) == "and when was it?"
    assert resolve_followup("When did Quintin visit Doha?", [PREVIOUS]) == "When did Quintin visit Doha?"


def test_long_previous_turn_is_cut_at_a_word() -> None:
    resolved = resolve_followup("and when?", [Turn("Who?", "word " * 200)])
    context = resolved.split("(Follow-up to: ", 1)[1]
    assert len(context) <= MAX_CONTEXT_CHARS + 4 and context.endswith("...)")
