"""Metrics on hand-made records with known scores, and the pieces around them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from rag.evaluate.metrics import (
    LOSSES,
    Record,
    Setting,
    answer_metrics,
    check_gold,
    citation_metrics,
    compute_metrics,
    corpus_index_dir,
    exact_match,
    is_correct,
    latency_metrics,
    load_gold,
    loss_metrics,
    ndcg,
    parse_compare,
    reciprocal_rank,
    refusal_metrics,
    retrieval_metrics,
    strip_markers,
    token_f1,
)


def gold(qid: str, answers: list[str], sources: list[str], **extra: Any) -> dict[str, Any]:
    return {"id": qid, "question": f"question {qid}?", "answers": answers, "sources": sources,
            "answerable": bool(answers), **extra}


def ranking(*docs: str) -> tuple[tuple[str, str], ...]:
    """Chunk hits for ``docs`` in order; a repeated doc gets its next chunk number."""
    seen: dict[str, int] = {}
    out = []
    for doc in docs:
        seen[doc] = seen.get(doc, -1) + 1
        out.append((doc, f"{doc}#{seen[doc]}"))
    return tuple(out)


def cite(doc: str, supported: bool = True, n: int = 1) -> dict[str, Any]:
    return {"n": n, "doc_id": doc, "chunk_id": f"{doc}#0", "supported": supported}


def sentence(supported: bool) -> dict[str, Any]:
    return {"text": "s.", "citations": [1] if supported else [], "supported": supported}


# ---------------------------------------------------------------------- answer matching


def test_is_correct_single_list_and_alternatives() -> None:
    single = gold("a", ["December 6, 2023", "6 December"], ["d"])
    assert is_correct("The talks were held on 6 December.", single)
    assert not is_correct("The talks were held on 16 December.", single)  # whole words only
    listed = gold("b", ["Internet of Things|IoT", "cloud"], ["d"], all=True)
    assert is_correct("They covered IoT and the cloud.", listed)
    assert is_correct("They covered the internet-of-things and cloud security.", listed)
    assert not is_correct("They covered IoT only.", listed)


def test_token_f1_and_exact_match_known_values() -> None:
    # pred "eiffel tower paris" vs gold "the eiffel tower": common 2, p = 2/3, r = 1 -> 0.8
    assert token_f1("Eiffel Tower, Paris", ["The Eiffel Tower"]) == pytest.approx(0.8)
    assert token_f1("nothing shared", ["The Eiffel Tower"]) == 0.0
    assert exact_match("The Eiffel Tower.", ["eiffel tower"])
    assert not exact_match("Eiffel Tower, Paris", ["eiffel tower"])


def test_markers_are_not_scored() -> None:
    assert strip_markers("It was 2023 [1]. Then 2024 [2, 3].") == "It was 2023. Then 2024."
    record = Record("a", "q", gold("a", ["2"], ["d"]), ranking("d"), answer="It was in 2023 [2].")
    assert not record.correct()


# ---------------------------------------------------------------------- retrieval


def test_ndcg_and_reciprocal_rank_known_values() -> None:
    # gold at ranks 2 and 3: (1/log2 3 + 1/log2 4) / (1 + 1/log2 3)
    expected = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg(["x", "g1", "g2"], ["g1", "g2"], k=3) == pytest.approx(expected)
    assert ndcg(["g1", "x"], ["g1"], k=2) == 1.0
    assert ndcg(["x", "y"], ["g1"], k=2) == 0.0
    assert reciprocal_rank(["x", "y", "g"], ["g"]) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x"], ["g"]) == 0.0


def test_retrieval_metrics_are_per_document() -> None:
    records = [
        # gold first: every metric 1
        Record("1", "q", gold("1", ["a"], ["A"]), ranking("A", "A", "B", "C", "D")),
        # chunk hits A, A, A, B, G: doc ranking A, B, G; G is the 3rd document but the 5th chunk
        Record("2", "q", gold("2", ["a"], ["G"]), ranking("A", "A", "A", "B", "G")),
        # two gold docs, one found at rank 2
        Record("3", "q", gold("3", ["a"], ["G", "H"]), ranking("X", "G", "Y", "Z", "W")),
        # unanswerable: ignored by retrieval metrics
        Record("4", "q", gold("4", [], []), ranking("A")),
    ]
    m = retrieval_metrics(records, k=4)
    assert m["questions"] == 3
    assert m["hit@1"] == pytest.approx(1 / 3)
    assert m["hit@3"] == pytest.approx(1.0)  # G is the third distinct document
    assert m["hit@5"] == pytest.approx(1.0)
    # first 4 chunks: q1 {A}, q2 {A, B} misses G, q3 {X, G, Y, Z} has half
    assert m["recall@k"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert m["any@k"] == pytest.approx(2 / 3)
    assert m["all@k"] == pytest.approx(1 / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    ndcg3 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert m["ndcg@k"] == pytest.approx((1 + 0 + ndcg3) / 3)


# ---------------------------------------------------------------------- answers, citations, refusals


def answered_records() -> list[Record]:
    return [
        # right, with a gold citation and one wrong one; one of two sentences supported
        Record("1", "q", gold("1", ["Paris"], ["P"]), ranking("P"), answer="Paris [1]. Also Rome [2].",
               citations=(cite("P"), cite("R", n=2), cite("P", supported=False)),
               sentences=(sentence(True), sentence(False)), raw="Paris [1]. Also Rome [2].",
               conflicts=({"values": []},)),
        # a list question with one item missing: wrong, but partial F1
        Record("2", "q", gold("2", ["red|crimson", "blue"], ["C", "D"], all=True), ranking("C"),
               answer="Crimson [1].", citations=(cite("C"),), sentences=(sentence(True),)),
        # answerable but refused: a false refusal; wrong; not in citation metrics
        # (the model's own answer was right: a right answer withheld)
        Record("3", "q", gold("3", ["x"], ["X"]), ranking("X"), answer="No answer.", refused=True, raw="x [1]."),
        # unanswerable and refused: right refusal
        Record("4", "q", gold("4", [], []), ranking("A"), answer="No answer.", refused=True),
        # unanswerable and answered anyway: its unsupported sentence still counts
        Record("5", "q", gold("5", [], []), ranking("A"), answer="Made up.", sentences=(sentence(False),)),
    ]


def test_answer_metrics_known_values() -> None:
    m = answer_metrics(answered_records())
    assert m["questions"] == 3
    assert m["accuracy"] == pytest.approx(1 / 3)
    # q1: "paris also rome" vs "paris" -> p 1/3, r 1 -> 0.5; q2: "crimson" vs "red blue" -> 0; q3 refused -> 0
    assert m["f1"] == pytest.approx(0.5 / 3)
    assert m["exact_match"] == 0.0
    assert answer_metrics([Record("x", "q", gold("x", ["Paris"], ["P"]), (), answer="Paris.")])["exact_match"] == 1.0


def test_citation_metrics_known_values() -> None:
    m = citation_metrics(answered_records())
    assert m["questions"] == 2
    # cited docs (supported only): q1 {P, R}, q2 {C} -> 2 of 3 are gold
    assert m["cited_docs"] == 3
    assert m["gold_doc_precision"] == pytest.approx(2 / 3)
    # recall: q1 1/1, q2 1/2
    assert m["recall"] == pytest.approx(0.75)
    # sentences of non-refused answers: q1 (T, F), q2 (T), q5 (F)
    assert m["supported_sentences"] == pytest.approx(2 / 4)


def test_refusal_metrics_known_values() -> None:
    m = refusal_metrics(answered_records())
    assert m == {"unanswerable": 2, "refusal_accuracy": 0.5, "false_refusals": pytest.approx(1 / 3),
                 # q2 wrong and q5 unanswerable, both shown, of 5; q1 right and shown, q3 right and withheld
                 "wrong_shown": pytest.approx(2 / 5), "right_kept": 0.5, "conflicts": pytest.approx(1 / 3)}


def test_each_wrong_or_missing_answer_is_lost_at_one_stage() -> None:
    g = gold("q", ["Paris"], ["P", "Q"])
    records = [
        Record("right", "q", g, (), answer="Paris [1].", raw="Paris [1].", prompt_docs=("P", "Q")),
        Record("no evidence", "q", g, (), answer="Lyon [1].", raw="Lyon [1].", prompt_docs=("P",)),
        Record("did not know", "q", g, (), answer="No.", refused=True, raw="I don't know.",
               refusal_reason="the model found no answer", prompt_docs=("Q", "P")),
        Record("wrong", "q", g, (), answer="Lyon [1].", raw="Lyon [1].", prompt_docs=("P", "Q")),
        Record("withheld", "q", g, (), answer="No.", refused=True, raw="Paris [1].",
               refusal_reason="the answer is not trusted enough (score 0.10 < 0.20)", prompt_docs=("P", "Q")),
        Record("unanswerable answered", "q", gold("u", [], []), (), answer="Rome [1].", raw="Rome [1].", prompt_docs=("R",)),
        Record("unanswerable refused", "q", gold("v", [], []), (), answer="No.", refused=True, prompt_docs=("R",)),
    ]
    assert [r.loss() for r in records] == [None, LOSSES[0], LOSSES[1], LOSSES[2], LOSSES[3], LOSSES[4], None]
    m = loss_metrics(records)
    assert m["questions"] == 7 and m["right"] == 1 and m["causes"] == dict.fromkeys(LOSSES, 1)
    assert m["evidence_in_prompt"] == 4 / 5  # of the five answerable questions, one lacked a gold document
    line = records[1].to_dict()
    assert line["loss"] == LOSSES[0] and line["prompt_docs"] == ["P"]


def test_without_a_recorded_prompt_the_evidence_is_unknown() -> None:
    record = Record("x", "q", gold("x", ["Paris"], ["P"]), (), answer="Lyon [1].", raw="Lyon [1].")
    assert record.evidence_in_prompt() is None and record.loss() == LOSSES[2]


def test_latency_percentiles_skip_missing_first_tokens() -> None:
    records = [
        Record(str(i), "q", gold(str(i), ["a"], ["A"]), (),
               timings={"retrieve_s": 0.1 * i, "first_token_s": None if i == 0 else float(i), "total_s": float(i)})
        for i in range(5)
    ]
    m = latency_metrics(records)
    assert m["total_s_p50"] == pytest.approx(2.0)
    assert m["first_token_s_p50"] == pytest.approx(2.5)  # over 1..4 only
    assert m["total_s_p95"] == pytest.approx(3.8)
    assert m["retrieve_s_p95"] == pytest.approx(0.38)


def test_compute_metrics_without_answers_has_no_answer_groups() -> None:
    records = [Record("1", "q", gold("1", ["a"], ["A"]), ranking("A"), timings={"retrieve_s": 0.01})]
    m = compute_metrics(records, k=4)
    assert set(m) == {"questions", "retrieval", "latency"} and m["retrieval"]["hit@1"] == 1.0
    m = compute_metrics(answered_records(), k=4)
    assert {"answers", "citations", "refusals"} <= set(m)


def test_record_line_has_the_ask_json_fields() -> None:
    row = answered_records()[0].to_dict()
    assert set(row) >= {"id", "question", "answer", "refused", "citations", "retrieved", "timings", "model"}
    assert row["retrieved"] == [{"rank": 1, "doc_id": "P", "chunk_id": "P#0"}]
    assert row["score"] == {"correct": True, "f1": 0.5, "exact": False}
    json.dumps(row)


# ---------------------------------------------------------------------- settings and gold files


def test_parse_compare() -> None:
    settings = parse_compare(["mode=bm25,dense", "model=a,b"], Setting(k=3))
    assert [(s.model, s.mode, s.k) for s in settings] == [("a", "bm25", 3), ("a", "dense", 3), ("b", "bm25", 3), ("b", "dense", 3)]
    assert [s.k for s in parse_compare(["k=2,6"], Setting())] == [2, 6]
    assert parse_compare([], Setting()) == [Setting()]
    assert Setting(model="models/x.gguf", mode="bm25", k=4).slug == "x.gguf-bm25-k4"
    budgets = parse_compare(["words=200,140,140"], Setting())
    assert [s.words for s in budgets] == [200, 140]
    assert [s.slug for s in budgets] == ["qwen-1.5b-hybrid-k4", "qwen-1.5b-hybrid-k4-w140"]
    assert budgets[1].label == "qwen-1.5b hybrid k=4 words=140" and budgets[1].to_dict()["words"] == 140
    labels = parse_compare(["labels=title,title-if-new"], Setting())
    assert [s.slug for s in labels] == ["qwen-1.5b-hybrid-k4", "qwen-1.5b-hybrid-k4-title-if-new"]
    assert labels[1].label == "qwen-1.5b hybrid k=4 labels=title-if-new"


@pytest.mark.parametrize(
    ("specs", "base", "message"),
    [
        (["modes=bm25"], Setting(), "AXIS one of model, mode, k"),
        (["mode"], Setting(), "AXIS=V1,V2"),
        (["mode=bm25,sparse"], Setting(), "sparse"),
        (["k=two"], Setting(), "whole numbers"),
        (["k=0"], Setting(), "k must be > 0"),
        (["mode=bm25", "mode=dense"], Setting(), "twice"),
        (["model=a,b"], Setting(retrieval_only=True), "drop --retrieval-only"),
        (["words=many"], Setting(), "whole numbers"),
        (["words=0"], Setting(), "budget of source words"),
        (["words=140"], Setting(retrieval_only=True), "prompt budgets needs answers"),
        (["labels=none"], Setting(), "source labels must be one of title, title-once, title-if-new"),
        (["labels=title-once"], Setting(retrieval_only=True), "source labels needs answers"),
    ],
)
def test_parse_compare_rejects(specs: list[str], base: Setting, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_compare(specs, base)


def test_gold_extra_fields_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps({**gold("q1", ["x"], ["d"]), "type": "single-fact"}) + "\n\n", encoding="utf-8")
    [row] = load_gold(path)
    assert row["type"] == "single-fact"
    check_gold([row])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([gold("a", ["x"], ["d"]), gold("a", ["y"], ["d"])], "'a' appears twice"),
        ([{**gold("a", ["x"], ["d"]), "question": "  "}], "empty"),
        ([gold("a", ["x"], "d")], "'sources' must be a list"),  # type: ignore[arg-type]
        ([{**gold("a", [], ["d"]), "answerable": True}], "lists no answers"),
    ],
)
def test_check_gold_rejects(rows: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_gold(rows)


def test_corpus_index_dir_is_per_corpus(tmp_path: Path) -> None:
    (tmp_path / "a" / "seeds").mkdir(parents=True)
    (tmp_path / "b" / "seeds").mkdir(parents=True)
    one, two = corpus_index_dir(tmp_path / "a" / "seeds"), corpus_index_dir(tmp_path / "b" / "seeds")
    assert one != two and one.name.startswith("seeds-") and one.parent.name == "eval-index"
    assert corpus_index_dir(tmp_path / "hotpotqa" / "corpus.jsonl").name.startswith("hotpotqa-corpus-")
