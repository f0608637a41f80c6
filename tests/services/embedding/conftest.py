"""Session-scoped tiny encoders, built offline and loaded through the real loading path."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from services.embedding.tiny import build_tiny_encoder

    return build_tiny_encoder("clip", tmp_path_factory.mktemp("tiny") / "clip", seed=0)


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from services.embedding.tiny import build_tiny_encoder

    return build_tiny_encoder("siglip", tmp_path_factory.mktemp("tiny") / "siglip", seed=0)


@pytest.fixture(scope="session")
def clip_encoder(tiny_clip_dir: Path):
    from services.embedding.encoders import Encoder

    return Encoder.load(tiny_clip_dir)


@pytest.fixture(scope="session")
def siglip_encoder(tiny_siglip_dir: Path):
    from services.embedding.encoders import Encoder

    return Encoder.load(tiny_siglip_dir)
