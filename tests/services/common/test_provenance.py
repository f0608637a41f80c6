"""The recorded code revision is the package's own checkout's, whatever the caller's cwd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.common import provenance
from services.common.provenance import CodeRevision, read_revision


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "a.txt").write_text("one\n")
    _git(root, "add", "a.txt")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    return root


def test_a_clean_checkout_records_its_head(repo):
    rev = read_revision(repo)
    assert rev.sha == _git(repo, "rev-parse", "HEAD") and not rev.dirty
    assert rev.label() == rev.sha


def test_a_modified_tracked_file_marks_it_dirty_and_untracked_files_do_not(repo):
    (repo / "new.txt").write_text("untracked\n")
    assert read_revision(repo).dirty is False
    (repo / "a.txt").write_text("two\n")
    rev = read_revision(repo)
    assert rev.dirty is True and rev.label() == f"{rev.sha}-dirty"


def test_a_package_inside_another_repository_does_not_take_its_commit(repo):
    inner = repo / "site-packages"
    inner.mkdir()
    rev = read_revision(inner)
    assert rev.sha is None and rev.label() == f"perception-rl=={rev.version}"


def test_no_checkout_and_no_version_is_none():
    assert CodeRevision(None, False, None).label() is None
    assert CodeRevision(None, False, "1.2").label() == "perception-rl==1.2"


def test_the_revision_does_not_depend_on_the_working_directory(repo, tmp_path):
    here = provenance.read_revision().label()
    code = "from services.common.provenance import code_revision; print(code_revision())"
    env_root = str(provenance.PACKAGE_ROOT)
    for cwd in (tmp_path, repo):  # outside any repo, and inside another repo
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": env_root, "PATH": "/usr/bin:/bin"},
        ).stdout.strip()
        assert out == here
        assert out != _git(repo, "rev-parse", "HEAD")
