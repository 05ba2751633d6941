"""Compare two `rag eval` runs of the same questions, question by question.

Greedy answers change with any change to the prompt, often both ways: a set's accuracy can stay
put while a sixth of its answers flip. This counts, per set, the questions only one run got right
(what the reader sees: an answerable question's shown answer is right, an unanswerable one is
refused) and gives the exact two-sided sign test on those flips, so a difference of a few
questions can be told from the churn:

    .venv/bin/python -m eval.paired \\
        seeds=eval/results/final-seeds/qwen-1.5b-hybrid-k4/answers.jsonl,eval/results/prompt140-seeds/answers.jsonl \\
        hotpotqa=eval/results/final-hotpotqa/answers.jsonl,eval/results/p140-hotpotqa/answers.jsonl

Each argument is NAME=A,B (two `answers.jsonl`); the output is a markdown table (``--out`` also
writes it to a file).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from eval.common import read_jsonl


def right(row: dict) -> bool:
    """What the reader got right: a shown right answer, or a refusal of an unanswerable question."""
    if row["answerable"]:
        return not row["refused"] and bool(row["candidate_correct"])
    return bool(row["refused"])


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided p of ``wins`` against ``losses`` flips if either run were as likely to win."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Pairing:
    questions: int
    right_a: int
    right_b: int
    only_a: int
    only_b: int
    tokens_a: float | None
    tokens_b: float | None
    same: int | None = None  # questions both runs decided alike (both shown or both withheld)
    identical: int | None = None  # questions answered identically (see `answered_alike`)

    @property
    def p(self) -> float:
        return sign_test(self.only_b, self.only_a)


def answered_alike(x: dict, y: dict) -> bool:
    """The same text, refusal, citations (document and span), trust score and token counts: what a
    change that must not alter behaviour (a refactor) has to leave as it was."""
    def seen(row: dict) -> tuple:
        trust = row.get("trust") or {}
        return (row["answer"], row["refused"], row.get("raw"), row.get("tokens"),
                [(c["doc_id"], c["start"], c["end"], c["supported"]) for c in row["citations"]],
                trust.get("score") if isinstance(trust, dict) else trust)
    return seen(x) == seen(y)


def pair(a: list[dict], b: list[dict]) -> Pairing:
    """Pair the rows of two runs by question; the runs must ask the same questions in order."""
    if [r["question"] for r in a] != [r["question"] for r in b]:
        raise ValueError("the two runs do not ask the same questions in the same order")
    ra, rb = [right(r) for r in a], [right(r) for r in b]

    def tokens(rows: list[dict]) -> float | None:
        counts = [r["tokens"]["prompt"] for r in rows if r.get("tokens")]
        return statistics.median(counts) if counts else None

    return Pairing(len(a), sum(ra), sum(rb), sum(x and not y for x, y in zip(ra, rb)),
                   sum(y and not x for x, y in zip(ra, rb)), tokens(a), tokens(b),
                   sum(x["refused"] == y["refused"] for x, y in zip(a, b)),
                   sum(answered_alike(x, y) for x, y in zip(a, b)))


def table(pairs: dict[str, Pairing]) -> str:
    lines = ["| set | questions | right, A | right, B | only A | only B | sign test p | prompt tokens p50, A -> B "
             "| same show/withhold | identical answers |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in pairs.items():
        tok = "-" if p.tokens_a is None or p.tokens_b is None else f"{p.tokens_a:g} -> {p.tokens_b:g}"
        same = "-" if p.same is None else f"{p.same} ({100 * p.same / max(1, p.questions):.0f}%)"
        identical = "-" if p.identical is None else f"{p.identical} ({100 * p.identical / max(1, p.questions):.0f}%)"
        lines.append(f"| {name} | {p.questions} | {p.right_a} | {p.right_b} | {p.only_a} | {p.only_b} | "
                     f"{p.p:.2f} | {tok} | {same} | {identical} |")
    if len(pairs) > 1:
        ps = pairs.values()
        total = Pairing(sum(p.questions for p in ps), sum(p.right_a for p in ps), sum(p.right_b for p in ps),
                        sum(p.only_a for p in ps), sum(p.only_b for p in ps), None, None)
        lines.append(f"| all | {total.questions} | {total.right_a} | {total.right_b} | {total.only_a} | "
                     f"{total.only_b} | {total.p:.2f} | - | - | - |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=A/answers.jsonl,B/answers.jsonl")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    pairs = {}
    for spec in args.runs:
        name, _, paths = spec.partition("=")
        files = paths.split(",")
        if not name or len(files) != 2:
            sys.exit(f"error: expected NAME=A,B, got {spec!r}")
        try:
            pairs[name] = pair(read_jsonl(files[0]), read_jsonl(files[1]))
        except (OSError, ValueError, KeyError) as exc:
            sys.exit(f"error: {name}: {exc}")
    text = table(pairs)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text, end="")


if __name__ == "__main__":
    main()
