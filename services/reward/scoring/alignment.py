"""DEVA alignment reward ``alignment``: a batch component backed by the embedding service.

For every sample that parsed, ``(image, query, output)`` with the sample's optional mask go
to ``POST {PRL_REWARD_EMBEDDING_URL}/v1/alignment`` in **one** request per scoring call
(identical images and queries of a GRPO group are encoded once by the service). The value is
``r_v = max((a / max(V, v_min) − b)², c)`` with ``V = sqrt(det G(f_i', f_q, f_o))``
(services/embedding/hypervolume.py).

Output text: by default the contents of the last ``<answer>`` block (``output="answer"``;
the completion when there is none) — CLIP's 77-token text window would otherwise see mostly
the ``<think>`` part; ``output="completion"`` embeds the whole completion.

Scaling for aggregation (docs/rewards.md, "DEVA aggregation"). r_v attains
``[lo, hi] = reward_range(params)`` (``[c, (a / v_min − b)²]`` for the usual ``b ≤ a``:
``[2, 25]`` with the defaults). Nearly orthogonal embeddings — most CLIP triples — sit at the
floor ``c``. How r_v becomes the ``r̂ ∈ [0, 1]`` that harmonic aggregation consumes
(``floor``):

* ``"credit"`` (default): the floor earns ``floor_credit = s₀`` (0.5) and the rest of the
  attainable band maps linearly onto ``[s₀, 1]``:
  ``r̂ = s₀ + (1 − s₀) · (r_v − lo) / (hi − lo)``. The component declares the scale bounds
  ``((lo − s₀·hi) / (1 − s₀), hi)`` (``(−21, 25)`` with the defaults) and the attainable
  range ``(lo, hi)`` separately. A harmonic mean's slope in component k is
  ``∂H/∂r̂_k = H² w_k / (Σw · r̂_k²)``: a component sitting at r̂ ≈ 0.08 (what ``"zero"``
  gives the floor) has ≈ 150× the slope of one at 1 and pins a perfect answer's aggregate
  near 0.2 — alignment, a non-verifiable shaping term, would drown the task reward. With
  ``s₀ = ½`` the floor is "no bonus", not "failure".
* ``"zero"``: declared ``(0, hi)``, ``r̂ = r_v / hi ∈ [c / hi, 1]`` (0.08 at the floor).
* ``"attainable"``: declared ``(lo, hi)``, the floor maps to r̂ = 0, and harmonic
  aggregation gives every floor sample ≈ 0 whatever its accuracy.

The ``deva_*`` presets add alignment with weight ¼ besides ``floor="credit"``; the two
together give the properties pinned by tests/services/reward/scoring/test_deva_presets.py.

Failures are explicit: a sample without ``image`` or ``query`` gets ``missing_input``; an
unreachable/failing embedding service gives every sample ``embedding_unavailable`` /
``embedding_error`` in ``component_errors["alignment"]`` — never a silent 0. The component's
``ready`` check (``GET /readyz`` of the embedding service) joins the reward service's
readiness when a configured spec uses ``alignment``.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.embedding import AlignmentItem, AlignmentRequest, AlignmentResponse, HypervolumeParams
from schemas.reward import ErrorInfo
from services.embedding.hypervolume import reward_range
from services.reward.scoring.base import Prepared, ScoringContext, batch_component
from services.reward.scoring.parse import extract_answer


class AlignmentSettings(BaseSettings):
    """Where the embedding service is: ``PRL_REWARD_EMBEDDING_URL`` etc.

    Read from the reward service's settings object when it has these fields, else from the
    environment with the reward service's prefix.
    """

    model_config = SettingsConfigDict(env_prefix="PRL_REWARD_", extra="ignore", frozen=True)

    embedding_url: str = Field(
        default="http://127.0.0.1:8002", description="embedding service base URL"
    )
    embedding_api_key: str | None = Field(
        default=None, description="bearer key for the embedding service"
    )
    embedding_timeout_s: float = Field(
        default=30.0, gt=0, description="seconds one /v1/alignment call may take"
    )


class AlignmentParams(HypervolumeParams):
    """Hypervolume parameters (a, b, c, v_min) plus how the output is taken and scaled."""

    output: Literal["answer", "completion"] = Field(
        default="answer",
        description="text embedded as the output: the last <answer> block or the whole completion",
    )
    floor: Literal["credit", "zero", "attainable"] = Field(
        default="credit",
        description=(
            "how r_v is scaled to [0, 1] for aggregation: 'credit' maps the floor c to "
            "floor_credit and the attainable band linearly onto [floor_credit, 1]; 'zero' "
            "divides by the maximum; 'attainable' maps the floor to 0"
        ),
    )
    floor_credit: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="scaled value r̂ of the floor c under floor='credit' (0 < s₀ < 1)",
    )

    def hypervolume(self) -> HypervolumeParams:
        return HypervolumeParams(a=self.a, b=self.b, c=self.c, v_min=self.v_min)


def alignment_attainable(p: AlignmentParams) -> tuple[float, float]:
    """``[lo, hi] = reward_range(params)``: the values r_v can take."""
    return reward_range(p.hypervolume())


def alignment_bounds(p: AlignmentParams) -> tuple[float, float]:
    """The scale bounds for ``r̂ = (r − lo') / (hi − lo')`` per ``p.floor`` (module docstring).

    ``"credit"``: ``lo' = (lo − s₀·hi) / (1 − s₀)`` so that ``r̂(lo) = s₀`` and ``r̂(hi) = 1``;
    a constant r_v (``lo == hi``, e.g. ``c`` above every attainable value) carries no signal
    and is scaled to 1 (bounds ``(lo − 1, lo)``), as ``hypervolume.scaled`` does.
    """
    lo, hi = alignment_attainable(p)
    if p.floor == "zero":
        return (0.0, hi)
    if p.floor == "attainable":
        return (lo, hi)
    if not hi > lo:
        return (lo - 1.0, lo)
    s0 = p.floor_credit
    return ((lo - s0 * hi) / (1.0 - s0), hi)


def endpoint(context: ScoringContext) -> AlignmentSettings:
    """Embedding URL/key/timeout from the reward settings when present, else the environment."""
    s = context.settings
    env = AlignmentSettings()
    if s is None:
        return env
    return AlignmentSettings(
        embedding_url=getattr(s, "embedding_url", None) or env.embedding_url,
        embedding_api_key=getattr(s, "embedding_api_key", None) or env.embedding_api_key,
        embedding_timeout_s=getattr(s, "embedding_timeout_s", None) or env.embedding_timeout_s,
    )


def output_text(sample: Prepared, mode: str) -> str:
    if mode == "answer":
        ans = extract_answer(sample.completion)
        if ans is not None and ans.strip():
            return ans.strip()
    return sample.completion


def build_item(sample: Prepared, p: AlignmentParams) -> AlignmentItem | ErrorInfo:
    """The wire item of one sample, or ``missing_input`` when image or query is absent."""
    src = sample.source
    image = getattr(src, "image", None)
    query = getattr(src, "query", None)
    missing = [name for name, v in (("image", image), ("query", query)) if not v]
    if missing:
        return ErrorInfo(
            code="missing_input",
            message=f"alignment needs the sample's image and query; missing: {' and '.join(missing)}",
        )
    return AlignmentItem(
        id=sample.id,
        image=image,
        query=query,
        output=output_text(sample, p.output),
        mask=getattr(src, "mask", None),
        mask_boxes=getattr(src, "mask_boxes", None),
    )


def _headers(cfg: AlignmentSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {cfg.embedding_api_key}"} if cfg.embedding_api_key else {}


def _error_message(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except Exception:
        return resp.text[:300]


async def _post(
    context: ScoringContext, cfg: AlignmentSettings, body: dict[str, Any]
) -> httpx.Response:
    url = cfg.embedding_url.rstrip("/") + "/v1/alignment"
    if context.http is not None:
        return await context.http.post(
            url, json=body, headers=_headers(cfg), timeout=cfg.embedding_timeout_s
        )
    async with httpx.AsyncClient(timeout=cfg.embedding_timeout_s) as client:
        return await client.post(url, json=body, headers=_headers(cfg))


async def alignment_ready(context: ScoringContext) -> str | None:
    """None when the embedding service answers ``/readyz`` with 200, else the reason."""
    cfg = endpoint(context)
    url = cfg.embedding_url.rstrip("/") + "/readyz"
    try:
        if context.http is not None:
            resp = await context.http.get(url, timeout=min(cfg.embedding_timeout_s, 5.0))
        else:
            async with httpx.AsyncClient(timeout=min(cfg.embedding_timeout_s, 5.0)) as client:
                resp = await client.get(url)
    except httpx.HTTPError as exc:
        return f"embedding service at {cfg.embedding_url} unreachable ({type(exc).__name__})"
    if resp.status_code != 200:
        try:
            failing = resp.json().get("failing")
        except Exception:
            failing = resp.text[:200]
        return f"embedding service at {cfg.embedding_url} not ready: {failing}"
    return None


def _fill(out: list[float | ErrorInfo], todo: list[int], err: ErrorInfo) -> list[float | ErrorInfo]:
    for i in todo:
        out[i] = err
    return out


@batch_component(
    "alignment",
    needs="any",
    bounds=alignment_bounds,
    params=AlignmentParams,
    ready=alignment_ready,
    attainable=alignment_attainable,
)
async def alignment(
    samples: list[Prepared], p: AlignmentParams, context: ScoringContext
) -> list[float | ErrorInfo]:
    """DEVA hypervolume reward r_v = max((a / max(V, v_min) − b)², c), V = sqrt(det G) of the
    unit embeddings of the (masked) image, the query and the output (embedding service, one
    call per request). Values in [c, (a/v_min − b)²]; scaled for aggregation per ``floor``
    (module docstring); errors are per-sample data."""
    built = [build_item(s, p) for s in samples]
    out: list[float | ErrorInfo] = [b if isinstance(b, ErrorInfo) else 0.0 for b in built]
    todo = [i for i, b in enumerate(built) if isinstance(b, AlignmentItem)]
    if not todo:
        return out
    cfg = endpoint(context)
    req = AlignmentRequest(items=[built[i] for i in todo], params=p.hypervolume())  # type: ignore[misc]
    try:
        resp = await _post(context, cfg, req.model_dump(mode="json", exclude_none=True))
    except httpx.HTTPError as exc:
        err = ErrorInfo(
            code="embedding_unavailable",
            message=f"embedding service at {cfg.embedding_url} unreachable ({type(exc).__name__}: {exc})",
        )
        return _fill(out, todo, err)
    if resp.status_code != 200:
        err = ErrorInfo(
            code="embedding_error",
            message=f"embedding service answered {resp.status_code}: {_error_message(resp)}",
        )
        return _fill(out, todo, err)
    parsed = AlignmentResponse.model_validate(resp.json())
    if len(parsed.results) != len(todo):
        raise RuntimeError(
            f"embedding service returned {len(parsed.results)} results for {len(todo)} items"
        )
    for i, res in zip(todo, parsed.results, strict=True):
        out[i] = float(res.reward)
    return out
