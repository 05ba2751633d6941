# Two commands for a new user: `make run` (index the seeds, start the app) and `make test`.
# Both install into the project's own virtual environment, .venv, and nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE_QUESTION ?= Who did the president of Qatar's National Cyber Security Agency meet in Doha?

.PHONY: run test index clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: the CPU build on local disk, never a CUDA build from the index.
$(VENV)/.installed-app: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

index: $(VENV)/.installed-app
	$(BIN)/rag index seeds

run: index
	$(BIN)/rag search "$(SAMPLE_QUESTION)" --k 3

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .rag
