"""Text that can be stored: no lone UTF-16 surrogates anywhere in a JSON document.

JSON may spell a lone surrogate (``"\\ud800"``) and Python's ``json`` decodes it into a
``str`` that no UTF-8 encoder accepts: SQLite's driver, PostgreSQL and every hash of the
body raise ``UnicodeEncodeError`` on it. Bodies that will be stored or hashed are checked
up front so the answer is a 422 naming the field, never a 500 halfway through a write.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError


def _bad(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def lone_surrogate_path(obj: Any, path: str = "") -> str | None:
    """``a.b[3].c`` of the first string (value or key) holding a lone surrogate, else None."""
    if isinstance(obj, str):
        return path or "body" if _bad(obj) else None
    if isinstance(obj, dict):
        for key, value in obj.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _bad(key):
                return f"{path or 'body'} (one of its keys)"
            found = lone_surrogate_path(value, child)
            if found:
                return found
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found = lone_surrogate_path(value, f"{path}[{i}]")
            if found:
                return found
    return None


_REPLACEMENT = "\ufffd".encode()


def reject_lone_surrogates(data: BaseModel) -> None:
    """For ``model_validator(mode="after")``: raise ``ValueError`` naming the field.

    One C-speed serialisation of the whole model (≈0.1 s for 100 000 predictions) finds out
    whether there may be a surrogate at all: pydantic refuses one in a value, and writes one
    in a dict key as U+FFFD. Only then is the model's dump walked for the path.
    """
    try:
        out = data.__pydantic_serializer__.to_json(data, fallback=str)
    except PydanticSerializationError as exc:
        if "surrogate" not in str(exc):
            return  # something else, for pydantic's own checks
    else:
        if _REPLACEMENT not in out:
            return
    where = lone_surrogate_path(data.model_dump())
    if where is not None:
        raise ValueError(
            f"{where}: contains a lone UTF-16 surrogate (such as \\ud800), which is not valid "
            "Unicode and cannot be stored; send valid UTF-8 text"
        )
