"""The runnable examples in docstrings (``>>>``) of the small pure functions.

Docstrings elsewhere that sketch a session against a real index and model (rag.search.index,
rag.answer.assistant, rag.evaluate.metrics) are illustrations, not doctests, and are not run here.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["rag.search.retrieval", "rag.stores.sparse", "rag.stores.dense", "rag.core.registry", "rag.stores.factory",
           "rag.core.types", "rag.ingest.cleaning"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module) if t.examples and t.name != name]  # skip module-level sketches
    assert tests, f"{name} has no examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
