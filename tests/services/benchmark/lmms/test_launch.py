"""Finding lmms-eval's venv, the worker's arguments and environment, the task-name check, and
``prl bench lmms``'s one-line refusals (all without lmms-eval)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from services.benchmark.lmms.launch import (
    PYTHON_ENV,
    LmmsEnvError,
    WorkerCall,
    find_python,
    worker_env,
)
from services.benchmark.lmms.worker import WorkerUserError, check_tasks, model_args, slim
from services.common.provenance import PACKAGE_ROOT


def test_missing_venv_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LmmsEnvError, match=r"make lmms-env"):
        find_python(str(tmp_path / "no" / "python"))


def test_a_python_without_lmms_eval_is_refused(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")  # an interpreter that cannot import lmms_eval
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(LmmsEnvError, match=r"has no lmms-eval installed"):
        find_python(str(fake))


def test_worker_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    call = WorkerCall(model="ckpt", tasks=["pope", "mmvp"], include_paths=["tasks"], limit=5)
    argv = call.argv(tmp_path / "out.json")
    assert argv[0] == "--quiet"  # then --flag value pairs
    pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert pairs["--model"] == str((tmp_path / "ckpt").resolve())
    assert pairs["--tasks"] == "pope,mmvp" and pairs["--limit"] == "5"
    assert pairs["--include-path"] == str((tmp_path / "tasks").resolve())
    assert "--gen-kwargs" not in argv and "--model-args" not in argv
    assert "--limit" not in WorkerCall(model="m", tasks=["t"]).argv(tmp_path / "o.json")


def test_worker_env_puts_this_checkout_first_and_offline_blocks_the_hub():
    env = worker_env(True, {"PYTHONPATH": f"/x{os.pathsep}{PACKAGE_ROOT}"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(PACKAGE_ROOT), "/x"]
    assert env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in worker_env(False, {})


def test_unknown_tasks_are_named_with_the_closest_known():
    known = ["mmvp", "pope", "pope_adv", "prl_yesno_local"]
    check_tasks(["pope", "mmvp"], known)
    with pytest.raises(WorkerUserError) as err:
        check_tasks(["popee", "mmvp", "zzzzzz"], known)
    text = str(err.value)
    assert "'popee' (did you mean 'pope'?)" in text and "'zzzzzz'" in text
    assert "'mmvp'" not in text


def test_model_args_and_slim():
    assert model_args("/m", "cuda", "") == "pretrained=/m,device_map=cuda"
    assert model_args("/m", "cpu", "max_pixels=4096") == (
        "pretrained=/m,device_map=cpu,max_pixels=4096"
    )
    got = slim({"results": {}, "samples": {"t": [{"doc": {"image": object()}, "doc_id": 0}]}})
    assert got["samples"] == {"t": [{"doc_id": 0}]}


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    from services.cli.errors import run

    code = run(["bench", "lmms", *args])
    return code, capsys.readouterr().err.strip()


@pytest.fixture
def ckpt(tmp_path) -> Path:
    path = tmp_path / "ckpt"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/no/such/ckpt", "--tasks", "pope"], "model path '/no/such/ckpt' does not"),
        (["--tasks", ","], "--tasks is empty"),
        (["--tasks", "pope;rm"], "is not a task name"),
        (["--tasks", "pope", "--model-arg", "pretrained=x"], "set the checkpoint with --model"),
        (["--tasks", "pope", "--model-arg", "novalue"], "write one key=value per flag"),
        (["--tasks", "pope", "--include-path", "/no/such/dir"], "is not a directory"),
        (["--tasks", "pope", "--python", "/no/venv/python"], "make lmms-env"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(args, message, ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(PYTHON_ENV, raising=False)
    if "--model" not in args:
        args = ["--model", str(ckpt), *args]
    code, err = run_cli([*args, "--db", f"sqlite:///{tmp_path / 's.db'}"], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err
