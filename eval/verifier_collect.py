"""Collect what a fitted verifier learns from: each question answered as the product answers it,
with the generator's hidden states at chosen layers (issue 33).

For every question of a set, the assistant (qwen-1.5b in this process, the judge on, as
``rag eval`` runs it) answers, and a :class:`rag.generate.hidden.LayerTap` keeps the last token's hidden
state at each layer in ``--layers`` at three moments:

- ``prompt``: the end of the prompt (sources + question), before the first answer token: do
  these sources answer the question?
- ``answer``: the answer's last token: is this answer right?
- ``judge``: the end of the first judge turn ("Does this state that the answer to ... is ...?").

Each question's record (``records.jsonl``: the ``rag eval`` answer record plus ``in_prompt``,
whether a gold answer string is in the prompt the model saw) and its states (``states/ID.npz``,
float16, one array per moment of shape layers x width) are written as soon as it is answered, so
an interrupted run resumes where it stopped. Questions run in a fixed shuffled order, so the first
N of a partial run are a random sample of the set. Bulky: keep ``--out`` out of git (default
``.rag/verifier/<set>``).

    .venv/bin/python -m eval.verifier_collect pool --limit 1500     # the SQuAD 2.0 fitting pool
    .venv/bin/python -m eval.verifier_collect squad2                # a dev set (never fitted on)
    nice .venv/bin/python -m eval.verifier_collect all              # every set, in PLAN's order (resumable)

Fitting sets (:mod:`eval.fitting_data`: the pools and their variants, labelled by construction):
``pool``, ``pool-withheld``, ``pool-swap``, ``twowiki``, ``twowiki-withheld``, ``twowiki-half``,
``twowiki-swap``. A variant's left-out paragraphs are kept out of that question's search
(:class:`Withholding`).

Dev sets (never fitted on): ``seeds``, ``hotpotqa``, ``withheld`` (HotpotQA with half the gold
paragraphs withheld), ``squad2``, ``twowiki-dev`` (the 100 two-hop questions held out of the pool)
and ``twowiki-dev-half`` (the same with one supporting paragraph left out), and ``seeds-withheld``:
the seeds' answerable questions, each asked of an index of the seed articles without its own
(news-like, all unanswerable unless another article happens to say the same; ``withheld_in_prompt``
records whether a gold answer string still reached the prompt).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval import fitting_data
from eval.common import BENCHMARKS, DEV_SETS, ROOT, read_jsonl
from rag.evaluate.metrics import Setting, corpus_index_dir, load_gold, run
from rag.evaluate.metrics import normalize_answer as normalize

FITTING = ("pool", "pool-withheld", "pool-swap", "twowiki", "twowiki-withheld", "twowiki-half", "twowiki-swap")
DEV = {
    "seeds": DEV_SETS["seeds"],
    "hotpotqa": DEV_SETS["hotpotqa"],
    "withheld": (BENCHMARKS / "hotpotqa-withheld" / "gold.jsonl", BENCHMARKS / "hotpotqa-withheld" / "corpus.jsonl"),
    "squad2": DEV_SETS["squad2"],
    "seeds-withheld": DEV_SETS["seeds"],
}
SETS = [*FITTING, *DEV, "twowiki-dev", "twowiki-dev-half"]
LAYERS = (10, 14, 18, 22)  # of qwen-1.5b's 28 (0-27); issue 33 chose prompt L18 and answer L14 among 6, 10, 14, 18, 22, 27
MOMENTS = ("prompt", "answer", "judge")


class Recorder:
    """Wraps a generator so each question's three moments (see the module docstring) are kept."""

    def __init__(self, generator: Any, tap: Any) -> None:
        self.generator, self.tap = generator, tap
        self.name = generator.name
        self.reset()

    def reset(self) -> None:
        self.states: dict[str, dict[int, np.ndarray]] = {}
        self.prompt_text = ""

    def __getattr__(self, name: str) -> Any:  # stats, prime, ...: the generator's own
        return getattr(self.generator, name)

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None):  # noqa: ANN201
        self.prompt_text = messages[-1]["content"]
        with self.tap.armed() as rows:
            for piece in self.generator.stream(messages, max_tokens):
                if "prompt" not in self.states:
                    self.states["prompt"] = dict(rows)
                yield piece
            self.states.setdefault("prompt", dict(rows))
            self.states["answer"] = dict(rows)

    def next_token_probabilities(self, messages: list[dict[str, str]], candidates: Any) -> list[float]:
        if "judge" in self.states:
            return self.generator.next_token_probabilities(messages, candidates)
        with self.tap.armed() as rows:
            probabilities = self.generator.next_token_probabilities(messages, candidates)
        self.states["judge"] = dict(rows)
        return probabilities


def open_index(corpus: Path, rows: Sequence[dict[str, Any]] = ()) -> Any:
    """The index of ``corpus`` (built on first use), leaving out the paragraphs ``rows`` withhold."""
    from rag.search.index import Index

    index = Index.open(corpus_index_dir(corpus))
    index.add([corpus])
    left_out: dict[str, set[str]] = {}
    for row in rows:
        left_out.setdefault(row["question"], set()).update(row.get("withheld_sources", []))
    return Withholding(index, left_out) if any(left_out.values()) else index


class Withholding:
    """An index whose search leaves out each question's own paragraphs (``pool-withheld``):
    the paragraphs to leave out are looked up by the question's text, the one thing the
    assistant passes to ``search``. Everything else is the wrapped index's."""

    def __init__(self, index: Any, withheld: dict[str, set[str]]) -> None:
        self.index, self.withheld = index, withheld

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)

    def __len__(self) -> int:
        return len(self.index)

    def search(self, query: str, k: int = 5, **options: Any) -> list[Any]:
        left_out = self.withheld.get(query, set())
        hits = [h for h in self.index.search(query, k=k + 10 + len(left_out), **options) if h.doc_id not in left_out]
        return hits[:k]


def rows_of(name: str) -> tuple[list[dict[str, Any]], Path]:
    """The questions of a set (:data:`SETS`) and the corpus they are asked of."""
    if name in DEV:
        gold_path, corpus = DEV[name]
        return load_gold(gold_path), corpus
    return fitting_data.load_set(name)


def parts(name: str, gold: list[dict[str, Any]], corpus: Path) -> list[tuple[list[dict[str, Any]], Path]]:
    """The questions of a set grouped by the corpus they are asked of: one group, except for
    ``seeds-withheld``, where each article's questions go to a copy of the seeds without it."""
    if name != "seeds-withheld":
        return [(gold, corpus)]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in gold:
        if row.get("answerable", True) and row.get("sources"):
            groups.setdefault(tuple(sorted(row["sources"])), []).append(fitting_data.withheld(row))
    out = []
    for docs, rows in groups.items():
        folder = ROOT / ".rag" / "seeds-withheld" / "+".join(docs)
        folder.mkdir(parents=True, exist_ok=True)
        for article in corpus.glob("*.txt"):
            if article.stem not in docs and not (folder / article.name).exists():
                (folder / article.name).write_bytes(article.read_bytes())
        out.append((rows, folder))
    return out


def without_judge(assistant: Any, question: str, raw: str) -> dict[str, Any]:
    """What the checks give ``raw`` without the judge: the quotes it cites by shared words (the
    verifier's lexical inputs read them) and whether any sentence is supported (an answer with
    none is never shown). The prompt is rebuilt: the same search, no generator."""
    from rag.answer.citations import verify

    if not raw:
        return {"quotes": [], "supported_without_judge": False}
    sources = assistant.prompt(question, assistant.retrieve(question)).sources
    _, sentences, citations = verify(raw, sources, question)
    return {"quotes": [c.quote for c in citations], "supported_without_judge": any(s.supported for s in sentences)}


def in_prompt(gold: dict[str, Any], prompt: str) -> bool:
    """Whether a gold answer string is in the prompt the model saw (its sources and question)."""
    text = normalize(prompt)
    return bool(gold.get("answerable", True)) and any(normalize(a) and normalize(a) in text for a in gold.get("answers", []))


# `all`: every set in the order the fitting needs them, each up to its limit (None: all of it); run
# again, it resumes where it stopped. The dev sets first (every curve is read on them), then the
# two-hop pool and its variants, then the SQuAD 2.0 pool in growing slices and its variants.
PLAN: tuple[tuple[str, int | None], ...] = (
    ("seeds", None), ("seeds-withheld", None), ("squad2", 150), ("hotpotqa", None), ("withheld", None),
    ("twowiki-dev", None), ("twowiki-dev-half", None),
    ("twowiki", None), ("twowiki-half", 300), ("twowiki-swap", None),
    ("pool", 1000), ("pool-withheld", 300), ("pool-swap", 300), ("twowiki-withheld", 200), ("pool", 2000), ("pool", None),
)


def collect(name: str, limit: int | None, layers: tuple[int, ...], out: Path | None, model: Any = None) -> Any:
    """Answer the first ``limit`` questions of set ``name`` not yet collected, keeping their states
    (see the module docstring); returns the (tapped) generator, for the next set to reuse."""
    from rag.answer.assistant import Assistant

    gold, corpus = rows_of(name)
    out = out or ROOT / ".rag" / "verifier" / name
    (out / "states").mkdir(parents=True, exist_ok=True)
    random.Random(0).shuffle(gold)
    gold = gold[:limit]
    records = out / "records.jsonl"
    done = {row["id"] for row in read_jsonl(records)} if records.exists() else set()
    groups = [([g for g in rows if str(g["id"]) not in done], where) for rows, where in parts(name, gold, corpus)]
    left = sum(len(rows) for rows, _ in groups)
    print(f"{name}: {len(done)} done, {left} to go", file=sys.stderr, flush=True)
    if not left:
        return model
    if model is None:
        from rag.core.bundled import gguf_path
        from rag.generate.base import GenerationSettings
        from rag.generate.hidden import LayerTap
        from rag.generate.llamacpp import LlamaCppGenerator

        tap = LayerTap(layers)
        model = Recorder(LlamaCppGenerator(gguf_path("qwen-1.5b"), GenerationSettings(), name="qwen-1.5b", tap=tap), tap)
    recorder = model
    started, count = time.perf_counter(), 0
    with records.open("a", encoding="utf-8") as sink:
        for todo, where in groups:
            if not todo:
                continue
            index = open_index(where, todo)
            assistant = Assistant(index, generator=recorder)
            assistant.load()
            questions = iter(todo)
            recorder.reset()
            for record in run(todo, index, Setting(), assistant):
                row = next(questions)
                states = {m: np.stack([recorder.states[m][layer] for layer in layers]).astype(np.float16)
                          for m in MOMENTS if m in recorder.states and len(recorder.states[m]) == len(layers)}
                np.savez(out / "states" / f"{record.id}.npz", layers=np.array(layers), **states)
                line = {**record.to_dict(), "set": name, "answerable": record.answerable,
                        "candidate_correct": record.candidate_correct(), "in_prompt": in_prompt(row, recorder.prompt_text),
                        "moments": sorted(states), "variant": row.get("variant"), "pool": row.get("pool"),
                        **without_judge(assistant, record.question, record.raw or "")}
                if "withheld_answers" in row:
                    line["withheld_in_prompt"] = in_prompt({"answers": row["withheld_answers"]}, recorder.prompt_text)
                sink.write(json.dumps(line, ensure_ascii=False) + "\n")
                sink.flush()
                recorder.reset()
                count += 1
                if count % 10 == 0:
                    rate = (time.perf_counter() - started) / count
                    print(f"{name}: {count}/{left}, {rate:.1f} s a question", file=sys.stderr, flush=True)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", choices=[*SETS, "all"], help="a set, or all of them in PLAN's order (resumable)")
    parser.add_argument("--limit", type=int, default=None, help="the first N questions of the shuffled order")
    parser.add_argument("--layers", default=",".join(map(str, LAYERS)))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    layers = tuple(int(x) for x in args.layers.split(","))
    if args.set != "all":
        collect(args.set, args.limit, layers, args.out)
        return
    model = None
    for name, limit in PLAN:
        model = collect(name, limit, layers, None, model)


if __name__ == "__main__":
    main()
