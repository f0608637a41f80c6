"""What every trainer adapter shares: reading targets, completion text, deadline + fallback.

A *target* is what the reward service needs besides the completion: the solution, the frame,
optionally the image and the query. Trainers hand it over in different shapes (a dataset
column, verl's ``ground_truth`` + ``extra_info``, EasyR1's ``ground_truth`` string), so
:func:`read_target` accepts a dict, a JSON string or a pydantic model, either the solution
itself or an envelope ``{"solution", "frame"?, "query"?, "image"?, "reward"?}``.

Failure policy (never a silent 0): a call that fails after the client's retries, or exceeds
``timeout_s``, gives each of its samples ``fallback_reward`` with ``fallback=True`` — which
every adapter logs as ``prl_fallback`` — and a warning in the log. A sample the service scored
but could not parse keeps the service's reward (0 by definition) and ``error`` set; it is not
a fallback. OpenRLHF's own client, by contrast, logs the failure and leaves the sample's reward unset
(``SingleTurnAgentExecutor``, OpenRLHF 0.11).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from clients.errors import PRLClientError
from clients.retry import RetryPolicy
from clients.reward import AsyncRewardClient
from schemas.geometry import Frame
from schemas.reward import RewardRef, RewardSpec, Sample, Solution

log = logging.getLogger(__name__)

T = TypeVar("T")

_SOLUTION = TypeAdapter(Solution)


@dataclass(frozen=True)
class Target:
    """Everything but the completion that one sample needs."""

    solution: Any
    frame: Frame = field(default_factory=Frame)
    query: str | None = None
    image: str | None = None
    reward: RewardRef | None = None
    mask: Any = None  # a PatchMask dict / JSON (DEVA alignment), or None


def _as_obj(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, str | bytes):
        text = value.strip()
        if not text:
            return None
        return json.loads(text)
    return value


def read_frame(value: Any) -> Frame:
    """A :class:`Frame` from a dict / JSON string / model; None or empty → pixel frame."""
    obj = drop_none(_as_obj(value))
    return Frame() if not obj else Frame.model_validate(obj)


def drop_none(obj: Any) -> Any:
    """``obj`` without None-valued keys, in it and in its nested dicts.

    A parquet column of dicts read through ``datasets`` (as verl's ``RLHFDataset`` reads it)
    gets the union of the keys of all rows, missing ones filled with None
    (``{"boxes": None, "label": "cat"}``): None means "absent" here.
    """
    if isinstance(obj, Mapping):
        return {k: drop_none(v) for k, v in obj.items() if v is not None}
    return obj


def read_target(value: Any, frame: Any = None, **extra: Any) -> Target | None:
    """Parse a solution or an envelope into a :class:`Target`; None/empty → None (not applicable).

    ``frame`` and ``extra`` (``query``, ``image``, ``reward``) fill what the envelope lacks.
    None-valued keys count as absent (:func:`drop_none`). Malformed values raise
    ``ValueError`` naming the problem — a broken dataset column is a bug to fix, not a
    reward of 0.
    """
    try:
        obj = drop_none(_as_obj(value))
    except json.JSONDecodeError as exc:
        raise ValueError(f"solution is not valid JSON: {exc}") from exc
    if obj is None or obj == {}:
        return None
    if not isinstance(obj, Mapping):
        raise ValueError(f"solution must be an object, got {type(obj).__name__}")
    if "solution" in obj:
        env = dict(obj)
        frame = env.get("frame", frame)
        extra = {k: env.get(k, extra.get(k)) for k in ("query", "image", "reward")}
        obj = env["solution"]
    try:
        solution = _SOLUTION.validate_python(_as_obj(obj))
    except ValidationError as exc:
        raise ValueError(f"solution does not match BoxSolution or LabelSolution: {exc}") from exc
    return Target(
        solution=solution,
        frame=read_frame(frame),
        query=extra.get("query"),
        image=extra.get("image"),
        reward=extra.get("reward"),
    )


def completion_text(completion: Any) -> str:
    """Text of a completion: a string, or TRL's conversational ``[{"role", "content"}]`` form.

    Content may be a string or a list of parts ``{"type": "text", "text": …}``; assistant
    messages are concatenated in order (all messages when none is marked assistant).
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    msgs = [m for m in completion if isinstance(m, Mapping)]
    chosen = [m for m in msgs if m.get("role") == "assistant"] or msgs
    return "".join(_content_text(m.get("content")) for m in chosen)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"
    )


def prompt_query(prompt: Any) -> str | None:
    """The user's text of a prompt (last user message when conversational): DEVA's query."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, Sequence):
        return None
    users = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
    return _content_text(users[-1].get("content")) if users else None


@dataclass
class Outcome:
    """One sample's result as an adapter reports it."""

    reward: float | None
    components: dict[str, float] = field(default_factory=dict)
    fallback: bool = False
    error: str | None = None
    applicable: bool = True
    component_errors: dict[str, str] = field(default_factory=dict)


def reward_key(reward: RewardRef | Mapping[str, Any]) -> str:
    """A hashable key of a preset name or spec (to batch samples sharing one reward)."""
    if isinstance(reward, str):
        return reward
    spec = reward if isinstance(reward, RewardSpec) else RewardSpec.model_validate(reward)
    return spec.model_dump_json()


class RemoteReward:
    """Picklable handle on the reward service: config only, clients made per event loop.

    ``timeout_s`` bounds each scoring call *including* its retries; ``fallback_reward`` is what
    each sample of a failed call gets (``None`` = "not applicable", only where the trainer
    understands it); ``strict`` raises the failure instead. The httpx client is created lazily
    per event loop and per process and is never pickled, so the object can travel to trainer
    workers (TRL's async GRPO worker, Ray); ``transport_factory`` (picklable, e.g. a module
    function) returns ``(httpx transport, base URL)`` for that client, e.g. an in-process ASGI
    transport.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        reward: RewardRef | Mapping[str, Any] = "dig",
        api_key: str | None = None,
        timeout_s: float = 60.0,
        fallback_reward: float | None = 0.0,
        max_retries: int = 3,
        chunk_size: int | None = None,
        components: Sequence[str] = (),
        coalesce_ms: float = 0.0,
        coalesce_max: int = 256,
        strict: bool = False,
        backoff_s: float | None = None,
        transport_factory: Any = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.coalesce_ms, self.coalesce_max = coalesce_ms, coalesce_max
        self.url = url
        self.reward = reward
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.fallback_reward = fallback_reward
        self.max_retries = max_retries
        self.chunk_size = chunk_size
        self.strict, self.backoff_s, self.transport_factory = strict, backoff_s, transport_factory
        self.fixed_components: list[str] = list(components)
        self.known_components: list[str] = list(components)
        self._preset_components: dict[str, list[str]] | None = None
        self._all_components: list[str] | None = None
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._pending: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._catalog_tasks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_clients", "_pending", "_lock", "_catalog_tasks"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._clients = weakref.WeakKeyDictionary()
        self._pending = weakref.WeakKeyDictionary()
        self._catalog_tasks = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def client(self) -> AsyncRewardClient:
        """The client of the running event loop (made on first use in that loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            rc = self._clients.get(loop)
            if rc is None:
                transport, url = None, self.url
                if self.transport_factory is not None:
                    transport, url = self.transport_factory()
                backoff = {} if self.backoff_s is None else {"initial_backoff_s": self.backoff_s}
                rc = AsyncRewardClient(
                    url,
                    api_key=self.api_key,
                    timeout=self.timeout_s,
                    retry=RetryPolicy(max_retries=self.max_retries, **backoff),
                    chunk_size=self.chunk_size,
                    transport=transport,
                )
                self._clients[loop] = rc
        return rc

    async def aclose(self) -> None:
        """Close this event loop's client (call before the loop ends, e.g. under asyncio.run)."""
        with self._lock:
            rc = self._clients.pop(asyncio.get_running_loop(), None)
        if rc is not None:
            await rc.aclose()

    async def score_and_close(
        self, completions: Sequence[str], targets: Sequence[Target | None]
    ) -> list[Outcome]:
        """:meth:`score`, then :meth:`aclose` — for one-shot loops (``asyncio.run``)."""
        try:
            return await self.score(completions, targets)
        finally:
            await self.aclose()

    async def score(
        self, completions: Sequence[str], targets: Sequence[Target | None]
    ) -> list[Outcome]:
        """Score aligned completions/targets; one request per distinct reward, run together.

        A None target is "not applicable" (``Outcome.applicable = False``, reward None).
        """
        out: list[Outcome] = [Outcome(None, applicable=False) for _ in completions]
        buckets: dict[str, list[int]] = {}
        refs: dict[str, Any] = {}
        for i, t in enumerate(targets):
            if t is None:
                continue
            ref = t.reward if t.reward is not None else self.reward
            key = reward_key(ref)
            buckets.setdefault(key, []).append(i)
            refs[key] = ref
        await self._learn_components(list(refs.values()))
        results = await asyncio.gather(
            *(self._score_bucket(refs[k], idx, completions, targets) for k, idx in buckets.items())
        )
        for idx, outcomes in zip(buckets.values(), results, strict=True):
            for i, o in zip(idx, outcomes, strict=True):
                out[i] = o
        return out

    async def score_one(self, completion: str, target: Target | None) -> Outcome:
        """Score one sample; with ``coalesce_ms > 0`` concurrent calls are sent together.

        Calls arriving in the same event loop within ``coalesce_ms`` of the first (or until
        ``coalesce_max`` are waiting) go out as one :meth:`score` — verl's Reward Loop calls
        ``compute_score`` once per sample, concurrently, so this turns N requests into a few.
        """
        if self.coalesce_ms <= 0:
            return (await self.score([completion], [target]))[0]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        batch = self._pending.setdefault(loop, [])
        batch.append((completion, target, future))
        if len(batch) == 1:
            loop.call_later(self.coalesce_ms / 1000.0, self._flush, loop)
        elif len(batch) >= self.coalesce_max:
            self._flush(loop)
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, [])
        if batch:
            loop.create_task(self._score_batch(batch))

    async def _score_batch(self, batch: list[tuple[str, Target | None, asyncio.Future]]) -> None:
        try:
            outcomes = await self.score([b[0] for b in batch], [b[1] for b in batch])
        except Exception as exc:  # a bug (bad input): hand it to every waiting caller
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (*_, fut), outcome in zip(batch, outcomes, strict=True):
            if not fut.done():
                fut.set_result(outcome)

    async def _learn_components(self, refs: Sequence[Any]) -> None:
        """Add the component names of ``refs`` to :attr:`known_components` before scoring.

        Specs name them directly; preset names are looked up once per process in
        ``GET /v1/rewards`` (best effort, bounded by ``min(timeout_s, 5)``), so that even a
        fallback result carries every component key.
        """
        if not self.fixed_components and self._all_components is None:
            await self._fetch_catalog()
        names: list[str] = []
        for ref in refs:
            if isinstance(ref, str):
                if self._preset_components is None:
                    await self._fetch_catalog()
                names += (self._preset_components or {}).get(ref, [])
            else:
                spec = ref if isinstance(ref, RewardSpec) else RewardSpec.model_validate(ref)
                names += [c.name for c in spec.components]
        self.known_components = list(dict.fromkeys([*self.known_components, *names]))

    async def _fetch_catalog(self) -> None:
        """``GET /v1/rewards`` once per process: preset → component names, and every component
        name. Concurrent callers share one in-flight look-up; a failed one is not cached (the
        next call tries again)."""
        loop = asyncio.get_running_loop()
        task = self._catalog_tasks.get(loop)
        if task is None or task.done():
            task = loop.create_task(self._load_catalog())
            self._catalog_tasks[loop] = task
        await asyncio.shield(task)

    async def _load_catalog(self) -> None:
        try:
            catalog = await asyncio.wait_for(self.client().rewards(), min(self.timeout_s, 5.0))
        except (TimeoutError, PRLClientError):
            return
        self._preset_components = {
            p.name: [c.name for c in p.spec.components] for p in catalog.presets
        }
        names = [c.name for c in catalog.components]
        if not names:  # a catalog listing presets only: the components they use
            names = list(dict.fromkeys(n for ns in self._preset_components.values() for n in ns))
        self._all_components = names

    async def all_components(self) -> list[str] | None:
        """Every component name the service registers (cached; None while it cannot be read)."""
        if self._all_components is None:
            await self._fetch_catalog()
        return self._all_components

    async def _score_bucket(self, ref, idx, completions, targets) -> list[Outcome]:
        samples = [
            Sample(
                id=str(i),
                completion=completions[i],
                solution=targets[i].solution,
                frame=targets[i].frame,
                query=targets[i].query,
                image=targets[i].image,
                mask=_as_obj(targets[i].mask),
            )
            for i in idx
        ]
        try:
            resp = await asyncio.wait_for(
                self.client().score(samples, reward=ref), timeout=self.timeout_s
            )
        except (TimeoutError, PRLClientError) as exc:
            if self.strict:
                raise
            return self._fallbacks(len(idx), exc)
        names = [c.name for c in resp.reward.components]
        self.known_components = list(dict.fromkeys([*self.known_components, *names]))
        by_id = {r.id: r for r in resp.results}  # matched by id, whatever the answer's order
        return [
            Outcome(
                r.reward,
                dict(r.components),
                error=r.error.code if r.error else None,
                component_errors={n: e.code for n, e in r.component_errors.items()},
            )
            for r in (by_id[str(i)] for i in idx)
        ]

    def _fallbacks(self, n: int, exc: BaseException) -> list[Outcome]:
        what = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        log.warning(
            "reward service call failed (%s: %s); %d samples get the fallback reward %r "
            "and prl_fallback=1",
            what,
            exc or f"no answer within {self.timeout_s}s",
            n,
            self.fallback_reward,
        )
        return [Outcome(self.fallback_reward, fallback=True, error=what) for _ in range(n)]

    def key_components(self) -> list[str]:
        """The component keys every flat result carries, the same for every sample.

        ``components`` given at construction, exactly; else every component the service
        registers (``GET /v1/rewards``, read before the first score); else, while the catalog
        cannot be read, the names seen so far.
        """
        if self.fixed_components:
            return list(self.fixed_components)
        if self._all_components is not None:
            return list(self._all_components)
        return list(self.known_components)

    def components_of(self, outcome: Outcome, fill: float = 0.0) -> dict[str, float]:
        """:meth:`key_components` → value (``fill`` where the outcome lacks it): stable keys for
        trainers that collect per-key lists over samples (verl, EasyR1)."""
        return {n: float(outcome.components.get(n, fill)) for n in self.key_components()}

    def flat_result(self, outcome: Outcome, score_key: str) -> dict[str, float]:
        """``{score_key, <components>, "prl_fallback", "prl_error"}`` — numbers only, stable
        keys (verl's ``score``, EasyR1's ``overall``); a missing reward is NaN, never 0."""
        score = outcome.reward if outcome.reward is not None else float("nan")
        return {
            score_key: float(score),
            **self.components_of(outcome),
            "prl_fallback": float(outcome.fallback),
            "prl_error": float(outcome.error is not None),
        }


class BackgroundLoop:
    """One event loop in a daemon thread per process, for sync callers that come and go.

    A trainer that calls a sync reward function from fresh threads (OpenRLHF's
    ``asyncio.to_thread(reward_func, ...)``, EasyR1's Ray actor) would otherwise get a new
    event loop — and so a new HTTP client, a new connection and new limit/catalog look-ups —
    on every call. Here every call runs on the same loop, so :class:`RemoteReward` keeps one
    client, and concurrent calls can share a request (``coalesce_ms``). After ``fork`` the
    child makes its own loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="prl-reward-loop", daemon=True
                )
                thread.start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the background loop and wait for its result (from any thread)."""
        loop = self.loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            raise RuntimeError("BackgroundLoop.run called from its own loop; await instead")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


BACKGROUND = BackgroundLoop()
"""The process's background loop (see :class:`BackgroundLoop`)."""


def run_coroutine_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, also when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
