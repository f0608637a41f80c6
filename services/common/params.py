"""Shared request-parameter types."""

from typing import Annotated

from fastapi import Path

RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="row id (a positive 64-bit integer)")]
"""A database row id in a path: out-of-range ids get a 422, never a driver overflow."""
