"""Every service setting (``PRL_<SERVICE>_*``) carries help text.

The settings classes are found as the subclasses of pydantic-settings' ``BaseSettings`` that
the services' modules define, so a new settings class or a new field without a description
fails here with its name.
"""

from __future__ import annotations

import importlib

import pytest
from pydantic_settings import BaseSettings

SETTINGS_MODULES = (
    "services.common.settings",
    "services.reward.settings",
    "services.reward.scoring.alignment",
    "services.embedding.settings",
    "services.leaderboard.settings",
    "services.store.db",
    "trainer.service",
)


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def settings_classes() -> list[type[BaseSettings]]:
    for name in SETTINGS_MODULES:
        importlib.import_module(name)
    ours = ("services.", "trainer.")
    found = {c for c in _subclasses(BaseSettings) if c.__module__.startswith(ours)}
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def test_the_settings_classes_are_found() -> None:
    names = {c.__name__ for c in settings_classes()}
    assert {
        "ServiceSettings",
        "RewardSettings",
        "EmbeddingSettings",
        "LeaderboardSettings",
        "TrainerServiceSettings",
        "StoreSettings",
        "AlignmentSettings",
    } <= names


@pytest.mark.parametrize("cls", settings_classes(), ids=lambda c: c.__name__)
def test_every_setting_has_a_description(cls: type[BaseSettings]) -> None:
    bare = [n for n, f in cls.model_fields.items() if not (f.description or "").strip()]
    assert bare == [], f"{cls.__name__}: fields without a description: {bare}"
