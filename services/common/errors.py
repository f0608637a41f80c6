"""The one error body every service answers with: ``{"error": {"code", "message", "request_id"}}``.

Exception handlers (:func:`error_response`), the ASGI guard middleware (:func:`error_bytes`,
which answers before FastAPI is reached) and the OpenAPI document (:data:`ERROR_SCHEMA`) all
build it from :class:`ErrorBody`; the SDK (``clients.errors``) reads the same fields.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field


class ErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str = Field(description="machine-readable error code (validation_error, not_found, …)")
    message: str = Field(description="what went wrong and what to change")
    request_id: str = Field(description="the X-Request-ID of the request, for the logs")


class ErrorBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    error: ErrorInfo


def error_content(code: str, message: str, request_id: str) -> dict[str, Any]:
    """The error body as a JSON-ready dict."""
    return ErrorBody(
        error=ErrorInfo(code=code, message=message, request_id=request_id)
    ).model_dump()


def error_bytes(code: str, message: str, request_id: str) -> bytes:
    """The error body serialised (for raw ASGI answers)."""
    return orjson.dumps(error_content(code, message, request_id))


def request_id_of(request: Request) -> str:
    """The id :class:`~services.common.middleware.GuardMiddleware` gave the request ("" before)."""
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A ``status`` answer with the error body (for exception handlers)."""
    return JSONResponse(
        error_content(code, message, request_id_of(request)), status, headers=headers
    )


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """``ErrorBody``'s JSON schema with its nested model inlined (no ``$defs``)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                return walk(dict(defs[ref.rsplit("/", 1)[-1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


ERROR_SCHEMA: dict[str, Any] = _inline(ErrorBody.model_json_schema())
"""OpenAPI schema of the error body (``components.schemas.ErrorBody``)."""
