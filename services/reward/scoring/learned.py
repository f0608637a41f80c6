"""The ``learned`` aggregator: a monotone smooth min–max network read from a JSON model file.

DEVA (CVPR 2026) compares its harmonic aggregation with "a separately pre-trained learnable
aggregation network". This module is that network's inference side, in numpy only (the reward
service stays torch-free); ``services.reward.fit`` fits it with scipy.

**Model** (smooth min–max network; Sill, NIPS 1997, "Monotonic networks", made smooth as in
Igel, 2023, "Smooth min-max monotonic networks"). Inputs are the spec's components scaled to
[0, 1] by their declared ranges, ``x: (S, K)``. With ``G`` groups of ``J`` linear units,

    z_gj(x) = Σ_k exp(a_gjk) · x_k + b_gj                      (S, G, J)
    m_g(x)  = −(1/β) · log Σ_j exp(−β · z_gj(x))                soft minimum over a group's units
    y(x)    =  (1/β) · log Σ_g exp( β · m_g(x))                 soft maximum over the groups
    R(x)    = scale · clip((y(x) − offset) · gain, 0, 1)

with ``β = exp(log_beta) > 0`` and ``gain > 0``. Every unit weight ``exp(a)`` is positive and
soft minimum, soft maximum and clipping are non-decreasing in each argument, so **R never
decreases when any component rises** (like ``harmonic``). The min–max form is a universal
approximator of monotone functions, and a concave monotone aggregate (the harmonic mean is one)
is the minimum of its tangent planes: one group already represents it closely.

**Missing values.** A component that failed for a sample (weight 0 in its row, see
``aggregate``) enters as ``x_k = 0``, the lowest credit: a missing value can never give a
higher reward than any real value would. The spec's weights are not used otherwise (the model
weighs its inputs itself), so a spec must leave every weight at 1.

**File.** JSON (:class:`ModelFile`): the input component names in order, the parameters, the
output calibration and a ``provenance`` object (what it was fitted on, fit loss, date). The
aggregator's ``path`` parameter names it. Validating a spec reads the file (cached per path,
modification time and size) and puts its SHA-256 into the resolved spec; a spec may pin it
with ``sha256``. A validated spec is itself cached by its text for the life of the process,
so a model file is written once and never changed in place (``fit-aggregator`` refuses to
overwrite): a new model is a new file, or a new ``sha256`` pin. With
``PRL_REWARD_AGGREGATOR_DIR`` set, paths are resolved inside that directory and paths outside
it are refused; error messages never quote a file's content.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from scipy.special import logsumexp

from services.reward.scoring.base import Aggregator, aggregators

FORMAT = "prl-aggregator"
MAX_FILE_BYTES = 1 << 20
"""Largest model file read (a model has a few dozen numbers; 1 MiB is far above any)."""
MAX_LOG = 30.0
"""Bound on |log_beta| and on every log-weight (exp(30) ≈ 1e13 already saturates)."""
DIR_ENV = "PRL_REWARD_AGGREGATOR_DIR"


class ModelFile(BaseModel):
    """The on-disk form of a learned aggregator (``format`` = ``prl-aggregator``, version 1).

    Shapes: ``log_weights: (G, J, K)``, ``biases: (G, J)``, ``K = len(inputs)``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["prl-aggregator"] = Field(description="file type marker")
    version: Literal[1] = Field(default=1, description="file format version")
    kind: Literal["smooth_minmax"] = Field(
        default="smooth_minmax", description="network family (the only one so far)"
    )
    inputs: list[str] = Field(
        min_length=1, max_length=64, description="component names, in the order the spec lists"
    )
    log_weights: list[list[list[float]]] = Field(
        min_length=1, max_length=64, description="a_gjk; unit weights are exp(a) > 0"
    )
    biases: list[list[float]] = Field(min_length=1, max_length=64, description="b_gj")
    log_beta: float = Field(
        ge=-MAX_LOG, le=MAX_LOG, description="log of the soft-min/max sharpness β"
    )
    offset: float = Field(default=0.0, description="output calibration: (y − offset) · gain")
    gain: float = Field(default=1.0, gt=0.0, description="output calibration, > 0")
    provenance: dict[str, Any] = Field(
        default_factory=dict, description="what the model was fitted on (runs, loss, date)"
    )

    @model_validator(mode="after")
    def _shapes(self) -> ModelFile:
        k = len(self.inputs)
        if len(set(self.inputs)) != k:
            raise ValueError("inputs: a component is listed twice")
        g, j = len(self.log_weights), len(self.log_weights[0])
        if j == 0:
            raise ValueError("log_weights: a group has no units")
        for gi, group in enumerate(self.log_weights):
            if len(group) != j:
                raise ValueError(f"log_weights[{gi}]: {len(group)} units, group 0 has {j}")
            for ji, unit in enumerate(group):
                if len(unit) != k:
                    raise ValueError(f"log_weights[{gi}][{ji}]: {len(unit)} weights for {k} inputs")
        if len(self.biases) != g or any(len(row) != j for row in self.biases):
            raise ValueError(f"biases: must be {g} rows of {j} (one per unit)")
        numbers = [self.offset, self.gain, *np.ravel(self.biases).tolist()]
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError("biases, offset and gain must be finite")
        a = np.asarray(self.log_weights, dtype=np.float64)
        if not np.all(np.isfinite(a)) or np.abs(a).max() > MAX_LOG:
            raise ValueError(f"log_weights must be finite and within ±{MAX_LOG:g}")
        return self


@dataclass(frozen=True)
class SmoothMinMax:
    """The network of :class:`ModelFile` as arrays: ``w: (G, J, K)`` (= exp(a) > 0),
    ``b: (G, J)``, ``beta > 0``, calibration ``offset``/``gain``."""

    inputs: tuple[str, ...]
    w: np.ndarray
    b: np.ndarray
    beta: float
    offset: float = 0.0
    gain: float = 1.0

    @classmethod
    def of(cls, m: ModelFile) -> SmoothMinMax:
        return cls(
            tuple(m.inputs),
            np.exp(np.asarray(m.log_weights, dtype=np.float64)),
            np.asarray(m.biases, dtype=np.float64),
            math.exp(m.log_beta),
            m.offset,
            m.gain,
        )

    def raw(self, x: np.ndarray) -> np.ndarray:
        """``y(x)`` (uncalibrated, unclipped) for ``x: (S, K)`` → ``(S,)``."""
        z = np.einsum("sk,gjk->sgj", x, self.w) + self.b
        m = -logsumexp(-self.beta * z, axis=2) / self.beta
        return logsumexp(self.beta * m, axis=1) / self.beta

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``clip((y(x) − offset) · gain, 0, 1)``: ``x: (S, K)`` in [0, 1] → ``(S,)``."""
        return np.clip((self.raw(x) - self.offset) * self.gain, 0.0, 1.0)


# ---- loading ------------------------------------------------------------------------------


class ModelFileError(ValueError):
    """A model file that cannot be used; the message says which file and what to fix."""


_CACHE: OrderedDict[tuple[str, int, int], tuple[SmoothMinMax, str]] = OrderedDict()
_CACHE_SIZE = 64
_LOCK = threading.Lock()


def resolve_path(path: str) -> Path:
    """``path`` as the service reads it: inside ``PRL_REWARD_AGGREGATOR_DIR`` when that is set
    (relative paths are taken from there, anything resolving outside is refused)."""
    root = os.environ.get(DIR_ENV)
    p = Path(path).expanduser()
    if not root:
        return p.resolve()
    base = Path(root).expanduser().resolve()
    full = (base / p).resolve()
    if not full.is_relative_to(base):
        raise ModelFileError(f"{path!r} is outside {DIR_ENV} ({base}); put the model file there")
    return full


def load_model(path: str) -> tuple[SmoothMinMax, str]:
    """The network in the JSON file at ``path`` and the file's SHA-256 (hex).

    Cached per (resolved path, modification time, size), so a rewritten file is read again.
    Raises :class:`ModelFileError` for a missing, oversized, unreadable or malformed file.
    """
    try:
        full = resolve_path(path)
    except (OSError, RuntimeError, ValueError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path!r} is not a usable file path") from None
    if full.suffix != ".json":
        raise ModelFileError(
            f"{path!r}: a model file is a .json file written by `prl rewards fit-aggregator`"
        )
    try:
        st = full.stat()
    except (OSError, ValueError):
        raise ModelFileError(
            f"{path!r}: no such model file; fit one with `prl rewards fit-aggregator`"
        ) from None
    if not full.is_file():
        raise ModelFileError(f"{path!r} is not a file")
    if st.st_size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path!r} is {st.st_size} bytes; a model file is at most 1 MiB")
    key = (str(full), st.st_mtime_ns, st.st_size)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    try:
        data = full.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path!r} cannot be read ({exc.strerror})") from None
    got = (SmoothMinMax.of(parse_model(data, path)), hashlib.sha256(data).hexdigest())
    with _LOCK:
        _CACHE[key] = got
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return got


def parse_model(data: bytes | str, where: str = "model") -> ModelFile:
    """Validate a model file's bytes (:class:`ModelFileError` naming the first problem)."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{where!r} is not a JSON model file ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelFileError(
            f'{where!r} is not a learned-aggregator model (its "format" must be {FORMAT!r})'
        )
    try:
        return ModelFile.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ModelFileError(
            f"{where!r} is a corrupt model file: {loc + ': ' if loc else ''}{msg}"
        ) from None


# ---- the registered aggregator --------------------------------------------------------------


class LearnedParams(BaseModel):
    """Parameters of ``learned``; validating them reads (and caches) the model file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        min_length=1,
        max_length=1024,
        description="the model file (.json) written by `prl rewards fit-aggregator`, as the "
        "reward service sees it (inside PRL_REWARD_AGGREGATOR_DIR when that is set)",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="pin the file's SHA-256 (a different file is refused); the resolved spec "
        "always carries the hash of the file it read",
    )
    scale: float = Field(default=1.0, gt=0.0, le=1e6, description="multiplies the result")

    _net: SmoothMinMax | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any) -> Any:
        path = data.get("path") if isinstance(data, dict) else None
        if not isinstance(path, str) or not 0 < len(path) <= 1024:
            return data  # field validation reports it
        try:
            _, digest = load_model(data["path"])
        except ModelFileError as exc:
            raise ModelFileError(f"path {exc}") from None
        pinned = data.get("sha256")
        if pinned is not None and pinned != digest:
            raise ModelFileError(
                f"path {data['path']!r}: the file's SHA-256 is {digest}, the spec pins {pinned}"
            )
        return {**data, "sha256": digest}

    @model_validator(mode="after")
    def _attach(self) -> LearnedParams:
        net, digest = load_model(self.path)
        if digest != self.sha256:
            raise ModelFileError(f"path {self.path!r}: the file changed while it was read")
        self._net = net
        return self

    @property
    def net(self) -> SmoothMinMax:
        assert self._net is not None
        return self._net


def _check(p: LearnedParams, names: list[str], weights: list[float]) -> str | None:
    """The spec's components must be the model's inputs, in order, with weight 1."""
    inputs = list(p.net.inputs)
    if names != inputs:
        return (
            f"the model in {p.path!r} was fitted on {len(inputs)} components {inputs} (in this "
            f"order); the spec lists {len(names)}: {names}"
        )
    off = [n for n, w in zip(names, weights, strict=True) if w != 1.0]
    if off:
        return (
            f"component weights are not used by the learned aggregator (the model weighs its "
            f"inputs); leave the weight of {', '.join(off)} at 1"
        )
    return None


def learned(raw: np.ndarray, scaled: np.ndarray, w: np.ndarray, p: LearnedParams) -> np.ndarray:
    """Monotone smooth min–max network read from a model file (DEVA's learnable aggregation):
    R = scale · clip((y(r̂') − offset) · gain, 0, 1), y = softmax_g softmin_j (Σ_k e^{a_gjk} r̂'_k
    + b_gj) with sharpness β; r̂'_k = r̂_k, or 0 where the component is missing (w_k = 0)."""
    x = np.where(w > 0, scaled, 0.0)
    return p.scale * p.net(x)


aggregators.register("learned")(
    Aggregator("learned", (learned.__doc__ or "").strip(), LearnedParams, learned, check=_check)
)
