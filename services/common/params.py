"""Shared request-parameter types."""

from typing import Annotated, Any

from fastapi import Path
from pydantic import BeforeValidator


def _whole_number(value: Any) -> Any:
    """Query and path integers arrive as text; pydantic's lax mode would read "0.0" or "1e3"
    as integers, which the OpenAPI ``integer`` type does not allow: only digits pass."""
    if isinstance(value, str) and not value.removeprefix("-").isdigit():
        raise ValueError(f"must be a whole number written with digits only, got {value!r}")
    return value


WHOLE = BeforeValidator(_whole_number)
"""Put in ``Annotated[int, Query(...), WHOLE]`` for every integer query or path parameter."""

RowId = Annotated[
    int, Path(ge=1, le=2**63 - 1, description="row id (a positive 64-bit integer)"), WHOLE
]
"""A database row id in a path: out-of-range ids get a 422, never a driver overflow."""
