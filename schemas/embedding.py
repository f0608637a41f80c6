"""Embedding-service requests and responses (wire contract v1; the hypervolume is in
docs/rewards.md, ``alignment``).

``POST /v1/embed``: images and/or texts → L2-normalised vectors.
``POST /v1/alignment``: (image, query, output, mask?) items → DEVA hypervolume V, reward r_v
and the three pairwise cosines. Images are base64 PNG/JPEG (optionally a ``data:`` URL) or a
path under the service's data root.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.bounds import Ranged
from schemas.geometry import Box
from schemas.reward import PatchMask

#: Parameter bounds of r_v: they keep (a / v_min + |b|)² ≤ (1e12 + 1e6)² ≈ 1e24, far inside
#: float64, so the reward and its range never overflow.
A_MAX, B_MAX, C_MAX, V_MIN_LO = 1e6, 1e6, 1e12, 1e-6


class ImageMask(BaseModel):
    """DEVA image mask of one image: a patch grid or pixel boxes to keep (not both)."""

    model_config = ConfigDict(extra="forbid")

    mask: PatchMask | None = Field(default=None, description="patch grid over the whole image")
    mask_boxes: list[Box] | None = Field(
        default=None, description="keep these [x1, y1, x2, y2] boxes in original-image pixels"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ImageMask:
        if self.mask is not None and self.mask_boxes is not None:
            raise ValueError("give either mask (patch grid) or mask_boxes, not both")
        return self


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[str] = Field(
        default_factory=list, description="base64 PNG/JPEG (or data: URL) or data-root paths"
    )
    image_masks: list[ImageMask | None] | None = Field(
        default=None, description="optional mask per image (same length as images)"
    )
    texts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> EmbedRequest:
        if not self.images and not self.texts:
            raise ValueError("give at least one image or one text")
        if self.image_masks is not None and len(self.image_masks) != len(self.images):
            raise ValueError(
                f"image_masks: {len(self.image_masks)} masks for {len(self.images)} images; "
                "give one (or null) per image"
            )
        return self


class EmbedResponse(BaseModel):
    model: str = Field(description="model id (directory name or configured id)")
    dim: int
    image_embeddings: list[list[float]]
    text_embeddings: list[list[float]]


class HypervolumeParams(BaseModel):
    """r_v = max((a / max(V, v_min) − b)², c); DEVA defaults a = 1, b = 0, c = 2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: Ranged(0.0, A_MAX, lo_open=True) = Field(default=1.0, description="scale a ∈ (0, 1e6]")
    b: Ranged(-B_MAX, B_MAX) = Field(default=0.0, description="shift b ∈ [−1e6, 1e6]")
    c: Ranged(-C_MAX, C_MAX) = Field(default=2.0, description="floor c ∈ [−1e12, 1e12]")
    v_min: Ranged(V_MIN_LO, 1.0) = Field(
        default=0.2,
        description="V is clamped to >= v_min ∈ [1e-6, 1]; r_v <= (a/v_min - b)^2",
    )


class AlignmentItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=256)
    image: str = Field(description="base64 PNG/JPEG (or data: URL) or a data-root path")
    query: str
    output: str
    mask: PatchMask | None = None
    mask_boxes: list[Box] | None = None

    @model_validator(mode="after")
    def _one_mask(self) -> AlignmentItem:
        if self.mask is not None and self.mask_boxes is not None:
            raise ValueError("give either mask (patch grid) or mask_boxes, not both")
        return self


class AlignmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[AlignmentItem] = Field(min_length=1)
    params: HypervolumeParams = Field(default_factory=HypervolumeParams)


class AlignmentResult(BaseModel):
    id: str | None = None
    volume: float = Field(description="V = sqrt(max(det G, 0)) before the v_min clamp, in [0, 1]")
    reward: float = Field(description="r_v with the request's parameters")
    cos_image_query: float
    cos_image_output: float
    cos_query_output: float


class AlignmentResponse(BaseModel):
    model: str
    dim: int
    params: HypervolumeParams
    reward_range: tuple[float, float] = Field(description="[lo, hi] of r_v under params")
    results: list[AlignmentResult]
