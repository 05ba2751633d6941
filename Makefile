# Two commands for a new user: `make run` (index the seeds, answer a sample question; the chat
# window replaces the sample question when the UI lands) and `make test`.
# Both install into the project's own virtual environment, .venv, and nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE_QUESTION ?= When did Belgium's Minister of Security and the Interior visit Doha?

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
	$(BIN)/rag ask "$(SAMPLE_QUESTION)"

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .rag
