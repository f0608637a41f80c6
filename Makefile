# The two product commands (see README.md):
#   make setup && prl demo     — the main job, end to end, on embedded defaults
#   make setup && make test    — the test suite (what CI runs)
PY ?= python3

.PHONY: setup test lint format browser
setup:
	$(PY) -m pip install -q -e '.[all,dev]'

test:
	$(PY) -m pytest -n 2 -q -m "not vllm"

lint:
	ruff check . && ruff format --check .

format:
	ruff check --fix . && ruff format .

# Debian's chromium for the browser tests (needs root; skipped by the tests when absent).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
