"""Fixtures for the ``peers`` tests: they run in .venv-peers (``make peers-test``), where the
peers' released code is installed; elsewhere each module skips at import with a reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def reward_url() -> Iterator[str]:
    """Our real reward service (uvicorn on loopback, in a thread)."""
    from services.reward.app import create_app
    from services.stack import serve_in_thread

    with serve_in_thread(create_app()) as url:
        yield url


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2-VL checkpoint (tokenizer + processor + weights), built offline."""
    from trainer.tiny import build_tiny_vlm

    return build_tiny_vlm("qwen2vl", tmp_path_factory.mktemp("tiny") / "qwen2vl")


@pytest.fixture(scope="session")
def processor(tiny_model_dir: Path):
    from trainer.tiny import load_processor

    return load_processor(tiny_model_dir)
