"""Bearer API keys with scopes, compared in constant time.

Writes always need a ``write``-scoped key. Reads need a ``read`` key only when
``auth_read`` is set. In the ``dev`` profile with no keys configured, the well-known
:data:`DEV_API_KEY` holds every scope so the local stack and demo work out of the box; the
``prod`` profile refuses to start without explicit keys (see ``ServiceSettings``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common.settings import Scope, ServiceSettings

DEV_API_KEY = "prl-dev-key"

_bearers = {
    scope: HTTPBearer(auto_error=False, scheme_name=scope) for scope in ("read", "write", "admin")
}
"""One scheme per scope, so the OpenAPI document says which scope an operation needs
(``services.common.openapi.describe`` turns them into one ``bearer`` scheme)."""


def effective_keys(settings: ServiceSettings) -> dict[str, list[Scope]]:
    if settings.api_keys:
        return dict(settings.api_keys)
    if settings.profile == "dev":
        return {DEV_API_KEY: ["read", "write", "admin"]}
    return {}


def scopes_for(token: str, keys: dict[str, list[Scope]]) -> set[str]:
    """Scopes of ``token``; every configured key is compared (constant time, no early exit)."""
    found: set[str] = set()
    given = token.encode()
    for key, scopes in keys.items():
        if hmac.compare_digest(given, key.encode()):
            found.update(scopes)
    return found


def require_scope(scope: Scope) -> Callable[..., None]:
    """FastAPI dependency: 401 without a key, 403 with a key that lacks ``scope``.

    Async on purpose: a sync dependency costs every request a thread-pool hop.
    """

    async def check(
        request: Request, cred: HTTPAuthorizationCredentials | None = Depends(_bearers[scope])
    ) -> None:
        settings: ServiceSettings = request.app.state.settings
        if scope == "read" and not settings.auth_read:
            return
        if cred is None:
            raise HTTPException(
                401,
                f"this route needs an API key with scope '{scope}': send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if scope not in scopes_for(cred.credentials, effective_keys(settings)):
            raise HTTPException(403, f"the API key given lacks scope '{scope}'")

    check.__name__ = f"require_{scope}"
    return check
