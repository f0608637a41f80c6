"""Bounded numeric parameters: one validator that names the allowed interval.

``Ranged(lo, hi)`` is a float that must lie in ``[lo, hi]`` (``lo_open`` / ``hi_open`` make an
end exclusive). A value outside, or not finite, fails validation with
``must be in (0, 1e+06], got 1e+200`` — the caller's error path adds the field name (the
reward service: ``reward.components[0].params.a: …``). The interval also goes into the
JSON schema (``minimum`` / ``exclusiveMinimum`` / ``maximum`` / ``exclusiveMaximum``).
Bounds exist so that the arithmetic on a parameter cannot overflow float64.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, WithJsonSchema


def interval(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> str:
    """``[lo, hi]`` / ``(lo, hi]`` … with numbers in ``%g`` form."""
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def Ranged(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:
    """``Annotated[float, …]`` accepting finite values in the interval (module docstring)."""
    text = interval(lo, hi, lo_open, hi_open)

    def check(v: float) -> float:
        above = v > lo if lo_open else v >= lo
        below = v < hi if hi_open else v <= hi
        if not (math.isfinite(v) and above and below):
            raise ValueError(f"must be in {text}, got {v:g}")
        return v

    schema: dict[str, Any] = {"type": "number"}
    schema["exclusiveMinimum" if lo_open else "minimum"] = lo
    schema["exclusiveMaximum" if hi_open else "maximum"] = hi
    return Annotated[float, AfterValidator(check), WithJsonSchema(schema)]
