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

Sets: ``pool`` (../shared/benchmarks/squad2-fit, over the squad2 corpus), ``seeds``,
``hotpotqa``, ``withheld`` (HotpotQA with half the gold paragraphs withheld), ``squad2``, and
``seeds-withheld``: the seeds' answerable questions, each asked of an index of the seed articles
without its own (news-like, all unanswerable unless another article happens to say the same;
``withheld_in_prompt`` records whether a gold answer string still reached the prompt); and
``pool-withheld``, for fitting: the pool's answerable questions with their own paragraphs kept out
of the search (:class:`Withholding`), so the model meets the neighbouring paragraphs alone.
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

from eval.common import BENCHMARKS, DEV_SETS, ROOT, read_jsonl
from rag.evaluate.metrics import Setting, corpus_index_dir, load_gold, run
from rag.evaluate.metrics import normalize_answer as normalize

# The SQuAD 2.0 fitting pool: its own questions, asked of the squad2 dev set's corpus.
POOL = (ROOT.parent / "shared" / "benchmarks" / "squad2-fit" / "gold.jsonl", DEV_SETS["squad2"][1])
SETS = {
    "pool": POOL,
    "seeds": DEV_SETS["seeds"],
    "hotpotqa": DEV_SETS["hotpotqa"],
    "withheld": (BENCHMARKS / "hotpotqa-withheld" / "gold.jsonl", BENCHMARKS / "hotpotqa-withheld" / "corpus.jsonl"),
    "squad2": DEV_SETS["squad2"],
    "seeds-withheld": DEV_SETS["seeds"],
    "pool-withheld": POOL,
}
LAYERS = (6, 10, 14, 18, 22, 27)  # of qwen-1.5b's 28 (0-27); 27 is the last, before the output norm
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
        hits = [h for h in self.index.search(query, k=k + 10, **options) if h.doc_id not in left_out]
        return hits[:k]


def withheld(row: dict[str, Any]) -> dict[str, Any]:
    """An answerable question turned unanswerable: its gold answers kept aside."""
    return {**row, "answerable": False, "answers": [], "withheld_answers": row["answers"],
            "withheld_sources": row.get("sources", [])}


def parts(name: str, gold: list[dict[str, Any]], corpus: Path) -> list[tuple[list[dict[str, Any]], Path]]:
    """The questions of a set grouped by the corpus they are asked of: one group, except for
    ``seeds-withheld``, where each article's questions go to a copy of the seeds without it."""
    if name == "pool-withheld":
        return [([withheld(row) for row in gold if row.get("answerable", True) and row.get("sources")], corpus)]
    if name != "seeds-withheld":
        return [(gold, corpus)]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in gold:
        if row.get("answerable", True) and row.get("sources"):
            groups.setdefault(tuple(sorted(row["sources"])), []).append(withheld(row))
    out = []
    for docs, rows in groups.items():
        folder = ROOT / ".rag" / "seeds-withheld" / "+".join(docs)
        folder.mkdir(parents=True, exist_ok=True)
        for article in corpus.glob("*.txt"):
            if article.stem not in docs and not (folder / article.name).exists():
                (folder / article.name).write_bytes(article.read_bytes())
        out.append((rows, folder))
    return out


def in_prompt(gold: dict[str, Any], prompt: str) -> bool:
    """Whether a gold answer string is in the prompt the model saw (its sources and question)."""
    text = normalize(prompt)
    return bool(gold.get("answerable", True)) and any(normalize(a) and normalize(a) in text for a in gold.get("answers", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", choices=sorted(SETS))
    parser.add_argument("--limit", type=int, default=None, help="the first N questions of the shuffled order")
    parser.add_argument("--layers", default=",".join(map(str, LAYERS)))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from rag.answer.assistant import Assistant
    from rag.core.bundled import gguf_path
    from rag.generate.base import GenerationSettings
    from rag.generate.hidden import LayerTap
    from rag.generate.llamacpp import LlamaCppGenerator

    gold_path, corpus = SETS[args.set]
    out = args.out or ROOT / ".rag" / "verifier" / args.set
    (out / "states").mkdir(parents=True, exist_ok=True)
    gold = load_gold(gold_path)
    random.Random(0).shuffle(gold)
    gold = gold[: args.limit]
    records = out / "records.jsonl"
    done = {row["id"] for row in read_jsonl(records)} if records.exists() else set()
    groups = [([g for g in rows if str(g["id"]) not in done], where) for rows, where in parts(args.set, gold, corpus)]
    left = sum(len(rows) for rows, _ in groups)
    print(f"{args.set}: {len(done)} done, {left} to go", file=sys.stderr)
    if not left:
        return
    layers = tuple(int(x) for x in args.layers.split(","))
    tap = LayerTap(layers)
    generator = LlamaCppGenerator(gguf_path("qwen-1.5b"), GenerationSettings(), name="qwen-1.5b", tap=tap)
    recorder = Recorder(generator, tap)
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
                line = {**record.to_dict(), "set": args.set, "answerable": record.answerable,
                        "candidate_correct": record.candidate_correct(), "in_prompt": in_prompt(row, recorder.prompt_text),
                        "moments": sorted(states)}
                if "withheld_answers" in row:
                    line["withheld_in_prompt"] = in_prompt({"answers": row["withheld_answers"]}, recorder.prompt_text)
                sink.write(json.dumps(line, ensure_ascii=False) + "\n")
                sink.flush()
                recorder.reset()
                count += 1
                if count % 10 == 0:
                    rate = (time.perf_counter() - started) / count
                    print(f"{args.set}: {count}/{left}, {rate:.1f} s a question", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
