"""`pip install perception-rl[client]` must work with httpx + pydantic only."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["torch", "fastapi", "numpy", "sqlalchemy", "starlette", "transformers", "uvicorn"]


def test_clients_and_schemas_import_no_heavy_dependency():
    code = (
        "import json, sys\n"
        "import schemas, clients, clients.reward, clients.embedding, clients.leaderboard\n"
        "import clients.trainer\n"
        "import clients.adapters.trl, clients.adapters.verl, clients.adapters.easyr1\n"
        "import clients.adapters.easyr1_sequential\n"
        "import clients.adapters.openrlhf\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_base_dependencies_are_only_httpx_and_pydantic():
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    names = sorted(
        d.split(">")[0].split("=")[0].split("<")[0].strip() for d in meta["dependencies"]
    )
    assert names == ["httpx", "pydantic"]
    assert meta["optional-dependencies"]["client"] == []
