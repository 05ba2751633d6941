"""The verifier's cheap lexical signals (rag/answer/verifier.py), on fixed inputs."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from rag.answer.verifier import FILE, LEXICAL, Probe, Verifier, for_models, lexical, probe_layers
from rag.core.bundled import BUNDLED

QUESTION = "Who did Belgium's interior minister meet in Doha in 2023?"
FIRST = {"score": 0.8, "dense": 0.6, "bm25": 12.5}


def signals(quote: str, answer: str = "Italy's ministry [1].") -> dict[str, float]:
    return dict(zip(LEXICAL, lexical(QUESTION, answer, [quote], FIRST, relevance=0.55), strict=True))


def test_a_near_miss_about_another_country_lacks_the_questions_name() -> None:
    near_miss = signals("Italy's Ministry of the Interior met representatives in Doha in 2023.")
    right = signals("Belgium's interior minister met Qatar's minister in Doha in 2023.")
    assert near_miss["question names quoted"] == pytest.approx(0.5)  # Doha yes, Belgium's no
    assert right["question names quoted"] == 1.0
    assert near_miss["question words quoted"] < right["question words quoted"]


def test_numbers_the_question_names_are_looked_for_in_the_quotes() -> None:
    assert signals("Belgium's minister met them in Doha in 2022.")["question numbers quoted"] == 0.0
    assert signals("Belgium's minister met them in Doha in 2023.")["question numbers quoted"] == 1.0


def test_the_retrieval_scores_and_the_answer_length_are_passed_through() -> None:
    s = signals("Anything.", answer="Three words here.")
    assert (s["first passage score"], s["first passage dense"], s["first passage BM25"]) == (0.8, 0.6, 12.5)
    assert s["best cosine"] == 0.55 and s["answer words"] == 3.0


def test_no_quotes_and_nothing_named_is_not_an_error() -> None:
    values = lexical("what happened?", "", [], {}, 0.0)
    assert len(values) == len(LEXICAL)
    assert values[LEXICAL.index("question names quoted")] == 1.0  # nothing to look for
    assert values[LEXICAL.index("question words quoted")] == 0.0


def test_the_quotes_are_the_cited_sentences_chosen_by_shared_words() -> None:
    from rag.answer.prompting import sentence_spans
    from rag.answer.verifier import quotes
    from rag.core.types import Hit, Source

    text = ("The talks occurred during Minister Quintin's official visit to Doha on December 6, 2023. "
            "A follow-up meeting is anticipated in the first half of 2024.")
    hit = Hit(chunk_id="qatar#0", doc_id="qatar", title="Qatar", text=text, start=0, end=len(text), score=1.0, rank=1)
    sources = (Source(n=1, hit=hit, sentences=tuple(sentence_spans(hit))),)
    found = quotes("Quintin visited Doha on December 6, 2023 [1].", sources, "When did Quintin visit Doha?")
    assert found == [text.split(" A follow-up")[0]]
    assert quotes("", sources, "When?") == []


# ---------------------------------------------------------------------- the fitted verifier

def fixed_verifier(**changes: object) -> Verifier:
    fields: dict[str, object] = dict(
        inputs=("support log-odds", "question names quoted"), mean=(0.0, 0.5), scale=(2.0, 0.5), weights=(1.0, 2.0),
        bias=-0.5, threshold=0.4, generator="qwen-1.5b", generator_sha256=BUNDLED["qwen-1.5b"].sha256,
        embedder="all-MiniLM-L6-v2")
    fields.update(changes)
    return Verifier(**fields)  # type: ignore[arg-type]


def test_the_probability_is_a_logistic_function_of_the_standardised_inputs() -> None:
    v = fixed_verifier()
    z = -0.5 + 1.0 * (3.0 - 0.0) / 2.0 + 2.0 * (0.0 - 0.5) / 0.5
    assert v.probability({"support log-odds": 3.0, "question names quoted": 0.0}) == pytest.approx(1 / (1 + math.exp(-z)))
    assert v.probability({"support log-odds": 3.0}) is None  # an input missing: no score


def test_a_near_miss_is_withheld_and_the_answer_about_the_asked_country_shown() -> None:
    from rag.answer.trust import Signals, assess
    from rag.core.types import AnswerSentence, Citation

    sentence = [AnswerSentence(text="They met Italy [1].", citations=(1,), supported=True, support=0.95)]
    quote = "Italy's minister met Qatar's minister in Doha."
    cited = [Citation(1, "qatar", "qatar#0", "Qatar", 0, len(quote), quote, supported=True)]
    words = {"question names quoted": 0.0}
    near = Signals(0.6, 0.9, -0.2, 0.95, tuple(words.get(n, 1.0) for n in LEXICAL))
    right = Signals(0.6, 0.9, -0.2, 0.95, tuple(1.0 for _ in LEXICAL))
    verifier = fixed_verifier(weights=(0.1, 4.0))
    withheld = assess("Who did Belgium's minister meet?", "They met Italy [1].", sentence, cited, near, verifier=verifier)
    shown = assess("Who did Belgium's minister meet?", "They met Italy [1].", sentence, cited, right, verifier=verifier)
    assert withheld.scorer == shown.scorer == "verifier"
    assert withheld.threshold == 0.4 and withheld.reason and "not trusted enough" in withheld.reason
    assert shown.shown and shown.score is not None and shown.score > 0.4
    assert shown.to_dict()["signals"]["lexical"] == [1.0] * len(LEXICAL)


def test_without_a_verifier_file_the_product_falls_back_and_says_so_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "verifier.json"
    with caplog.at_level(logging.WARNING, logger="rag.answer.verifier"):
        assert for_models("qwen-1.5b", "all-MiniLM-L6-v2", missing) is None
        assert for_models("qwen-1.5b", "all-MiniLM-L6-v2", missing) is None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "no fitted verifier" in said[0] and "missing" in said[0]


def test_a_verifier_applies_only_to_the_generator_and_embedder_it_was_fitted_for(tmp_path: Path) -> None:
    path = tmp_path / "verifier.json"
    fixed_verifier().save(path)
    assert Verifier.load(path) == fixed_verifier()
    assert for_models("qwen-1.5b", "all-MiniLM-L6-v2", path) == fixed_verifier()
    assert for_models("qwen-0.5b", "all-MiniLM-L6-v2", path) is None
    assert for_models("qwen-1.5b", "multilingual-e5-small", path) is None
    fixed_verifier(generator_sha256="0" * 64).save(path)
    assert "another build" in (fixed_verifier(generator_sha256="0" * 64).mismatch("qwen-1.5b", "all-MiniLM-L6-v2") or "")


def test_a_broken_verifier_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "verifier.json"
    path.write_text('{"inputs": ["a"]}')
    with pytest.raises(ValueError, match="is not a verifier") as error:
        Verifier.load(path)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="as many"):
        fixed_verifier(weights=(1.0,))


def test_the_committed_verifier_loads_and_applies_to_the_default_models() -> None:
    from rag.search.embedding import MINILM_NAME as DEFAULT_MODEL

    verifier = Verifier.load(FILE)
    assert verifier.mismatch("qwen-1.5b", DEFAULT_MODEL) is None
    assert set(verifier.inputs) <= {"log answer probability", "confidence", "support log-odds", *LEXICAL}
    assert 0.0 < verifier.threshold < 1.0


def test_the_committed_verifier_trusts_quotes_that_name_what_was_asked_more() -> None:
    """With the real weights: the same answer, its quotes carrying the question's names and words
    or not (the near-miss of issue 33: a minister of another country)."""
    verifier = Verifier.load(FILE)
    base = {"log answer probability": -0.05, "confidence": -0.3, "support log-odds": 2.5}
    about = dict(zip(LEXICAL, lexical(QUESTION, "Qatar's minister [1].", ["Belgium's interior minister met Qatar's minister in Doha in 2023."], FIRST, 0.55)))
    other = dict(zip(LEXICAL, lexical(QUESTION, "Qatar's minister [1].", ["Italy's Carabinieri met Qatar's agency on Wednesday."], FIRST, 0.55)))
    right, near = verifier.probability({**base, **about}), verifier.probability({**base, **other})
    assert right is not None and near is not None and right > near


def test_withholding_leaves_out_each_questions_own_paragraphs(index) -> None:  # type: ignore[no-untyped-def]
    """eval/verifier_collect.py's pool-withheld: the asked question loses its own paragraphs,
    other questions search the whole index."""
    from eval import fitting_data
    from eval import verifier_collect as collect

    question = "What does the bakery's rye loaf use?"
    everything = index.search(question, k=3)
    own = everything[0].doc_id
    withholding = collect.Withholding(index, {question: {own}})
    assert own not in {h.doc_id for h in withholding.search(question, k=3)}
    assert [h.doc_id for h in withholding.search("Something else?", k=3)] == [h.doc_id for h in index.search("Something else?", k=3)]
    assert len(withholding) == len(index) and withholding.settings == index.settings
    row = fitting_data.withheld({"id": "a", "question": question, "answers": ["a starter"], "sources": [own], "answerable": True})
    assert row["answerable"] is False and row["answers"] == [] and row["withheld_answers"] == ["a starter"]
    assert row["id"] == "a:withheld" and row["withheld_sources"] == [own]


# ---------------------------------------------------------------------- the probes (hidden states)

def probe_verifier(**changes: object) -> Verifier:
    probes = (Probe("prompt", 18, (1.0, -1.0, 0.5), 0.2), Probe("answer", 14, (0.0, 2.0, 0.0), -1.0))
    fields: dict[str, object] = dict(inputs=("support log-odds", "probe prompt L18", "probe answer L14"),
                                     mean=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0), weights=(1.0, 1.0, 1.0), bias=0.0,
                                     probes=probes)
    fields.update(changes)
    return fixed_verifier(**fields)


def test_a_probe_reads_a_hidden_state_as_log_odds() -> None:
    probe = Probe("prompt", 18, (1.0, -1.0, 0.5), 0.2)
    assert probe.name == "probe prompt L18" and probe.state == "prompt L18"
    assert probe.log_odds([2.0, 1.0, 2.0]) == pytest.approx(0.2 + 2.0 - 1.0 + 1.0)
    with pytest.raises(ValueError, match="reads 3 numbers, got 1"):
        probe.log_odds([1.0])
    with pytest.raises(ValueError, match="moment"):
        Probe("judge", 18, (1.0,), 0.0)


def test_a_probe_verifier_reads_all_its_probes_or_none(tmp_path: Path) -> None:
    verifier = probe_verifier()
    assert verifier.layers == (14, 18)
    hidden = {"prompt L18": (2.0, 1.0, 2.0), "answer L14": (0.0, 1.0, 0.0), "answer L18": (9.0, 9.0, 9.0)}
    read = verifier.read(hidden)
    assert read == {"probe prompt L18": pytest.approx(2.2), "probe answer L14": pytest.approx(1.0)}
    assert verifier.probability({"support log-odds": 0.0, **read}) == pytest.approx(1 / (1 + math.exp(-3.2)))
    assert verifier.read({"prompt L18": (2.0, 1.0, 2.0)}) is None  # a state missing: not scored with the probes
    path = tmp_path / "verifier-probe.json"
    verifier.save(path)
    assert Verifier.load(path) == verifier
    assert probe_layers("qwen-1.5b", "all-MiniLM-L6-v2", path) == (14, 18)
    assert probe_layers("qwen-1.5b", "all-MiniLM-L6-v2", tmp_path / "none.json") == ()  # no file: no states kept
    assert probe_layers("qwen-0.5b", "all-MiniLM-L6-v2", path) == ()  # fitted for another model


def test_an_answer_carrying_hidden_states_is_decided_by_the_probes(index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The assistant scores with rag/answer/verifier-probe.json when the generator kept the states its
    probes read, and falls back to the verifier without probes when it did not."""
    from rag.answer import assistant as answering
    from rag.answer import verifier as verifiers
    from rag.answer.assistant import Assistant

    from .conftest import JudgingGenerator

    path = tmp_path / "verifier-probe.json"
    probe = Probe("answer", 2, (1.0, 0.0), 0.0)
    fixed_verifier(inputs=(probe.name,), mean=(0.0,), scale=(1.0,), weights=(1.0,), bias=0.0, threshold=0.5,
                   embedder=index.settings.embedder, probes=(probe,)).save(path)
    monkeypatch.setattr(verifiers, "PROBE_FILE", path)

    def ask(hidden: dict[str, tuple[float, ...]]) -> answering.Answer:
        generator = JudgingGenerator("Lava flowed down the eastern slope [1].", hidden=hidden)
        generator.serves = "qwen-1.5b"  # type: ignore[attr-defined]  # scored as the bundled model
        return Assistant(index, generator=generator).ask("Where did the lava flow?")  # type: ignore[arg-type]

    sure, unsure, without = ask({"answer L2": (3.0, 0.0)}), ask({"answer L2": (-3.0, 0.0)}), ask({})
    assert sure.trust is not None and sure.trust.scorer == "probes" and not sure.refused
    assert sure.trust.signals.probes == {"probe answer L2": pytest.approx(3.0)}
    assert unsure.trust is not None and unsure.trust.scorer == "probes" and unsure.refused
    assert "not trusted enough" in (unsure.refusal_reason or "")
    assert without.trust is not None and without.trust.scorer != "probes"  # no states: the verifier without probes


def test_the_committed_probe_verifier_is_small_and_reads_qwen_15b_states() -> None:
    """rag/answer/verifier-probe.json: fitted for the bundled qwen-1.5b (1,536-wide hidden states) and
    the default embedder, one probe at the prompt's end and one at the answer's last token."""
    from rag.answer.verifier import PROBE_FILE
    from rag.search.embedding import MINILM_NAME as DEFAULT_MODEL

    verifier = Verifier.load(PROBE_FILE)
    assert PROBE_FILE.stat().st_size < 200_000
    assert verifier.mismatch("qwen-1.5b", DEFAULT_MODEL) is None
    assert sorted(p.moment for p in verifier.probes) == ["answer", "prompt"]
    assert all(len(p.weights) == 1536 and 0 <= p.layer < 28 for p in verifier.probes)
    assert {p.name for p in verifier.probes} <= set(verifier.inputs)
    assert probe_layers("qwen-1.5b", DEFAULT_MODEL) == verifier.layers
    # the probes' weight in the decision: a state along a probe's own direction raises the score
    probe = next(p for p in verifier.probes if p.moment == "prompt")
    neutral = {name: 0.0 for name in verifier.inputs}
    toward = verifier.read({p.state: tuple(0.0 for _ in p.weights) for p in verifier.probes} | {probe.state: probe.weights})
    assert toward is not None and toward[probe.name] > probe.bias
    low, high = verifier.probability({**neutral, probe.name: -5.0}), verifier.probability({**neutral, probe.name: 5.0})
    assert low is not None and high is not None and high > low
