"""docs/rewards.md documents every registered component, aggregator, estimator and preset.

Each registered name must have its own ``### `name` `` heading under the section of its kind
(a heading may name several, e.g. ``### `f1` and `miou` ``), and each documented name must
still be registered, so adding or removing a plug-in without its documentation fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.reward.scoring import advantages, aggregators, components, presets

DOC = Path(__file__).resolve().parents[4] / "docs" / "rewards.md"
SECTIONS = {
    "Components": components,
    "Aggregators": aggregators,
    "Advantage estimators": advantages,
    "Presets": presets,
}


def _from_a_test(obj: object) -> bool:
    """Whether a registry entry was registered by a test module (tests add components such as
    ``api_test_flaky`` to the shared registry; they are not plug-ins to document)."""
    fns = [v for v in vars(obj).values() if callable(v)] if hasattr(obj, "__dict__") else []
    return any("test" in getattr(f, "__module__", "").rsplit(".", 1)[-1] for f in fns)


def documented(text: str) -> dict[str, set[str]]:
    """``{section title: names in backticks of its ### headings}`` for every ## section."""
    out: dict[str, set[str]] = {}
    section = None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            out.setdefault(section, set())
        elif line.startswith("### ") and section is not None:
            out[section].update(re.findall(r"`([^`]+)`", line))
    return out


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_registered_name_has_a_section(section: str) -> None:
    names = {n for n, obj in SECTIONS[section].items() if not _from_a_test(obj)}
    got = documented(DOC.read_text()).get(section, set())
    assert sorted(names - got) == [], f"registered but not documented under '## {section}'"
    assert sorted(got - names) == [], f"documented under '## {section}' but not registered"


def test_the_parser_reads_headings_per_section() -> None:
    text = "## Components\n### `f1` and `miou`\ntext `x`\n### `iou`\n## Presets\n### `dig`\n"
    assert documented(text) == {"Components": {"f1", "miou", "iou"}, "Presets": {"dig"}}


def test_every_preset_row_names_its_components() -> None:
    """The preset table lists each preset's components as the registry builds them."""
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"(?m)^\| `(\w+)` \| [^|]+ \| ([^|]+) \|", DOC.read_text())
    }
    for name in presets.names():
        spec = presets.get(name).spec
        assert name in rows, f"preset {name} has no row in the table"
        for ref in spec.components:
            assert f"`{ref.name}`" in rows[name], (name, ref.name)
        assert f"({spec.aggregate.method})" in rows[name], (name, spec.aggregate.method)
