# Two entry points for a newcomer (see README): `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
RAG_INDEX_DIR ?= index/default
export RAG_INDEX_DIR

.PHONY: run test install browser bench

run: install
	$(BIN)/rag index
	$(BIN)/rag chat

test: install browser
	$(BIN)/ruff check rag ui tests bench
	$(BIN)/mypy rag ui tests bench
	$(BIN)/python -m pytest

install: $(VENV)/.installed

# Reinstall when the project's dependencies change. torch is pinned (CPU build); llama-cpp-python builds from
# source once (about 16 minutes on 2 cores) and pip caches the wheel. constraints.txt fixes every other version, so
# two installs answer alike.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[all]'
	touch $@

# Browser tests drive Debian's Chromium (browsers cannot be downloaded here).
browser:
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }
