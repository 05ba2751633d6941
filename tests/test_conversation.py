from __future__ import annotations

import pytest

from rag.answer.conversation import MAX_TOPICS, Turn, is_followup, resolve_followup, topics

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


def test_followup_carries_the_names_of_the_previous_turn_not_its_question() -> None:
    resolved = resolve_followup("and who did he meet?", [Turn("Q0", "A0"), PREVIOUS])
    assert resolved == "Who did he meet? (about Doha, visited, Bernard Quintin)"


def test_without_names_the_previous_question_words_are_carried() -> None:
    turn = Turn("Which bakery won the sourdough prize?", "The Miller bakery in Ashford won it [1].")
    assert topics(turn) == ["bakery", "won", "sourdough", "prize", "Miller", "Ashford"]
    assert resolve_followup("where is it?", [turn]) == "Where is it? (about bakery, won, sourdough, prize, Miller, Ashford)"


def test_refused_turn_contributes_only_its_question() -> None:
    refused = Turn("Who directs the Centre for Cybersecurity Belgium?", "The articles do not contain X.", refused=True)
    assert resolve_followup("and since when?", [refused]) == "Since when? (about Centre for Cybersecurity Belgium, directs)"


def test_no_history_or_standalone_question_is_unchanged() -> None:
    assert resolve_followup("  and when was it? ", []) == "and when was it?"
    assert resolve_followup("When did Quintin visit Doha?", [PREVIOUS]) == "When did Quintin visit Doha?"
    assert resolve_followup("and why?", [Turn("Why?", "", refused=True)]) == "and why?"  # nothing to carry


def test_topics_are_capped() -> None:
    turn = Turn("Who?", "Anna Berg met Ben Cole, Carl Dunn, Dora Eck, Emil Falk, Finn Gram and Gus Hale.")
    assert len(topics(turn)) == MAX_TOPICS
