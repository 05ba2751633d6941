"""Hostile files against `rag index`: each refused in one line, how fast and in how much memory (issue 44).

Builds each file on the fly (tests/bombs.py: real zip bombs and deeply nested markup) and
measures, in a fresh process that only reads it (`rag.ingest.loading.load`, as `rag index` reads
every file), the time to its refusal and the peak resident memory of that process and its reader
child together; then indexes it with `rag index` beside a good file into an index that holds one
document, and records the line printed about it and whether the good file and the earlier
document were kept.

    .venv/bin/python -m eval.hostile_files        # writes eval/results/hostile_files.{json,md}
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from eval.common import ROOT, cpu_name, git
from tests import bombs

CASES: dict[str, Callable[[Path], Path]] = {
    "DOCX zip bomb (2 GB document part)": lambda d: bombs.docx(d / "bomb.docx", bombs.zero_bomb(2048)),
    "EPUB zip bomb (2 GB chapter)": lambda d: bombs.epub(d / "bomb.epub", bombs.zero_bomb(2048)),
    "EPUB bomb whose directory says 1 KB": lambda d: bombs.epub(d / "liar.epub", bombs.zero_bomb(2048), declared=1024),
    "HTML, 200,000 nested elements (2 MB)": lambda d: _write(d / "deep.html", bombs.nested(200_000)),
    "XHTML chapter, 40,000 nested sections": lambda d: bombs.epub(d / "deep.epub", bombs.deflated(bombs.nested(40_000, "section").encode())),
}


# Run in a fresh interpreter: the seconds from the call to the refusal, and the peak resident MB of
# that interpreter and its reader child.
READ = """
import resource, sys, time
from rag.ingest.loading import load
from rag.ingest.sandbox import close_idle
started = time.monotonic()
items = list(load([sys.argv[1]]))
seconds = time.monotonic() - started
close_idle()  # the reader child is waited for, so its peak counts
peak = max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(seconds, peak / 1024)
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run(case: str, make: Callable[[Path], Path]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="rag-hostile-") as tmp:
        folder = Path(tmp) / "batch"
        folder.mkdir()
        hostile = make(folder)
        (folder / "good.txt").write_text("The harbour festival in Tallinn opened on Saturday with tall ships.")
        index = Path(tmp) / "index"
        env_dir = Path(tmp) / "data"
        first = Path(tmp) / "first.txt"
        first.write_text("Mount Etna erupted on Monday; the airport in Catania closed for six hours.")
        subprocess.run([sys.executable, "-m", "rag", "index", str(first), "--index-dir", str(index), "--quiet"],
                       check=True, cwd=ROOT, capture_output=True, env={"RAG_DATA_DIR": str(env_dir), "PATH": "/usr/bin:/bin"})
        reading = subprocess.run([sys.executable, "-c", READ, str(hostile)], cwd=ROOT, capture_output=True, text=True, check=True)
        seconds, peak = map(float, reading.stdout.split())
        done = subprocess.run([sys.executable, "-m", "rag", "index", str(folder), "--index-dir", str(index)],
                              cwd=ROOT, capture_output=True, text=True, env={"RAG_DATA_DIR": str(env_dir), "PATH": "/usr/bin:/bin"})
        docs = subprocess.run([sys.executable, "-m", "rag", "docs", "--index-dir", str(index)], cwd=ROOT,
                              capture_output=True, text=True, env={"RAG_DATA_DIR": str(env_dir), "PATH": "/usr/bin:/bin"}).stdout
        return {"case": case, "size_kb": round(hostile.stat().st_size / 1024), "seconds": round(seconds, 2),
                "peak_mb": round(peak), "exit": done.returncode,
                "lines": [line.replace(str(folder) + "/", "") for line in done.stderr.splitlines() if hostile.name in line],
                "kept": "good" in docs and "first" in docs}


def main() -> None:
    rows = [run(case, make) for case, make in CASES.items()]
    report = {"command": "python -m eval.hostile_files", "code": git("describe", "--always", "--dirty"), "cpu": cpu_name(),
              "date": time.strftime("%Y-%m-%d %H:%M"), "cases": rows}
    out = ROOT / "eval" / "results" / "hostile_files"
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# Hostile files against `rag index`", "",
             f"`{report['command']}` at {report['code']}, {report['date']}, {report['cpu']}. Each file beside a good one, "
             "into an index holding one document. Refused in: from reading the file to its refusal, the reader's start "
             "included; peak memory: the reading process and its reader child. The collection of eval/verifier_collect.py "
             "ran beside it at nice 19.", "",
             "| file | size | refused in | peak memory | the line | good file and index kept |", "|---|---|---|---|---|---|"]
    for r in rows:
        line = "; ".join(r["lines"]) or "(none)"  # type: ignore[arg-type]
        lines.append(f"| {r['case']} | {r['size_kb']} KB | {r['seconds']} s | {r['peak_mb']} MB | `{line}` | {'yes' if r['kept'] else 'NO'} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
