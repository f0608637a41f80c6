"""Shared fixtures for trainer tests: one tiny Qwen2-VL checkpoint per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_qwen2vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.tiny import build_tiny_vlm

    return build_tiny_vlm("qwen2vl", tmp_path_factory.mktemp("tiny-qwen2vl"), seed=0)
