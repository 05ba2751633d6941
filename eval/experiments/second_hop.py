"""Retrieval that follows a question's second hop: which strategy puts every gold paragraph in the prompt?

No model runs: each question is searched, a second round may be added, and the prompt's sources are
selected as the product selects them (rag/answer/prompting.py, 200 words); the figure is the share of
answerable questions whose every gold document reached the prompt's sources, with the prompt's words
and the added search time. Strategies:

- ``base``: today (k=4 passages, one search);
- ``k6``: six passages into the same word budget;
- ``bridge``: the page (a document titled with it) of each name the first round's passages mention
  and the question does not (the bridge entity);
- ``split``: the page of each thing a comparison question names ("A or B?", "both A and B");
- ``hops``: split and bridge together, as rag/search/hops.py does (no page, no second hop: a news
  corpus's titles are headlines);
- ``hops+k6``: the same after a first round of six passages.

Where a strategy added passages, the prompt gets ``HOP_WORDS`` more words and each added passage keeps
its best sentence (rag/answer/prompting.py).

Sets: the two-hop fitting pool (``twowiki``: choose here), HotpotQA dev and the held-out two-hop
questions (``twowiki-dev``: report), and the single-passage dev sets (seeds, squad2), where the
prompt should not change.

    .venv/bin/python -m eval.experiments.second_hop              # writes eval/results/second_hop.{json,md}
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval import fitting_data
from eval.common import BENCHMARKS, DEV_SETS, ROOT, git
from rag.answer import prompting
from rag.core.types import Hit
from rag.evaluate.metrics import corpus_index_dir, load_gold
from rag.search import hops
from rag.search.index import Index

Strategy = Callable[[Index, str], list[Hit]]
FIRST_ROUND = {"k6": 6, "wider": 6}  # the first round's passages, by strategy function (else 4): the rest were added


def strategies(k: int) -> dict[str, Strategy]:
    def base(index: Index, q: str) -> list[Hit]:
        return index.search(q, k=k)

    def k6(index: Index, q: str) -> list[Hit]:
        return index.search(q, k=6)

    def bridge(index: Index, q: str) -> list[Hit]:
        first = index.search(q, k=k)
        return hops.merge(first, hops.bridge_hits(index, q, first), k + hops.MAX_HOPS)

    def split(index: Index, q: str) -> list[Hit]:
        first = index.search(q, k=k)
        return hops.merge(first, hops.entity_hits(index, q), k + hops.MAX_HOPS)

    def both(index: Index, q: str) -> list[Hit]:
        first = index.search(q, k=k)
        return [*first, *hops.follow(index, q, first)]

    def wider(index: Index, q: str) -> list[Hit]:
        first = index.search(q, k=6)
        return [*first, *hops.follow(index, q, first)]

    return {"base": base, "k6": k6, "bridge": bridge, "split": split, "hops": both, "hops+k6": wider}


def open_index(corpus: Path) -> Index:
    index = Index.open(corpus_index_dir(corpus))
    index.add([corpus])
    return index


def sets(limit: int | None) -> dict[str, tuple[list[dict[str, Any]], Path]]:
    out: dict[str, tuple[list[dict[str, Any]], Path]] = {}
    for name in ("twowiki", "twowiki-dev"):
        rows, corpus = fitting_data.load_set(name)
        out[name] = (rows[:limit], corpus)
    for name in ("hotpotqa", "hotpotqa-withheld", "seeds", "squad2"):
        gold, corpus = DEV_SETS[name] if name in DEV_SETS else (BENCHMARKS / name / "gold.jsonl", BENCHMARKS / name / "corpus.jsonl")
        out[name] = ([r for r in load_gold(gold) if r.get("answerable", True)][:limit], corpus)
    return out


def measure(index: Index, rows: list[dict[str, Any]], strategy: Strategy, base: Strategy, count_changes: bool) -> dict[str, Any]:
    found, words, spent, changed = [], [], [], 0
    for row in rows:
        if not row.get("sources"):
            continue
        started = time.perf_counter()
        hits = strategy(index, row["question"])
        spent.append(time.perf_counter() - started)
        first = FIRST_ROUND.get(strategy.__name__, 4)
        added = len(hits) > first
        sources = prompting.select_sources(row["question"], hits, index.embedder,
                                           prompting.CONTEXT_WORDS + (prompting.HOP_WORDS if added else 0),
                                           hops_from=first if added else None)
        docs = {s.hit.doc_id for s in sources}
        found.append(set(row["sources"]) <= docs)
        words.append(sum(len(s.text.split()) for s in sources))
        if strategy is not base and count_changes:  # the product's prompt before: base, 200 words
            before = prompting.select_sources(row["question"], base(index, row["question"]), index.embedder)
            changed += [s.text for s in before] != [s.text for s in sources]
    return {"questions": len(found), "all_gold_in_prompt": round(statistics.fmean(found), 3),
            "prompt_words": round(statistics.fmean(words), 1), "search_ms_p50": round(1000 * statistics.median(spent), 1),
            "prompts_changed": changed if count_changes else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=100, help="questions per set (default 100)")
    parser.add_argument("--only", default="", help="comma-separated strategies (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "second_hop")
    args = parser.parse_args()
    chosen = strategies(4)
    if args.only:
        chosen = {n: chosen[n] for n in ["base", *args.only.split(",")] if n in chosen}
    results: dict[str, dict[str, Any]] = {}
    for name, (rows, corpus) in sets(args.limit).items():
        index = Index.open(ROOT / ".rag" / "index", create=False) if name == "seeds" else open_index(corpus)
        single = name in ("seeds", "squad2")  # where the prompt should not change: count the prompts that did
        results[name] = {s: measure(index, rows, f, chosen["base"], single) for s, f in chosen.items()}
        print(name, json.dumps({s: (m["all_gold_in_prompt"], m["prompt_words"]) for s, m in results[name].items()}), flush=True)
    report = {"command": "python -m eval.experiments.second_hop", "code": git("describe", "--always", "--dirty"),
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    names = list(chosen)
    lines = ["# Second hop: every gold document in the prompt", "", f"`{report['command']}` at {report['code']}.", "",
             "| set | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for set_name, by in results.items():
        lines.append(f"| {set_name} | " + " | ".join(
            f"{by[n]['all_gold_in_prompt']:.2f} ({by[n]['prompt_words']:.0f} w"
            + ("" if by[n]["prompts_changed"] is None else f", {by[n]['prompts_changed']} changed") + ")" for n in names) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
