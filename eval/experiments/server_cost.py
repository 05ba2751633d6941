"""Decided: the checks' 4.4x cost over HTTP is the server computing log-probabilities, not the conversation.

What log-probabilities cost on llama-cpp-python's server (issue 29, eval/README.md).

Starts ``python -m rag.generate.runtime server`` with the bundled qwen-1.5b on a free loopback port,
then, on one source-heavy prompt (459 tokens, cached after the first request), alternates plain
requests and requests with ``logprobs``/``top_logprobs``: a 16-token answer, then two judge turns
after it (each a new user turn, one token), as rag's OpenAI backend sends them. Prints seconds.

    .venv/bin/python -m eval.experiments.server_cost --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request

from eval.common import free_port

SOURCE = " ".join(["The talks occurred during Minister Quintin's official visit to Doha on December 6, 2023, "
                   "and covered cybersecurity cooperation."] * 12)
MESSAGES = [{"role": "system", "content": "Answer the question using only the numbered sources."},
            {"role": "user", "content": f"Sources:\n[1] {SOURCE}\n\nQuestion: When did Quintin visit Doha?"}]


def post(base: str, body: dict) -> tuple[float, bytes]:
    started = time.perf_counter()
    request = urllib.request.Request(f"{base}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        data = response.read()
    return time.perf_counter() - started, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from rag.core.bundled import gguf_path

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "rag.generate.runtime", "server", "--model", str(gguf_path("qwen-1.5b")),
                               "--model_alias", "qwen-1.5b", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                               "--n_threads", str(args.threads), "--verbose", "False"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2)
                break
            except OSError:
                time.sleep(1)
        post(base, {"model": "qwen-1.5b", "messages": MESSAGES, "max_tokens": 1, "temperature": 0})  # cache the prompt
        for _ in range(args.rounds):
            for scored in (False, True):
                extra = {"logprobs": True, "top_logprobs": 10} if scored else {}
                label = "logprobs" if scored else "plain"
                seconds, data = post(base, {"model": "qwen-1.5b", "messages": MESSAGES, "max_tokens": 16, "temperature": 0,
                                            "stream": True, **extra})
                answer = "".join(json.loads(line[5:])["choices"][0]["delta"].get("content") or ""
                                 for line in data.decode().splitlines() if line.startswith("data:") and "[DONE]" not in line)
                print(f"answer, 16 tokens, {label}: {seconds:.2f} s")
                for i in range(2):
                    turn = f'Source [1] says: "{i} {label} the talks in Doha". Does this state that the answer is "{answer}"? Reply yes or no.'
                    judge = [*MESSAGES, {"role": "assistant", "content": answer}, {"role": "user", "content": turn}]
                    seconds, _ = post(base, {"model": "qwen-1.5b", "messages": judge, "max_tokens": 1, "temperature": 0, **extra})
                    print(f"  judge turn {i + 1}, {label}: {seconds:.2f} s")
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
