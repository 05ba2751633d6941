"""The sections of the performance benchmark, ``eval/bench.py``: one module per section, each with
``run(args, work)`` (its figures, as the section's part of ``bench.json``) and ``render(section)``
(its part of ``bench.md``), and what they share (``measure``: timing, memory, load, formats;
``synthetic``: data and a free embedder at any size)."""
