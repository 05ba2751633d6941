"""Decided: no second pass for two named things (HotpotQA all@4 0.55 -> 0.58, seeds and SQuAD unchanged).

A second retrieval pass for questions that name two things, measured (and not kept).

For a question with two or more named things (runs of capitalised words, split at "and",
in a question with "and", "or" or "both": "Were Scott Derrickson and Ed Wood of the same
nationality?"), each named thing that no passage of the top k mentions is searched on its own
and its best passage that mentions it replaces the lowest passage that is not the only one
covering another named thing. This prints all-gold-in-top-k with and without the pass on the
three dev sets. Result (eval/README.md, "Embedders and fusion weights"): HotpotQA 0.55 -> 0.58
with MiniLM and 0.65 -> 0.66 with e5-small-q4, seeds and SQuAD unchanged; not kept.

    .venv/bin/python -m eval.experiments.named_things --embedder minilm
"""

from __future__ import annotations

import argparse
import re

from eval.common import DEV_SETS
from rag.core.types import Hit
from rag.evaluate.metrics import corpus_index_dir, load_gold
from rag.search.index import Index

K = 4
LEADING = {"were", "are", "is", "was", "which", "who", "what", "when", "where", "did", "do", "does", "how", "in",
           "the", "a", "an", "both", "whose", "has", "have", "according"}
SPAN = re.compile(r"[A-Z0-9][\w'’.&-]*(?:\s+(?:(?:of|the|de|and|for|von|van|la|le)\s+)?[A-Z0-9][\w'’.&-]*)*")


def named_things(question: str) -> list[str]:
    """The named things of a comparison-like question, or [] when it names fewer than two."""
    if not re.search(r"\b(and|or|both)\b", question):
        return []
    things = []
    for match in SPAN.finditer(question):
        words = match.group(0).split()
        while words and words[0].lower() in LEADING:
            words = words[1:]
        things += [t.strip("?.,") for t in re.split(r"\s+and\s+", " ".join(words)) if t.strip("?.,")]
    return things if len(things) >= 2 else []


def mentions(thing: str, hits: list[Hit]) -> bool:
    return any(thing.lower() in f"{h.title} {h.text}".lower() for h in hits)


def second_pass(index: Index, question: str, hits: list[Hit]) -> list[Hit]:
    things = named_things(question)
    hits = list(hits[:K])
    for thing in things:
        if mentions(thing, hits):
            continue
        shown = {h.chunk_id for h in hits}
        extra = [h for h in index.search(thing, k=3) if h.chunk_id not in shown and mentions(thing, [h])]
        if not extra:
            continue
        for i in range(len(hits) - 1, -1, -1):
            rest = hits[:i] + hits[i + 1 :]
            if not any(t != thing and mentions(t, [hits[i]]) and not mentions(t, rest) for t in things):
                hits[i] = extra[0]
                break
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="minilm")
    args = parser.parse_args()
    for name, (gold_path, corpus) in DEV_SETS.items():
        index = Index.open(corpus_index_dir(corpus, args.embedder), embedder=args.embedder, create=False)
        gold = [g for g in load_gold(gold_path) if g["answerable"] and g["sources"]]
        before = after = fired = 0
        for g in gold:
            hits = index.search(g["question"], k=K)
            sources = set(g["sources"])
            before += sources <= {h.doc_id for h in hits}
            after += sources <= {h.doc_id for h in second_pass(index, g["question"], hits)}
            fired += bool(named_things(g["question"]))
        print(f"{args.embedder} {name}: all gold in top {K} {before / len(gold):.2f} -> {after / len(gold):.2f} "
              f"(the pass fired on {fired} of {len(gold)} questions)")


if __name__ == "__main__":
    main()
