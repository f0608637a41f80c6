"""Embedding-service settings (environment ``PRL_EMBEDDING_*``).

``PRL_EMBEDDING_MODEL_DIR=/models/clip-vit-b-32 PRL_EMBEDDING_DATA_ROOT=/data prl serve embedding``
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.catalog import default_port
from services.common.settings import ServiceSettings

DeviceChoice = Literal["auto", "cpu", "cuda"]
DtypeChoice = Literal["auto", "float32", "bfloat16", "float16"]


class EmbeddingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PRL_EMBEDDING_", extra="ignore", frozen=True)

    port: int = Field(
        default=default_port("embedding"), ge=0, le=65535, description="TCP port (0: any free port)"
    )

    model_dir: Path | None = Field(
        default=None,
        description="local CLIP/SigLIP directory (save_pretrained layout); required to become ready",
    )
    model_id: str | None = Field(
        default=None, description="id reported in responses (default: the directory name)"
    )
    device: DeviceChoice = Field(default="auto", description="auto: CUDA when present, else CPU")
    dtype: DtypeChoice = Field(
        default="auto",
        description="auto: bfloat16 on CUDA with bf16 support, float16 on other CUDA, float32 on CPU",
    )
    attn_implementation: str | None = Field(
        default=None, description="passed to from_pretrained (e.g. 'sdpa', 'eager'); None = default"
    )

    data_root: Path | None = Field(
        default=None, description="image paths are resolved under this directory (403 outside)"
    )
    max_images_per_request: int = Field(
        default=256, ge=1, description="images per /v1/embed request; 413 above"
    )
    max_texts_per_request: int = Field(
        default=1024, ge=1, description="texts per /v1/embed request; 413 above"
    )
    max_items_per_request: int = Field(default=256, ge=1, description="/v1/alignment items")
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1, description="encoded bytes")
    max_image_pixels: int = Field(default=40_000_000, ge=1, description="width × height")
    max_text_chars: int = Field(default=8192, ge=1, description="characters per text; 413 above")

    max_batch_size: int = Field(default=64, ge=1, description="items per model forward")
    max_delay_ms: float = Field(
        default=5.0, ge=0.0, description="wait this long for a partial batch to fill"
    )
    max_queue: int = Field(default=4096, ge=1, description="queued items before 503 + Retry-After")
    embed_timeout_s: float = Field(
        default=30.0, gt=0, description="per-request wait for embeddings before 504"
    )
