"""Start the chat window: ``python ui/app.py [OPTIONS]`` is ``rag serve [OPTIONS]``.

The app itself lives in :mod:`rag.serve.app` (importable and tested); this file only launches it.
"""

from __future__ import annotations

import sys

from rag.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
