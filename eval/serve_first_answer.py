"""Is the chat window ready when it says so? The first answer after `rag serve` reports ready,
against the same question asked again later.

Starts `rag serve` on a free loopback port, waits for its URL (printed only once the model, its
cached prefix, the embedder and the indexes are loaded), then asks the first ``--questions``
seeds gold questions through the app's `/answer` endpoint and the first one once more; compares
the first answer's time with the repeat's (same question, same prompt length), and stops the
server:

    .venv/bin/python -m eval.serve_first_answer

Writes ``eval/results/serve_first_answer.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from eval.common import ROOT, SEEDS_GOLD, free_port, read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    args = parser.parse_args()
    from gradio_client import Client

    gold = read_jsonl(SEEDS_GOLD)
    questions = [g["question"] for g in gold if g["answerable"]][: args.questions]
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([str(ROOT / ".venv/bin/rag"), "serve", "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    log = []
    try:
        assert server.stdout is not None
        for line in server.stdout:
            log.append(line.rstrip())
            if f"127.0.0.1:{port}" in line:
                break
        else:
            raise SystemExit("rag serve exited before it printed its URL:\n" + "\n".join(log))
        ready_s = time.perf_counter() - started
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        asked = []
        for q in [*questions, questions[0]]:
            t0 = time.perf_counter()
            data = client.predict(q, api_name="/answer")
            asked.append({"question": q, "wall_s": time.perf_counter() - t0, "total_s": data["timings"]["total_s"],
                          "first_token_s": data["timings"]["first_token_s"], "refused": data["refused"]})
            print(f"{asked[-1]['wall_s']:.2f} s  {q}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    later = [a["wall_s"] for a in asked[1:-1]]
    report = {"command": "python -m eval.serve_first_answer", "load_average": os.getloadavg(), "ready_s": ready_s,
              "log": [line for line in log if line.startswith(("loading", "ready"))], "answers": asked,
              "first_over_repeat": asked[0]["wall_s"] / asked[-1]["wall_s"],
              "first_over_later_median": asked[0]["wall_s"] / statistics.median(later) if later else None}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_first_answer.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"ready after {ready_s:.1f} s; first answer {asked[0]['wall_s']:.2f} s, the same question later "
          f"{asked[-1]['wall_s']:.2f} s: {report['first_over_repeat']:.2f}x", file=sys.stderr)


if __name__ == "__main__":
    main()
