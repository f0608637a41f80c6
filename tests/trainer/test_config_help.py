"""Every field of the run config, nested sections included, carries help text.

The descriptions are the config's documentation (TRL's ``GRPOConfig`` help strings are the
model): they show up in the JSON Schema and in error messages. A field added without one
fails here, naming the field path.
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import BaseModel

pytestmark = pytest.mark.torch


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation mentions (through Optional, unions, tuples, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return out


def undescribed_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of fields, in ``model`` and every model nested in it, without help text."""
    missing: list[str] = []
    seen: set[type[BaseModel]] = set()

    def walk(m: type[BaseModel], at: str) -> None:
        if m in seen:
            return
        seen.add(m)
        for name, field in m.model_fields.items():
            path = f"{at}{name}"
            if not (field.description or "").strip():
                missing.append(path)
            for sub in _models_in(field.annotation):
                walk(sub, f"{path}.")

    walk(model, prefix)
    return missing


def test_every_train_config_field_has_a_description() -> None:
    from trainer.config import TrainConfig

    assert undescribed_fields(TrainConfig) == []


def test_the_walk_reaches_nested_sections_and_catches_a_missing_description() -> None:
    """The check itself: nested sections are visited, and a bare field is reported."""
    from pydantic import Field

    class Inner(BaseModel):
        bare: int = 0
        told: int = Field(0, description="told")

    class Outer(BaseModel):
        inner: Inner | None = Field(None, description="inner")
        many: tuple[Inner, ...] = Field((), description="many")
        blank: str = Field("", description="  ")

    assert undescribed_fields(Outer) == ["inner.bare", "blank"]


def test_descriptions_reach_the_json_schema() -> None:
    """What a user of the job API sees: each property of TrainConfig's schema is described."""
    from trainer.config import TrainConfig

    props = TrainConfig.model_json_schema()["properties"]
    assert {k for k, v in props.items() if not v.get("description")} == set()
