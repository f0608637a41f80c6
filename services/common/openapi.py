"""The OpenAPI document says what the service does (checked by schemathesis, all checks).

FastAPI derives the document from the routes; three things it cannot know are filled in
here, once, when the schema is first built:

* **security only where it is checked.** ``require_scope(s)`` declares its bearer check under
  a security scheme named ``s``. An operation keeps a (single ``bearer``) security
  requirement, with its 401/403 answers, when one of its scopes is enforced with these
  settings (``write``/``admin`` always; ``read`` only with ``auth_read``); otherwise its
  ``security`` is removed, because the route answers without a key.
* **the errors each route really sends.** Every API operation may get 503 (``overloaded``,
  ``draining``, a dependency down) and 504 (``timeout``) from :class:`GuardMiddleware`;
  one with a body may get 400 (not JSON at all) and 413 (too large); one with path
  parameters 404. All error answers share one body, ``ErrorBody``.
* ``405`` answers list every method of the path in ``Allow`` (:func:`allowed_methods`):
  Starlette's router names only those of the first route whose path matched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from starlette.routing import Match
from starlette.types import Scope

from services.common.errors import ERROR_SCHEMA
from services.common.settings import ServiceSettings

PROBES = {"/healthz", "/readyz", "/metrics"}
_REF = {"$ref": "#/components/schemas/ErrorBody"}
_GUARD = {
    "503": "overloaded, draining or a dependency unavailable (with Retry-After)",
    "504": "the request ran past the timeout",
}
_BODY = {"400": "the body is not JSON", "413": "the body is too large"}


SCOPE_SCHEMES = ("read", "write", "admin")
"""``require_scope(s)`` declares its bearer check under the security scheme named ``s``, so
the document itself says which scope each operation needs."""


def describe(schema: dict[str, Any], settings: ServiceSettings) -> dict[str, Any]:
    """Patch FastAPI's ``schema`` in place (see the module docstring) and return it."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["ErrorBody"] = ERROR_SCHEMA
    schemes = components.get("securitySchemes", {})
    for name in [*SCOPE_SCHEMES, "HTTPBearer"]:
        schemes.pop(name, None)
    used = False
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            named = {k for req in op.get("security", []) for k in req}
            scopes = {s for s in named & set(SCOPE_SCHEMES) if s != "read" or settings.auth_read}
            responses = op["responses"]
            if scopes:
                op["security"] = [{"bearer": []}]
                used = True
                responses.setdefault("401", {"description": "no API key"})
                responses.setdefault(
                    "403", {"description": f"the key lacks scope {' or '.join(sorted(scopes))}"}
                )
            else:
                op.pop("security", None)
            if path not in PROBES:
                for code, text in _GUARD.items():
                    responses.setdefault(code, {"description": text})
                if "requestBody" in op:
                    for code, text in _BODY.items():
                        responses.setdefault(code, {"description": text})
                if any(p.get("in") == "path" for p in op.get("parameters", [])):
                    responses.setdefault("404", {"description": "no such resource"})
            for code, resp in responses.items():
                if code[0] in "45" and (code != "503" or path != "/readyz"):
                    resp["content"] = {"application/json": {"schema": _REF}}
    if used:
        schemes["bearer"] = {"type": "http", "scheme": "bearer"}
    if not schemes:
        components.pop("securitySchemes", None)
    return schema


def name_choices(
    schema: dict[str, Any], prop: str, names: list[str], within: str | None = None
) -> None:
    """Give every ``prop`` property whose type allows a plain string the ``enum`` ``names``
    (a string there is a registered name: any other is a 422, so the schema says so);
    ``within``: only inside that component schema."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict) and prop in value:
                    for branch in value[prop].get("anyOf", [value[prop]]):
                        if branch.get("type") == "string":
                            branch["enum"] = sorted(names)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema if within is None else schema["components"]["schemas"].get(within, {}))


def declare_response(
    schema: dict[str, Any], operations: Iterable[str], code: int, description: str
) -> None:
    """Declare ``code`` on each ``"METHOD /path"`` of ``operations`` (with the error body)."""
    for name in operations:
        method, path = name.split(" ", 1)
        op = schema["paths"][path][method.lower()]
        op["responses"].setdefault(
            str(code),
            {"description": description, "content": {"application/json": {"schema": _REF}}},
        )


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route serves on this request's path (for a 405's ``Allow``)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)
