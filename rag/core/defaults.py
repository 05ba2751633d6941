"""The defaults a user sees, in one place: the Python API, the CLI's options and its help read
them from here (each says where its value was measured)."""

from __future__ import annotations

import os
from typing import Final

K = 4  # passages given to the model (eval/README.md, "Answers: what was tried")
SEARCH_K = 5  # passages `rag search` and Index.search list
MAX_K = 10  # the most passages the chat window and its API accept per question
MODE: Final = "hybrid"  # retrieval mode (eval/README.md, "Retrieval")
HOST = "127.0.0.1"  # `rag serve` listens on this machine only
PORT = 7860
CONCURRENCY = 4  # questions answered at once with an openai: model (eval/README.md, "Concurrent answers")
THREADS = max(1, os.cpu_count() or 1)  # generator threads, fewer while other processes keep cores busy
CONTEXT_SIZE = 2048  # model context in tokens
MAX_TOKENS = 120  # longest answer in tokens
MODEL_TIME_LIMIT_S = 120.0  # `rag serve` stops and restarts a model call running longer (rag/generate/process.py)
MODEL = "qwen-1.5b"  # the bundled generator (rag/core/bundled.py; README "Models")
EMBEDDER = "minilm"  # the bundled embedder (README "Embedders")
STORE = "faiss"  # where an index is kept unless --store or $RAG_STORE says otherwise

# What one document may cost to read (rag/ingest/guards.py; README "Limits on what is read").
# Each can be set with its environment variable, e.g. RAG_MAX_ARCHIVE_MB=1024.
MAX_ARCHIVE_MB = 256.0  # a DOCX or EPUB (a zip) inflated in total
MAX_MEMBER_MB = 64.0  # one file inside it inflated
MAX_RATIO = 100.0  # how much one file inside it may inflate (ratio), checked above 1 MB inflated
MAX_MEMBERS = 10_000  # files inside it
MAX_MARKUP_MB = 20.0  # an HTML or XML text
MAX_DEPTH = 512  # how deeply HTML or XML elements may nest
EXTRACT_SECONDS = 120.0  # reading one PDF, DOCX, EPUB or HTML file (in a child process that is stopped past it)
EXTRACT_MEMORY_MB = 2048  # the address space that child may use
