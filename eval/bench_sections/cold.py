"""The cold section: seconds from launching ``rag ask`` to the first byte of the answer on stdout."""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import Any

from eval.bench_sections.measure import load_note, log, median, seeds_index, timed
from eval.common import ROOT


def first_byte(cmd: list[str]) -> tuple[float, float]:
    """Seconds from launching ``cmd`` to its first byte on stdout, and to its exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    byte = proc.stdout.read(1)
    t_first = time.perf_counter() - t0
    proc.stdout.read()
    proc.wait()
    if proc.returncode or not byte:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}")
    return t_first, time.perf_counter() - t0


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    folder = seeds_index(work)
    question = "When did Bernard Quintin visit Doha?"
    out: dict[str, Any] = {"question": question, "runs": args.cold_runs, "models": [],
                           "note": "OS page cache warm (model files read before); a fresh process each run"}
    for name in args.models:
        cmd = [str(ROOT / ".venv/bin/rag"), "ask", question, "--index-dir", str(folder), "--model", name,
               "--threads", str(args.threads)]
        runs = [first_byte(cmd) for _ in range(args.cold_runs)]
        out["models"].append({"model": name, "first_byte_s": median([a for a, _ in runs]),
                              "exit_s": median([b for _, b in runs]), "all_first_byte_s": [a for a, _ in runs]})
        log(f"cold {name}: {out['models'][-1]}")
    help_runs = [timed(lambda: subprocess.run([str(ROOT / ".venv/bin/rag"), "--help"], capture_output=True, check=True))[0]
                 for _ in range(args.cold_runs)]
    out["help_s"] = median(help_runs)
    return out


def render(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [f"## Cold start ({load_note(s)})", "",
              f"`rag ask \"{s['question']}\"` as a new process, index built, {s['note']}; median of {s['runs']}.", "",
              "| model | launch to first answer byte | launch to exit |", "|---|---|---|"]
    for r in s["models"]:
        lines.append(f"| {r['model']} | {r['first_byte_s']:.1f} s | {r['exit_s']:.1f} s |")
    lines.append(f"\n`rag --help`: {s['help_s']:.2f} s.")
    return lines
