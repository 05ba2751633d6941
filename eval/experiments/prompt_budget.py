"""Decided: the sources stay at 200 words, a title on each: no cut gave 30% fewer tokens at equal accuracy.

Prompt tokens against answers: how small can the sources part of the prompt get?

Every prompt token after the cached prefix costs time before the first answer token, so this
sweeps the sentence budget (words of sources) and the source labels, and measures per dev set:

- without a model (``--no-model``): context recall (the gold answer is inside the prompt's
  sources; yes/no answers skipped) and prompt tokens after the cached prefix, counted with the
  bundled model's tokenizer;
- with the model: also the model's own answer accuracy (before any check withholds it; the checks
  are measured separately), first token and total time.

    .venv/bin/python -m eval.experiments.prompt_budget --no-model                  # minutes, no model
    .venv/bin/python -m eval.experiments.prompt_budget --budgets 200,140 --limit 60   # answers (model-heavy)
    .venv/bin/python -m eval.experiments.prompt_budget --no-model --embedder e5-small-q4 --out eval/results/embedders

Writes ``eval/results/prompt_budget.json`` and ``prompt_budget.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from eval.common import DEV_SETS, ROOT
from rag.answer import prompting
from rag.answer.prompting import LABELS
from rag.evaluate.metrics import corpus_index_dir, is_correct, load_gold, strip_markers
from rag.search.index import Index


def open_index(name: str, corpus: Path, embedder: str | None = None) -> Index:
    """The dev set's index: the default one for the seeds (``rag index seeds``), else the
    corpus's own (``rag eval --corpus``); with ``embedder``, the corpus index of that embedder
    (the seeds' too)."""
    if name == "seeds" and embedder is None:
        return Index.open(ROOT / ".rag" / "index", create=False)
    index = Index.open(corpus_index_dir(corpus, embedder), embedder=embedder)
    index.add([corpus])
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", default="100,130,160,200", help="source words, comma-separated")
    parser.add_argument("--labels", default=",".join(LABELS), help=f"source labels: {', '.join(LABELS)}")
    parser.add_argument("--sets", default=",".join(DEV_SETS))
    parser.add_argument("--limit", type=int, default=None, help="first N questions of each set")
    parser.add_argument("--no-model", action="store_true", help="context recall and tokens only")
    parser.add_argument("--embedder", default=None, help="an embedder of rag index --embedder (default: the index's own)")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    labels = args.labels.split(",")

    from rag.answer.assistant import Assistant
    from rag.core.bundled import gguf_path

    assistant = None
    if args.no_model:
        from llama_cpp import Llama

        vocab = Llama(model_path=str(gguf_path("qwen-1.5b")), vocab_only=True, verbose=False)
        count = lambda text: len(vocab.tokenize(text.encode(), add_bos=False, special=True))  # noqa: E731
    rows = []
    for name in args.sets.split(","):
        gold_path, corpus = DEV_SETS[name]
        index = open_index(name, corpus, args.embedder)
        gold = load_gold(gold_path)[: args.limit]
        if not args.no_model:
            assistant = Assistant(index, generator=assistant.generator if assistant else None, judge=False)
            generator = assistant.load()
        for label in labels:
            for budget in budgets:
                found, tokens, right, first, total, answerable = 0, [], 0, [], [], 0
                for row in gold:
                    hits = index.search(row["question"], k=4)
                    sources = prompting.select_sources(row["question"], hits, index.embedder, budget_words=budget)
                    prompt = prompting.build_prompt(row["question"], sources, label_titles=label)
                    user = prompt.messages[-1]["content"]
                    if row["answerable"]:
                        answerable += 1
                        found += is_correct(" ".join(s.text for s in sources), row)
                    if args.no_model:
                        tokens.append(count(user) + 8)  # the user and assistant turn markers
                        continue
                    started = time.perf_counter()
                    pieces, first_s = [], None
                    for piece in generator.stream(list(prompt.messages)):
                        first_s = first_s or time.perf_counter() - started
                        pieces.append(piece)
                    stats = generator.stats  # type: ignore[attr-defined]
                    tokens.append(stats.prompt_tokens - stats.cached_tokens)
                    first.append(first_s or 0.0)
                    total.append(time.perf_counter() - started)
                    right += row["answerable"] and is_correct(strip_markers("".join(pieces)), row)
                result = {"set": name, "label": label, "budget": budget, "questions": len(gold),
                          "context_recall": found / answerable if answerable else None,
                          "prompt_tokens_p50": statistics.median(tokens)}
                if not args.no_model:
                    result |= {"accuracy": right / answerable if answerable else None,
                               "first_token_p50": statistics.median(first), "total_p50": statistics.median(total)}
                rows.append(result)
                print(json.dumps(result), flush=True)
    stem = "prompt_budget_recall" if args.no_model else "prompt_budget"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    keys = ["context_recall", "prompt_tokens_p50"] + ([] if args.no_model else ["accuracy", "first_token_p50", "total_p50"])
    lines = [f"# Prompt budget ({'no model' if args.no_model else 'qwen-1.5b'})", "",
             f"`{' '.join(['python', '-m', 'eval.experiments.prompt_budget', *sys.argv[1:]])}`", "",
             "| set | labels | budget (words) | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]
    for r in rows:
        cells = ["–" if r[k] is None else (f"{r[k]:.0f}" if k == "prompt_tokens_p50" else f"{r[k]:.2f}") for k in keys]
        lines.append(f"| {r['set']} | {r['label']} | {r['budget']} | " + " | ".join(cells) + " |")
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
