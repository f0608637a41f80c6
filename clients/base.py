"""Shared sync + async HTTP base of every client (httpx).

One :class:`_ClientCore` holds what both flavours share — URL, auth header, timeouts,
connection-pool limits, :class:`~clients.retry.RetryPolicy`, request ids, idempotency keys,
error mapping, response parsing, batch chunking — and :class:`SyncAPIClient` /
:class:`AsyncAPIClient` add only the I/O loop. Layout after openai-python's
``_base_client.py`` (sync/async twins over a shared base).

Per logical call the client picks one ``X-Request-ID`` and, for writes (non-GET), one
``Idempotency-Key``; both are resent unchanged on every retry of that call, so a server that
stores results can recognise a replay (IETF draft-ietf-httpapi-idempotency-key-header).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from clients.chunking import ServerLimits, join_json_array, pack_chunks
from clients.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    PayloadTooLargeError,
    PRLClientError,
    ResponseValidationError,
    make_status_error,
)
from clients.retry import RetryPolicy, parse_retry_after, retry_delay

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
R = TypeVar("R")

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_MAX_CONNECTIONS = 64
SDK_VERSION = "0.1.0"


def new_request_id() -> str:
    return uuid.uuid4().hex


def new_idempotency_key() -> str:
    return f"prl-{uuid.uuid4().hex}"


def encode_json(value: Any) -> bytes:
    """Compact JSON bytes of a pydantic model or plain data (``None`` fields of models dropped)."""
    if isinstance(value, BaseModel):
        return value.model_dump_json(exclude_none=True).encode()
    return to_json(value)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call as data: what to send and how to read the answer. Endpoint methods of
    both twins build the same ``Call`` (module-level builders next to each client) and differ
    only in how they send it: ``client.send(call)`` or ``await client.send(call)``."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    content: bytes | None = None
    idempotency_key: str | None = None
    timeout: float | httpx.Timeout | None = None


@dataclass(frozen=True)
class BatchCall(Generic[T, R]):
    """A batch POST as data: ``prefix [item, …] suffix``, split into as many requests as the
    limits need (``item_key`` names the server's item limit), each answer parsed by ``parse``
    and the parts joined by ``merge``; ``check_chunks(n)`` may refuse a batch that would need
    ``n`` requests. Sent by ``client.send_batch(batch)`` (sync or awaited)."""

    path: str
    prefix: bytes
    items: Sequence[bytes]
    suffix: bytes
    item_key: str
    parse: Callable[[httpx.Response], T]
    merge: Callable[[list[T]], R]
    weights: Sequence[int] | None = None
    check_chunks: Callable[[int], None] | None = None


def _chunk_kwargs(batch: BatchCall[Any, Any]) -> dict[str, Any]:
    """The ``post_chunked`` keywords of ``batch`` (shared by the sync and async clients)."""
    return {
        "prefix": batch.prefix,
        "items": batch.items,
        "suffix": batch.suffix,
        "item_key": batch.item_key,
        "parse": batch.parse,
        "weights": batch.weights,
    }


def get_call(path: str, model: type[M], **params: Any) -> Call[M]:
    """``GET path?params`` answered by ``model``."""
    return Call("GET", path, partial(_ClientCore.parse, model), params or None)


def json_call(path: str, **params: Any) -> Call[Any]:
    """``GET path?params`` answered by any JSON."""
    return Call("GET", path, _json_of, params or None)


def post_call(
    path: str,
    body: Any,
    model: type[M],
    *,
    idempotency_key: str | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> Call[M]:
    """``POST path`` with the JSON of ``body`` (:func:`encode_json`), answered by ``model``."""
    return Call(
        "POST",
        path,
        partial(_ClientCore.parse, model),
        content=encode_json(body),
        idempotency_key=idempotency_key,
        timeout=timeout,
    )


def _json_of(response: httpx.Response) -> Any:
    return response.json()


class _Attempts:
    """The retry loop of one logical request, without its I/O: the twins' ``request`` send
    :meth:`kwargs`, hand the outcome to :meth:`settle` and sleep for the delay it returns."""

    __slots__ = ("attempt", "client", "headers", "method", "path", "request_id", "send_kw")

    def __init__(self, client: _ClientCore, method: str, path: str, **send_kw: Any) -> None:
        self.client, self.method, self.path = client, method, path
        self.request_id = new_request_id()
        key = send_kw.pop("idempotency_key")
        if method.upper() != "GET" and key is None:
            key = new_idempotency_key()
        self.headers = client._headers(method, self.request_id, key)
        if send_kw["content"] is not None:
            self.headers["Content-Type"] = "application/json"
        timeout = send_kw.pop("timeout")
        send_kw["timeout"] = timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT
        self.send_kw = send_kw
        self.attempt = 0

    def kwargs(self) -> dict[str, Any]:
        """Arguments of ``httpx.(Async)Client.request`` for the next attempt."""
        self.headers["X-PRL-Retry-Count"] = str(self.attempt)
        return {"method": self.method, "url": self.path, "headers": self.headers, **self.send_kw}

    def settle(self, outcome: httpx.Response | httpx.TransportError) -> httpx.Response | float:
        """The 2xx response, or the delay before the next attempt; raises the typed error
        when the policy allows no more retries."""
        c = self.client
        if isinstance(outcome, httpx.TransportError):
            err: PRLClientError = c._transport_error(
                outcome, self.request_id, c.base_url + self.path
            )
        elif outcome.is_success:
            return outcome
        else:
            err = c._status_error(outcome, self.request_id)
        err.attempts = self.attempt + 1
        delay = retry_delay(err, self.attempt, c.retry, c.rng)
        if delay is None:
            raise err
        c._log_retry(self.method, self.path, err, self.attempt, delay)
        self.attempt += 1
        return delay


class _ClientCore:
    """State and pure helpers shared by the sync and async clients."""

    env_url: str = "PRL_URL"
    default_url: str = "http://127.0.0.1:8000"
    limits_path: str | None = None

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        chunk_size: int | None = None,
        max_body_bytes: int | None = None,
        discover_limits: bool = True,
        headers: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get(self.env_url) or self.default_url).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("PRL_API_KEY")
        self.timeout = (
            timeout
            if isinstance(timeout, httpx.Timeout)
            else httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        )
        self.retry = retry or RetryPolicy()
        self.pool_limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self.configured_limits = ServerLimits(chunk_size, max_body_bytes)
        self.discover_limits = discover_limits and self.limits_path is not None
        self._server_limits: dict[str, Any] | None = None
        self.extra_headers = dict(headers or {})
        self.rng = rng or random.Random()

    # ---- headers, errors, parsing (pure) -------------------------------------------------
    def _headers(self, method: str, request_id: str, idempotency_key: str | None) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"perception-rl-client/{SDK_VERSION}",
            "X-Request-ID": request_id,
            **self.extra_headers,
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if method.upper() != "GET" and idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    @staticmethod
    def _status_error(response: httpx.Response, request_id: str) -> APIStatusError:
        return make_status_error(
            response,
            sent_request_id=request_id,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    @staticmethod
    def _transport_error(
        exc: httpx.TransportError, request_id: str, url: str
    ) -> APIConnectionError:
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(
                f"no response from {url} within the timeout ({type(exc).__name__})",
                request_id=request_id,
            )
        return APIConnectionError(
            f"could not reach {url}: {type(exc).__name__}: {exc}", request_id=request_id
        )

    @staticmethod
    def parse(model: type[M], response: httpx.Response) -> M:
        """Validate a 2xx body against ``model``; mismatch → :class:`ResponseValidationError`."""
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise ResponseValidationError(
                f"{response.request.method} {response.request.url.path}: the response does not "
                f"match {model.__name__}: {exc.errors(include_url=False)[:3]}",
                request_id=response.headers.get("x-request-id"),
            ) from exc

    def _log_retry(self, method: str, path: str, err: PRLClientError, attempt: int, delay: float):
        log.warning(
            "%s %s failed (%s); retry %d/%d in %.2fs",
            method,
            path,
            err,
            attempt + 1,
            self.retry.max_retries,
            delay,
        )

    # ---- limits and chunking -------------------------------------------------------------
    def _limits_from(self, item_key: str) -> ServerLimits:
        server = ServerLimits.from_payload(self._server_limits or {}, item_key)
        return self.configured_limits.tightest(server)

    def _check_plan(self, batch: BatchCall[Any, Any], limits: ServerLimits) -> None:
        """Let ``batch.check_chunks`` refuse the number of requests ``limits`` would need."""
        assert batch.check_chunks is not None
        plan = self._plan(batch.prefix, batch.items, batch.suffix, limits, batch.weights)
        batch.check_chunks(len(plan))

    def _plan(
        self,
        prefix: bytes,
        items: Sequence[bytes],
        suffix: bytes,
        limits: ServerLimits,
        weights: Sequence[int] | None = None,
    ) -> list[tuple[int, int]]:
        overhead = len(prefix) + len(suffix) + 2
        # Keep 1% headroom for the body-size check: proxies may count headers differently.
        max_bytes = int(limits.max_body_bytes * 0.99) if limits.max_body_bytes else None
        return pack_chunks(
            [len(i) for i in items],
            max_items=limits.max_items,
            max_bytes=max_bytes,
            overhead=overhead,
            weights=weights,
        )


class SyncAPIClient(_ClientCore):
    """Blocking client over ``httpx.Client``. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, **kwargs)
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout,
            limits=self.pool_limits,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send with retries; return the 2xx response or raise the last typed error."""
        tries = _Attempts(
            self,
            method,
            path,
            content=content,
            params=params,
            idempotency_key=idempotency_key,
            timeout=timeout,
        )
        while True:
            try:
                outcome: httpx.Response | httpx.TransportError = self._http.request(
                    **tries.kwargs()
                )
            except httpx.TransportError as exc:
                outcome = exc
            got = tries.settle(outcome)
            if isinstance(got, httpx.Response):
                return got
            self._sleep(got)

    def send(self, call: Call[T]) -> T:
        """Send a :class:`Call` (with retries) and parse its answer."""
        response = self.request(
            call.method,
            call.path,
            content=call.content,
            params=call.params,
            idempotency_key=call.idempotency_key,
            timeout=call.timeout,
        )
        return call.parse(response)

    def get_model(self, path: str, model: type[M], **params: Any) -> M:
        return self.send(get_call(path, model, **params))

    def get_json(self, path: str, **params: Any) -> Any:
        return self.send(json_call(path, **params))

    def post_model(
        self, path: str, body: Any, model: type[M], *, idempotency_key: str | None = None
    ) -> M:
        return self.send(post_call(path, body, model, idempotency_key=idempotency_key))

    # ---- chunked batch POST --------------------------------------------------------------
    def server_limits(self, item_key: str) -> ServerLimits:
        """Configured limits, tightened by the server's ``limits_path`` answer (fetched once)."""
        if self.discover_limits and self._server_limits is None:
            self._server_limits = self._fetch_limits()
        return self._limits_from(item_key)

    def _fetch_limits(self) -> dict[str, Any] | None:
        try:
            return dict(self.get_json(self.limits_path or ""))
        except APIStatusError:
            return {}  # the server exposes no limits: remember that
        except (PRLClientError, TypeError, ValueError):
            return None  # unreachable or odd answer: try again next time

    def post_chunked(
        self,
        path: str,
        *,
        prefix: bytes,
        items: Sequence[bytes],
        suffix: bytes,
        item_key: str,
        parse: Callable[[httpx.Response], T],
        idempotency_key: str | None = None,
        weights: Sequence[int] | None = None,
    ) -> list[T]:
        """POST ``prefix [item, …] suffix`` in as many requests as the limits need, in order.

        Each slice is a separate write with key ``<key>-<i>`` (reused across its retries). A
        413 on a slice of several items splits it in two and sends both halves.
        """
        key = idempotency_key or new_idempotency_key()
        ranges = self._plan(prefix, items, suffix, self.server_limits(item_key), weights)
        out: list[T] = []
        for i, (a, b) in enumerate(ranges or [(0, 0)]):
            out.extend(self._post_range(path, prefix, items[a:b], suffix, parse, f"{key}-{i}"))
        return out

    def send_batch(self, batch: BatchCall[T, R]) -> R:
        """Send a :class:`BatchCall` in as many requests as the limits need; merged answer."""
        if batch.check_chunks is not None:
            self._check_plan(batch, self.server_limits(batch.item_key))
        return batch.merge(self.post_chunked(batch.path, **_chunk_kwargs(batch)))

    def _post_range(self, path, prefix, items, suffix, parse, key) -> list:
        body = join_json_array(prefix, items, suffix)
        try:
            return [parse(self.request("POST", path, content=body, idempotency_key=key))]
        except PayloadTooLargeError:
            if len(items) < 2:
                raise
            mid = len(items) // 2
            log.warning("%s: 413 for %d items; splitting in two", path, len(items))
            left = self._post_range(path, prefix, items[:mid], suffix, parse, f"{key}a")
            return left + self._post_range(path, prefix, items[mid:], suffix, parse, f"{key}b")


class AsyncAPIClient(_ClientCore):
    """Asyncio client over ``httpx.AsyncClient``; slices of a batch are sent concurrently.

    An ``httpx.AsyncClient`` belongs to the event loop that first used it; create one client
    per loop (the trainer adapters do this for you).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrent_chunks: int = 4,
        sleep: Callable[[float], Any] = asyncio.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, **kwargs)
        self._sleep = sleep
        self.max_concurrent_chunks = max_concurrent_chunks
        self._limits_task: asyncio.Task | None = None
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout,
            limits=self.pool_limits,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send with retries; return the 2xx response or raise the last typed error."""
        tries = _Attempts(
            self,
            method,
            path,
            content=content,
            params=params,
            idempotency_key=idempotency_key,
            timeout=timeout,
        )
        while True:
            try:
                outcome: httpx.Response | httpx.TransportError = await self._http.request(
                    **tries.kwargs()
                )
            except httpx.TransportError as exc:
                outcome = exc
            got = tries.settle(outcome)
            if isinstance(got, httpx.Response):
                return got
            await self._sleep(got)

    async def send(self, call: Call[T]) -> T:
        """Send a :class:`Call` (with retries) and parse its answer."""
        response = await self.request(
            call.method,
            call.path,
            content=call.content,
            params=call.params,
            idempotency_key=call.idempotency_key,
            timeout=call.timeout,
        )
        return call.parse(response)

    async def get_model(self, path: str, model: type[M], **params: Any) -> M:
        return await self.send(get_call(path, model, **params))

    async def get_json(self, path: str, **params: Any) -> Any:
        return await self.send(json_call(path, **params))

    async def post_model(
        self, path: str, body: Any, model: type[M], *, idempotency_key: str | None = None
    ) -> M:
        return await self.send(post_call(path, body, model, idempotency_key=idempotency_key))

    # ---- chunked batch POST --------------------------------------------------------------
    async def server_limits(self, item_key: str) -> ServerLimits:
        """Configured limits, tightened by the server's ``limits_path`` answer (fetched once;
        concurrent first calls share one request)."""
        if self.discover_limits and self._server_limits is None:
            task = self._limits_task
            if task is None or task.done():
                task = asyncio.get_running_loop().create_task(self._fetch_limits())
                self._limits_task = task
            limits = await asyncio.shield(task)
            if self._server_limits is None:
                self._server_limits = limits
        return self._limits_from(item_key)

    async def _fetch_limits(self) -> dict[str, Any] | None:
        try:
            return dict(await self.get_json(self.limits_path or ""))
        except APIStatusError:
            return {}
        except (PRLClientError, TypeError, ValueError):
            return None

    async def post_chunked(
        self,
        path: str,
        *,
        prefix: bytes,
        items: Sequence[bytes],
        suffix: bytes,
        item_key: str,
        parse: Callable[[httpx.Response], T],
        idempotency_key: str | None = None,
        weights: Sequence[int] | None = None,
    ) -> list[T]:
        """Async twin of :meth:`SyncAPIClient.post_chunked`; up to ``max_concurrent_chunks``
        slices in flight at once, results in batch order."""
        key = idempotency_key or new_idempotency_key()
        ranges = self._plan(prefix, items, suffix, await self.server_limits(item_key), weights)
        gate = asyncio.Semaphore(self.max_concurrent_chunks)

        async def one(i: int, a: int, b: int) -> list[T]:
            async with gate:
                return await self._post_range(path, prefix, items[a:b], suffix, parse, f"{key}-{i}")

        parts = await asyncio.gather(*(one(i, a, b) for i, (a, b) in enumerate(ranges or [(0, 0)])))
        return [x for part in parts for x in part]

    async def send_batch(self, batch: BatchCall[T, R]) -> R:
        """Async twin of :meth:`SyncAPIClient.send_batch` (slices sent concurrently)."""
        if batch.check_chunks is not None:
            self._check_plan(batch, await self.server_limits(batch.item_key))
        return batch.merge(await self.post_chunked(batch.path, **_chunk_kwargs(batch)))

    async def _post_range(self, path, prefix, items, suffix, parse, key) -> list:
        body = join_json_array(prefix, items, suffix)
        try:
            return [parse(await self.request("POST", path, content=body, idempotency_key=key))]
        except PayloadTooLargeError:
            if len(items) < 2:
                raise
            mid = len(items) // 2
            log.warning("%s: 413 for %d items; splitting in two", path, len(items))
            left = await self._post_range(path, prefix, items[:mid], suffix, parse, f"{key}a")
            return left + await self._post_range(
                path, prefix, items[mid:], suffix, parse, f"{key}b"
            )
