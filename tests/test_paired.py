"""eval/paired.py: question-by-question comparison of two rag eval runs (no model)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def paired():
    from eval import paired

    return paired


def row(question: str, answerable: bool, refused: bool, correct: bool, tokens: int = 100, answer: str = "A [1].") -> dict:
    return {"question": question, "answerable": answerable, "refused": refused, "candidate_correct": correct,
            "tokens": {"prompt": tokens}, "answer": answer, "raw": answer, "trust": {"score": 0.5},
            "citations": [{"doc_id": "d", "start": 0, "end": 5, "supported": True}]}


def test_right_is_what_the_reader_sees(paired) -> None:
    assert paired.right(row("q", True, False, True))
    assert not paired.right(row("q", True, True, True))  # a right answer withheld
    assert not paired.right(row("q", True, False, False))
    assert paired.right(row("q", False, True, False))  # unanswerable, refused
    assert not paired.right(row("q", False, False, False))


def test_sign_test_exact_values(paired) -> None:
    assert paired.sign_test(0, 0) == 1.0
    assert paired.sign_test(5, 1) == pytest.approx(2 * 7 / 64)
    assert paired.sign_test(1, 5) == paired.sign_test(5, 1)
    assert paired.sign_test(10, 0) == pytest.approx(2 / 1024)
    assert paired.sign_test(3, 3) == 1.0


def test_pair_counts_flips_both_ways(paired) -> None:
    a = [row("q1", True, False, True, 300), row("q2", False, True, False, 310), row("q3", True, True, False, 320)]
    b = [row("q1", True, False, False, 200), row("q2", False, True, False, 210), row("q3", True, False, True, 220)]
    p = paired.pair(a, b)
    assert (p.questions, p.right_a, p.right_b, p.only_a, p.only_b) == (3, 2, 2, 1, 1)
    assert (p.tokens_a, p.tokens_b) == (310, 210)
    assert p.same == 2  # q1 shown by both, q2 withheld by both, q3 withheld by A only
    assert p.identical == 0  # every prompt's token count differs
    assert "| x | 3 | 2 | 2 | 1 | 1 | 1.00 | 310 -> 210 | 2 (67%) | 0 (0%) |" in paired.table({"x": p})


def test_identical_answers_need_the_same_text_citations_and_score(paired) -> None:
    base = row("q1", True, False, True)
    moved = {**base, "citations": [{"doc_id": "d", "start": 1, "end": 5, "supported": True}]}
    rescored = {**base, "trust": {"score": 0.51}}
    reworded = row("q1", True, False, True, answer="B [1].")
    assert paired.answered_alike(base, dict(base))
    assert not any(paired.answered_alike(base, other) for other in (moved, rescored, reworded))
    assert paired.pair([base, base], [dict(base), moved]).identical == 1


def test_runs_of_different_questions_are_refused(paired) -> None:
    with pytest.raises(ValueError, match="same questions"):
        paired.pair([row("q1", True, False, True)], [row("q2", True, False, True)])
