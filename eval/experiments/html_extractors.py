"""Decided: .html files and URLs go through trafilatura (F1 0.954, our BeautifulSoup walk 0.800).

Which HTML extractor keeps the article: our BeautifulSoup walk or trafilatura (issue 30).

Scored on the Article Extraction Benchmark (Zyte/Scrapinghub, MIT licence; 181 real news and
blog pages saved as HTML with their hand-checked article body, `ground-truth.json`), which
stays out of git: give a checkout of github.com/scrapinghub/article-extraction-benchmark with
``--data``. Each extractor's text is compared with the article body as bags of word 4-grams
(the benchmark's own way of scoring): precision (how much of what was kept is article), recall
(how much of the article was kept), F1; means over pages, and milliseconds a page.

    .venv/bin/python -m eval.experiments.html_extractors --data ../article-extraction-benchmark
    # -> eval/results/extractors/html.{json,md}
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from eval.common import ROOT

OUT = ROOT / "eval" / "results" / "extractors" / "html"
N = 4


def shingles(text: str) -> Counter[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return Counter(tuple(words[i : i + N]) for i in range(max(0, len(words) - N + 1)))


def score(truth: str, kept: str) -> tuple[float, float]:
    """(precision, recall) of ``kept`` against ``truth``, over word 4-grams."""
    a, b = shingles(truth), shingles(kept)
    overlap = sum((a & b).values())
    precision = overlap / sum(b.values()) if b else (1.0 if not a else 0.0)
    recall = overlap / sum(a.values()) if a else 1.0
    return precision, recall


def ours(html: str) -> str:
    from rag.ingest.cleaning import clean
    from rag.ingest.loading import _html_text

    return clean(_html_text(html)[1])


def trafilatura_text(html: str) -> str:
    from rag.ingest.cleaning import clean
    from rag.ingest.web import FetchError, page

    try:
        return page("https://example.com/page", html).text
    except FetchError:
        return clean("")


EXTRACTORS: dict[str, Callable[[str], str]] = {"ours (BeautifulSoup walk)": ours, "trafilatura": trafilatura_text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a checkout of scrapinghub/article-extraction-benchmark")
    args = parser.parse_args()
    truth = json.loads((args.data / "ground-truth.json").read_text())
    pages = {key: gzip.decompress((args.data / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8", "replace")
             for key in sorted(truth)}
    rows = {}
    for name, extract in EXTRACTORS.items():
        p, r, f, ms = [], [], [], []
        for key, html in pages.items():
            started = time.perf_counter()
            kept = extract(html)
            ms.append(1000 * (time.perf_counter() - started))
            precision, recall = score(truth[key]["articleBody"], kept)
            p.append(precision)
            r.append(recall)
            f.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        rows[name] = {"pages": len(pages), "precision": statistics.mean(p), "recall": statistics.mean(r),
                      "f1": statistics.mean(f), "ms_p50": statistics.median(ms)}
        print(name, rows[name], file=sys.stderr)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [f"# HTML extractors on the Article Extraction Benchmark ({len(pages)} pages)\n",
             "| extractor | precision | recall | F1 | ms a page (p50) |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['ms_p50']:.0f} |" for name, v in rows.items()]
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(OUT.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
