"""The repository documents itself: code and docs cite its own ``docs/``, nothing outside it.

* No file cites a document a maintainer of this repository does not have (design notes or
  research write-ups kept next to a checkout, ``../shared``).
* No name or text in the code carries an issue number in place of saying what it is about.
* Every ``docs/<name>.md`` the code or docs cite exists, and every section cited by its title
  (``docs/rewards.md, "Presets"``) is a heading of that file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".html", ".js", ".mako"}
TEXT_NAMES = {"Makefile", "Dockerfile.cpu", "Dockerfile.cuda", "run"}
SKIP_PARTS = {".git", "vendor", "__pycache__", "node_modules"}

OUTSIDE_CITATION = re.compile(
    r"\bDESIGN\.md\b|\bSTYLE\.md\b|(?<![\w-])research/|\.\./shared\b|/work/shared\b"
)
"""Design notes and research write-ups that live beside a checkout, not in it."""
ISSUE_NUMBER = re.compile(r"\bissues? ?\d+\b|\w_?issue_?\d+|\bissue\d+", re.IGNORECASE)
"""``issue 6``, ``Issue 20``, ``_check_issue6``, ``test_issue6_e2e`` (a peer's ``#123`` is fine)."""
DOC_REF = re.compile(r"docs/([\w-]+)\.md(?:,\s*\"([^\"]+)\")?")


def repo_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored files (a walk of the tree where git is absent)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        paths = [ROOT / p for p in out]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in ROOT.rglob("*") if p.is_file()]
    return sorted(
        p
        for p in paths
        if p.is_file()
        and not SKIP_PARTS.intersection(p.relative_to(ROOT).parts)
        and not any(part.startswith(".venv") for part in p.relative_to(ROOT).parts)
        and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES)
    )


def hits(pattern: re.Pattern[str], files: list[Path]) -> list[str]:
    found = []
    for path in files:
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            for m in pattern.finditer(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {m.group(0)!r}")
    return found


def test_the_scan_sees_the_code_and_the_docs() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in repo_files()}
    assert {"README.md", "docs/design.md", "docs/rewards.md", "trainer/config.py"} <= names
    assert "tests/test_docs.py" in names


def test_no_citation_of_documents_outside_the_repo() -> None:
    files = [p for p in repo_files() if p != Path(__file__).resolve()]
    assert hits(OUTSIDE_CITATION, files) == []


def test_no_issue_numbers_in_code() -> None:
    files = [p for p in repo_files() if p.suffix == ".py" and p != Path(__file__).resolve()]
    assert hits(ISSUE_NUMBER, files) == []


@pytest.mark.parametrize(
    ("text", "outside", "issue"),
    [
        ('see DESIGN.md "Storage"', True, False),
        ("(shared/research/E_vllm_bpy.md Q1.6)", True, False),
        ("definitions in research/C_eval.md", True, False),
        ("../shared/notes", True, False),
        ("dvlab-research/LISA train_ds.validate", False, False),
        ("PGPO / curriculum combinations (issue 6)", False, True),
        ("def _check_issue6(self):", False, True),
        ("tests/trainer/test_issue6_e2e.py", False, True),
        ("Issue 20: two workers", False, True),
        ("torchmetrics #2560 reports AP = -1", False, False),
    ],
)
def test_the_patterns(text: str, outside: bool, issue: bool) -> None:
    assert bool(OUTSIDE_CITATION.search(text)) is outside
    assert bool(ISSUE_NUMBER.search(text)) is issue


def _headings(doc: Path) -> set[str]:
    return {
        re.sub(r"^#+\s*", "", line).strip()
        for line in doc.read_text().splitlines()
        if line.startswith("#")
    }


def test_cited_docs_and_sections_exist() -> None:
    missing = []
    for path in repo_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            for m in DOC_REF.finditer(line):
                doc = ROOT / "docs" / f"{m.group(1)}.md"
                where = f"{path.relative_to(ROOT)}:{n}"
                if not doc.is_file():
                    missing.append(f"{where}: {doc.name} does not exist")
                elif m.group(2) and m.group(2) not in _headings(doc):
                    missing.append(f"{where}: {doc.name} has no section {m.group(2)!r}")
    assert missing == []


LAYER_PACKAGES = ("schemas", "clients", "tasks", "services", "trainer", "benchmarks")


def import_graph() -> dict[str, set[str]]:
    """Top-level package → the other top-level packages it imports (function-level included)."""
    import ast

    graph: dict[str, set[str]] = {p: set() for p in LAYER_PACKAGES}
    for top in LAYER_PACKAGES:
        for path in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    target = name.split(".")[0]
                    if target in graph and target != top:
                        graph[top].add(target)
    return graph


def layering_table() -> dict[str, set[str]]:
    """The "imports today" table of docs/design.md: row package → the columns marked ✓."""
    lines = (ROOT / "docs" / "design.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| from \\ to |"))
    cols = [c.strip().strip("`") for c in lines[start].strip("|").split("|")[1:]]
    table: dict[str, set[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0].strip("`")] = {c for c, v in zip(cols, cells[1:], strict=True) if v == "✓"}
    return table


def test_the_layering_table_in_the_design_doc_is_what_the_code_imports() -> None:
    """docs/design.md states today's imports between top-level packages; keep it true."""
    got = import_graph()
    documented = layering_table()
    assert set(documented) == set(LAYER_PACKAGES)
    actual = {k: sorted(v & set(documented)) for k, v in got.items()}
    assert {k: sorted(v) for k, v in documented.items()} == actual, (
        "docs/design.md 'Layering' no longer matches the imports; update its table (and the "
        "text below it) to the right-hand side"
    )
