"""Messages for errors whose own text does not say how to fix them (used by ``errors.explain``)."""

from __future__ import annotations

import errno


def _store_hint(exc: BaseException) -> str | None:
    try:
        from sqlalchemy.exc import OperationalError, ProgrammingError
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return None
    if not isinstance(exc, OperationalError | ProgrammingError):
        return None
    text = str(exc.orig) if getattr(exc, "orig", None) is not None else str(exc)
    if "no such table" in text or "does not exist" in text:
        return f"the store has no tables ({text.splitlines()[0]}): run `prl db upgrade --db URL`"
    return f"the store is unreachable: {text.splitlines()[0]} (check --db / PRL_DATABASE_URL)"


def hint_for(exc: BaseException) -> str | None:
    """A one-line message for ``exc`` when its own text is not enough, else None."""
    from clients.errors import APIConnectionError, APIStatusError

    if isinstance(exc, APIConnectionError):
        return f"{exc} (is the service running? start the stack with `prl up`)"
    if isinstance(exc, APIStatusError):
        return " ".join(str(exc).split())
    store = _store_hint(exc)
    if store is not None:
        return store
    if isinstance(exc, OSError) and "huggingface.co" in str(exc):
        return (
            "the model is not a local directory and the Hugging Face hub cannot be reached: "
            "pass the path of a saved checkpoint (e.g. one built by `prl models tiny --kind "
            "qwen2vl --out DIR`)"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"{exc.strerror or exc}: that port is in use; pick another with --port"
    try:
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(x) for x in err["loc"]) or "value"
            parts.append(f"{loc}: {err['msg']}")
        more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        return f"{exc.title}: " + "; ".join(parts) + more
    return None
