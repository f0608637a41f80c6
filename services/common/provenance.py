"""Which code produced a result: the git commit of *this package's* checkout, or its version.

The revision is read from the directory the package is imported from, never from the
caller's working directory: a benchmark started in ``/tmp`` still records the checkout it
ran, and one started inside another repository does not record that repository's commit.

* an editable install / source checkout whose top level is the package's root:
  ``<40-hex sha>``, with ``-dirty`` appended when tracked files differ from that commit;
* anything else (a wheel in site-packages): ``perception-rl==<version>``;
* neither known: None.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

DIST_NAME = "perception-rl"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding ``services/``, ``schemas/``, ``trainer/``, … (repository root)."""


LIB_NAMES = (
    DIST_NAME,
    "numpy",
    "scipy",
    "pycocotools",
    "faster-coco-eval",
    "torch",
    "transformers",
    "trl",
    "accelerate",
    "vllm",
)


def lib_versions(names: tuple[str, ...] = LIB_NAMES) -> dict[str, str]:
    """``{"python": …, name: version}`` for each installed distribution of ``names``."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True)
class CodeRevision:
    sha: str | None
    dirty: bool
    version: str | None

    def label(self) -> str | None:
        """``sha[-dirty]``, else ``perception-rl==version``, else None (what runs store)."""
        if self.sha:
            return f"{self.sha}-dirty" if self.dirty else self.sha
        return f"{DIST_NAME}=={self.version}" if self.version else None


def _git(root: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def package_version() -> str | None:
    try:
        return metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:
        return None


def read_revision(root: Path = PACKAGE_ROOT) -> CodeRevision:
    """The revision of the checkout at ``root``; only when ``root`` is that checkout's top."""
    top = _git(root, "rev-parse", "--show-toplevel")
    sha = _git(root, "rev-parse", "HEAD") if top and Path(top).resolve() == root.resolve() else None
    dirty = bool(sha) and bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    return CodeRevision(sha=sha or None, dirty=dirty, version=package_version())


@functools.cache
def code_revision() -> str | None:
    """:meth:`CodeRevision.label` of this package, computed once per process."""
    return read_revision().label()
