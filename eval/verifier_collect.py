"""Collect what a fitted verifier learns from: each question answered as the product answers it,
with the generator's hidden states at chosen layers (issue 33).

For every question of a set, the assistant (qwen-1.5b in this process, the judge on, as
``rag eval`` runs it) answers, and a :class:`rag.hidden.LayerTap` keeps the last token's hidden
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

    .venv/bin/python eval/verifier_collect.py pool --limit 1500     # the SQuAD 2.0 fitting pool
    .venv/bin/python eval/verifier_collect.py squad2                # a dev set (never fitted on)

Sets: ``pool`` (../shared/benchmarks/squad2-fit, over the squad2 corpus), ``seeds``,
``hotpotqa``, ``withheld`` (HotpotQA with half the gold paragraphs withheld), ``squad2``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.evaluation import Setting, corpus_index_dir, load_gold, normalize, run  # noqa: E402

BENCH = ROOT / "eval" / "benchmarks"
SETS = {
    "pool": (ROOT.parent / "shared" / "benchmarks" / "squad2-fit" / "gold.jsonl", BENCH / "squad2" / "corpus.jsonl"),
    "seeds": (ROOT / "eval" / "gold" / "seeds.jsonl", ROOT / "seeds"),
    "hotpotqa": (BENCH / "hotpotqa" / "gold.jsonl", BENCH / "hotpotqa" / "corpus.jsonl"),
    "withheld": (BENCH / "hotpotqa-withheld" / "gold.jsonl", BENCH / "hotpotqa-withheld" / "corpus.jsonl"),
    "squad2": (BENCH / "squad2" / "gold.jsonl", BENCH / "squad2" / "corpus.jsonl"),
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


def open_index(corpus: Path) -> Any:
    from rag.index import Index

    index = Index.open(corpus_index_dir(corpus))
    index.add([corpus])
    return index


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
    from rag.answering import Assistant
    from rag.generation import GenerationSettings, LlamaCppGenerator
    from rag.hidden import LayerTap
    from rag.models import gguf_path

    gold_path, corpus = SETS[args.set]
    out = args.out or ROOT / ".rag" / "verifier" / args.set
    (out / "states").mkdir(parents=True, exist_ok=True)
    gold = load_gold(gold_path)
    random.Random(0).shuffle(gold)
    gold = gold[: args.limit]
    records = out / "records.jsonl"
    done = {json.loads(line)["id"] for line in records.read_text().splitlines()} if records.exists() else set()
    todo = [g for g in gold if str(g["id"]) not in done]
    print(f"{args.set}: {len(done)} done, {len(todo)} to go", file=sys.stderr)
    if not todo:
        return
    layers = tuple(int(x) for x in args.layers.split(","))
    tap = LayerTap(layers)
    generator = LlamaCppGenerator(gguf_path("qwen-1.5b"), GenerationSettings(), name="qwen-1.5b", tap=tap)
    recorder = Recorder(generator, tap)
    index = open_index(corpus)
    assistant = Assistant(index, generator=recorder)  # type: ignore[arg-type]
    assistant.load()
    started = time.perf_counter()
    questions = iter(todo)
    with records.open("a", encoding="utf-8") as sink:
        recorder.reset()
        for count, record in enumerate(run(todo, index, Setting(), assistant), start=1):
            row = next(questions)
            states = {m: np.stack([recorder.states[m][layer] for layer in layers]).astype(np.float16)
                      for m in MOMENTS if m in recorder.states and len(recorder.states[m]) == len(layers)}
            np.savez(out / "states" / f"{record.id}.npz", layers=np.array(layers), **states)
            line = {**record.to_dict(), "set": args.set, "answerable": record.answerable,
                    "candidate_correct": record.candidate_correct(), "in_prompt": in_prompt(row, recorder.prompt_text),
                    "moments": sorted(states)}
            sink.write(json.dumps(line, ensure_ascii=False) + "\n")
            sink.flush()
            recorder.reset()
            if count % 10 == 0:
                rate = (time.perf_counter() - started) / count
                print(f"{args.set}: {count}/{len(todo)}, {rate:.1f} s a question", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
