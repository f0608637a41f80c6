"""``prl`` mistakes: one line saying what to fix, exit code 2, no traceback (``--debug`` has it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.cli.errors import run

ROOT = Path(__file__).resolve().parents[3]


def prl(capsys, *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRL_DATABASE_URL", raising=False)
    monkeypatch.delenv("PRL_DEBUG", raising=False)


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def test_bench_show_in_a_fresh_directory_migrates_the_store_and_says_there_are_no_runs(capsys):
    code, out, err = prl(capsys, "bench", "show")
    assert code == 0, err
    assert "no runs stored yet" in out
    assert Path(".prl/store.db").is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--task", "digg", "--model", "m"], "unknown task 'digg'; did you mean 'dig'?"),
        (
            ["--task", "dig", "--task-opt", "rot=data", "--model", "m"],
            "task 'dig' has no option 'rot'; did you mean 'root'?",
        ),
        (
            ["--task", "dig", "--task-opt", "root=.", "--task-opt", "coord=pixel", "--model", "m"],
            "task 'dig' has no option 'coord'; did you mean 'coords'?",
        ),
        (["--task", "dig", "--model", "m"], "task 'dig' needs option 'root'"),
        (
            ["--task", "dig", "--task-opt", "root=.", "--reward", "dgi", "--model", "m"],
            "unknown reward preset 'dgi'; did you mean 'dig'?",
        ),
        (
            ["--task", "dig", "--task-opt", "root=.", "--model", "./no/such/model"],
            "model path './no/such/model' does not exist",
        ),
        (
            ["--task", "dig", "--task-opt", "root=.", "--model", "m", "--adapter-opt", "dtyp=x"],
            "adapter 'transformers' has no option 'dtyp'; did you mean 'dtype'?",
        ),
        (
            [
                "--task",
                "dig",
                "--task-opt",
                "root=.",
                "--adapter",
                "predictions",
                "--model",
                "p.jsonl",
            ],
            "predictions file 'p.jsonl' does not exist",
        ),
    ],
)
def test_bench_run_mistakes_are_one_line_with_exit_code_2(capsys, args, expected):
    code, _, err = prl(capsys, "bench", "run", *args)
    assert code == 2
    assert expected in one_line_error(err)


def test_debug_prints_the_traceback_too(capsys):
    code, _, err = prl(capsys, "--debug", "bench", "run", "--task", "digg", "--model", "m")
    assert code == 2
    assert "Traceback (most recent call last)" in err and "UnknownNameError" in err
    assert err.rstrip().splitlines()[-1].startswith("error: unknown task 'digg'")


def test_an_unexpected_exception_is_one_line_with_exit_code_1():
    from services.cli.errors import explain

    message, code = explain(RuntimeError("boom\nsecond line"))
    assert code == 1 and message.startswith("RuntimeError: boom second line")
    assert "--debug" in message


def test_a_busy_port_names_the_option():
    import errno

    from services.cli.errors import explain

    message, code = explain(OSError(errno.EADDRINUSE, "Address already in use"))
    assert code == 2 and "--port" in message


def test_the_installed_entry_point_uses_the_boundary(tmp_path):
    """``python -m services.cli`` as a user runs it: the exit code and stderr of the process."""
    res = subprocess.run(
        [sys.executable, "-m", "services.cli", "bench", "run", "--task", "digg", "--model", "m"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert res.returncode == 2
    assert one_line_error(res.stderr).startswith("error: unknown task 'digg'")


def test_train_refuses_an_unknown_preset_before_loading_anything(capsys, tmp_path):
    cfg = (ROOT / "trainer/configs/tiny_dig_cpu.yaml").read_text()
    cfg = cfg.replace("reward: dig", "reward: dgi").replace(
        "run_dir: runs/tiny-dig-cpu", f"run_dir: {tmp_path / 'run'}"
    )
    path = tmp_path / "c.yaml"
    path.write_text(cfg)
    code, _, err = prl(capsys, "train", "--config", str(path))
    assert code == 2
    assert "unknown reward preset 'dgi'; did you mean 'dig'?" in one_line_error(err)
    assert not (tmp_path / "run").exists()  # nothing was built


def test_db_flag_is_the_same_everywhere(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code, out, _ = prl(capsys, "db", "upgrade", "--db", url)
    assert code == 0 and "at revision" in out
    code, out, _ = prl(capsys, "bench", "show", "--db", url, "--json")
    assert code == 0 and json.loads(out) == []
