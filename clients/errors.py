"""Typed exceptions of the client SDK, one class per failure class.

Every exception carries the ``request_id`` of the call (the ``X-Request-ID`` response header,
else ``error.request_id`` of the body, else the id the client sent), so a failure seen in a
training log can be found in the service's logs. The hierarchy follows openai-python's
``_exceptions.py`` (status → class), adapted to our error body
``{"error": {"code", "message", "request_id"}}``::

    PRLClientError
    ├── APIConnectionError          no response (refused, reset, DNS)
    │   └── APITimeoutError         no response within the timeout
    ├── APIStatusError              the server answered with a non-2xx status
    │   ├── BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403,
    │   │   NotFoundError 404, ConflictError 409, PayloadTooLargeError 413,
    │   │   UnprocessableEntityError 422, RateLimitError 429
    │   └── ServerError ≥500
    │       └── ServiceUnavailableError 503, GatewayTimeoutError 504
    └── ResponseValidationError     a 2xx whose body does not match the expected schema
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class PRLClientError(Exception):
    """Base of every exception the SDK raises."""

    def __init__(self, message: str, *, request_id: str | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.attempts = attempts

    def __str__(self) -> str:
        parts = [f"request_id={self.request_id}"] if self.request_id else []
        if self.attempts > 1:
            parts.append(f"attempts={self.attempts}")
        return self.message + (f" ({', '.join(parts)})" if parts else "")


class APIConnectionError(PRLClientError):
    """The request got no HTTP response (connection refused or reset, DNS failure, …)."""


class APITimeoutError(APIConnectionError):
    """The request got no response within its timeout."""


class APIStatusError(PRLClientError):
    """The server answered with a non-2xx status.

    Attributes: ``status_code``; ``code`` (the machine-readable ``error.code`` of the body,
    e.g. ``"validation_error"``, ``"overloaded"``); ``body`` (decoded JSON or text);
    ``retry_after`` (seconds asked by a ``Retry-After`` header, if any).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        body: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, request_id=request_id, attempts=attempts)
        self.status_code = status_code
        self.code = code
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"HTTP {self.status_code}{code}: {super().__str__()}"


class BadRequestError(APIStatusError):
    """400."""


class AuthenticationError(APIStatusError):
    """401: no API key, or an unknown one. Pass ``api_key=`` or set ``PRL_API_KEY``."""


class PermissionDeniedError(APIStatusError):
    """403: the API key lacks the scope the route needs (writes need ``write``)."""


class NotFoundError(APIStatusError):
    """404: unknown route, preset, suite or run."""


class ConflictError(APIStatusError):
    """409: e.g. the same ``Idempotency-Key`` is still being processed (retried)."""


class PayloadTooLargeError(APIStatusError):
    """413: the body exceeds the server's limit; batch calls split and retry on their own."""


class UnprocessableEntityError(APIStatusError):
    """422: the request does not validate (never retried); ``message`` names the field."""


class RateLimitError(APIStatusError):
    """429: per-key quota; retried after ``Retry-After``."""


class ServerError(APIStatusError):
    """≥500: the server failed; retried."""


class ServiceUnavailableError(ServerError):
    """503: overloaded or draining; retried after ``Retry-After``."""


class GatewayTimeoutError(ServerError):
    """504: the server gave up on the request (its own deadline)."""


class ResponseValidationError(PRLClientError):
    """The server answered 2xx with a body that does not match the expected schema."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    504: GatewayTimeoutError,
}


def error_class(status: int) -> type[APIStatusError]:
    """The exception class for an HTTP status (``ServerError`` for any other ≥500)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else APIStatusError


def _decode_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return response.text


def make_status_error(
    response: httpx.Response,
    *,
    sent_request_id: str | None = None,
    retry_after: float | None = None,
) -> APIStatusError:
    """Build the typed exception for a non-2xx ``response``.

    The message is ``error.message`` of our error body, else FastAPI's ``detail``, else the
    raw text (truncated). The request id is the ``X-Request-ID`` header, else the body's, else
    the id that was sent.
    """
    body = _decode_body(response)
    err = body.get("error") if isinstance(body, dict) else None
    code = message = rid = None
    if isinstance(err, dict):
        code, message, rid = err.get("code"), err.get("message"), err.get("request_id")
    elif isinstance(body, dict) and "detail" in body:
        message = body["detail"] if isinstance(body["detail"], str) else json.dumps(body["detail"])
    if not message:
        text = body if isinstance(body, str) else json.dumps(body)
        message = text[:500] or response.reason_phrase or "no body"
    request_id = response.headers.get("x-request-id") or rid or sent_request_id
    cls = error_class(response.status_code)
    return cls(
        str(message),
        status_code=response.status_code,
        code=code,
        body=body,
        request_id=request_id,
        retry_after=retry_after,
    )
