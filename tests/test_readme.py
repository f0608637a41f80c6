"""Every README block marked ``<!-- prl:runnable -->`` runs as written, in order, on a copy of
the repository (what a new user does after ``make setup``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from services.stack import free_port

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!-- prl:runnable -->\s*\n```bash\n(.*?)\n```", re.S)

pytestmark = pytest.mark.slow


def runnable_blocks(text: str) -> list[str]:
    return MARK.findall(text)


def test_the_marker_finds_the_blocks_in_order():
    blocks = runnable_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 6
    first = " ".join(blocks[0].split())
    assert first.startswith("prl data dig") and "prl models tiny" in first
    joined = "\n".join(blocks)
    # what a block needs is made by an earlier block
    assert joined.index("prl models tiny") < joined.index("--model models/tiny-qwen2vl")
    assert joined.index("cat > preds.jsonl") < joined.index("--model preds.jsonl")


def copy_repo(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    return dest


def test_readme_blocks_run_as_written(tmp_path):
    if shutil.which("prl") is None:
        pytest.skip("`prl` is not installed: run `make setup`")
    repo = copy_repo(tmp_path / "clone")
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),  # the copy's code, not an editable install elsewhere
        "PORT": str(free_port()),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("PRL_DATABASE_URL", None)
    for i, block in enumerate(runnable_blocks((repo / "README.md").read_text())):
        res = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert res.returncode == 0, (
            f"block {i}:\n{block}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
        )
        assert "Traceback" not in res.stderr, f"block {i}:\n{res.stderr}"
        if "prl bench show" in block:
            assert "completed" in res.stdout
        if "v1/leaderboard" in block:
            assert '"metric":"dig/f1"' in res.stdout.replace(" ", "")
        if "--resume" in block:
            assert "refused: exit 2" in res.stdout and "finished: exit 2" in res.stdout
            assert "already finished" in res.stderr
