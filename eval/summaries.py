"""Summaries of the seed articles: checked sentences, key facts covered, and how fast (issue 47).

For each article of ``eval/gold/summaries.jsonl`` (a short list of key facts per seed article, each
with the words any of which shows it is covered), ``Assistant.summarize_stream`` is timed from the
request: the first sentence streamed, and the whole checked summary. Reported per article: the
share of the sentences the model wrote that the checks supported (kept), the key facts the kept
summary covers, and the times; and one comparison of two articles.

    .venv/bin/python -m eval.summaries          # writes eval/results/summaries.{json,md}

Run it alone on the machine: the model uses both cores.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from eval.common import ROOT, cpu_name, git, read_jsonl

GOLD = ROOT / "eval" / "gold" / "summaries.jsonl"
OUT = ROOT / "eval" / "results" / "summaries"


def covered(text: str, facts: list[dict[str, Any]]) -> list[bool]:
    """Per key fact, whether any of its words is in ``text`` (case-insensitive)."""
    lower = text.lower()
    return [any(word.lower() in lower for word in fact["any"]) for fact in facts]


def main() -> None:
    from rag.answer.assistant import Assistant
    from rag.answer.summary import Summary
    from rag.search.index import Index

    assistant = Assistant(Index.open(ROOT / ".rag" / "index", create=False))
    assistant.load()
    rows = []
    for gold in read_jsonl(GOLD):
        started = time.perf_counter()
        first_piece = None
        summary = None
        for item in assistant.summarize_stream(gold["doc_id"]):
            if first_piece is None and isinstance(item, str):
                first_piece = time.perf_counter() - started
            if isinstance(item, Summary):
                summary = item
        assert summary is not None
        hits = covered(summary.text, gold["facts"])
        rows.append({"doc_id": gold["doc_id"], "title": gold["title"], "parts": summary.parts,
                     "sentences": len(summary.sentences), "dropped": list(summary.dropped),
                     "supported": round(summary.supported_share, 3), "facts": sum(hits), "of": len(hits),
                     "missed": [f["fact"] for f, hit in zip(gold["facts"], hits) if not hit],
                     "first_token_s": round(first_piece or 0.0, 2), "first_sentence_s": round(summary.timings["first_sentence_s"], 2),
                     "total_s": round(summary.timings["total_s"], 2), "write_s": round(summary.timings["write_s"], 2),
                     "checks_s": round(summary.timings["checks_s"], 2), "prompt_tokens": int(summary.timings["prompt_tokens"]),
                     "evaluated_tokens": int(summary.timings["evaluated_tokens"]), "summary": summary.text})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    started = time.perf_counter()
    compared = assistant.summarize("000_309b2881ceff4657", "001_4d964a34be51a00b")
    comparison = {"doc_ids": list(compared.doc_ids), "total_s": round(time.perf_counter() - started, 2),
                  "supported": round(compared.supported_share, 3), "summary": compared.text}
    written = sum(r["sentences"] + len(r["dropped"]) for r in rows)
    report = {"command": "python -m eval.summaries", "code": git("describe", "--always", "--dirty"), "cpu": cpu_name(),
              "date": time.strftime("%Y-%m-%d %H:%M"), "articles": rows, "comparison": comparison,
              "supported": round(sum(r["sentences"] for r in rows) / max(1, written), 3),
              "facts": round(sum(r["facts"] for r in rows) / max(1, sum(r["of"] for r in rows)), 3),
              "first_sentence_s_max": max(r["first_sentence_s"] for r in rows),
              "total_s_median": statistics.median(r["total_s"] for r in rows), "total_s_max": max(r["total_s"] for r in rows)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# Summaries of the seed articles", "",
             f"`{report['command']}` at {report['code']}, {report['date']}, {report['cpu']}.", "",
             f"Sentences supported by the checks: {report['supported']:.0%} of those written; key facts covered: "
             f"{report['facts']:.0%}; first sentence at most {report['first_sentence_s_max']} s after the request; "
             f"whole summary {report['total_s_median']} s median, {report['total_s_max']} s at most.", "",
             "| article | parts | sentences kept / written | key facts | first sentence | whole | writing / checks | "
             "prompt tokens (evaluated) | facts missed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['title']} | {r['parts']} | {r['sentences']} / {r['sentences'] + len(r['dropped'])} | "
                     f"{r['facts']} of {r['of']} | {r['first_sentence_s']} s | {r['total_s']} s | "
                     f"{r['write_s']} s / {r['checks_s']} s | {r['prompt_tokens']} ({r['evaluated_tokens']}) | {'; '.join(r['missed']) or '–'} |")
    lines += ["", "## The summaries", ""] + [f"- **{r['title']}**: {r['summary']}" for r in rows]
    lines += ["", f"Comparing the first two articles ({comparison['total_s']} s, {comparison['supported']:.0%} supported): "
              f"{comparison['summary']}", ""]
    OUT.with_suffix(".md").write_text("\n".join(lines))
    print(OUT.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
