"""Discovery commands list the registries as they are; ``prl up`` ports are checked first."""

from __future__ import annotations

import json
import socket

import pytest

from services.cli.errors import run
from services.reward.scoring.base import aggregators, components, presets


def prl_json(capsys, *args: str):  # type: ignore[no-untyped-def]
    code = run([*args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_prl_tasks_lists_every_task_with_its_required_options(capsys):
    from tasks.registry import task_names

    rows = {r["name"]: r for r in prl_json(capsys, "tasks")}
    assert sorted(rows) == task_names()
    assert rows["dig"]["options"]["root"] == "required"
    assert rows["dig"]["options"]["coords"] == "'pixel'"
    assert rows["refcoco"]["options"]["refs_file"] == "required"


def test_prl_rewards_lists_presets_components_with_ranges_and_aggregators(capsys):
    cat = prl_json(capsys, "rewards")
    assert [p["name"] for p in cat["presets"]] == presets.names()
    assert [c["name"] for c in cat["components"]] == components.names()
    assert [a["name"] for a in cat["aggregators"]] == aggregators.names()
    f1 = next(c for c in cat["components"] if c["name"] == "f1")
    assert f1["range"] == [0.0, 1.0] and "tau" in f1["params"]["properties"]
    dig = next(p for p in cat["presets"] if p["name"] == "dig")
    assert [c["name"] for c in dig["spec"]["components"]] == ["format", "f1", "miou"]
    assert "DiG" in dig["reproduces"]
    code = run(["rewards"])
    text = capsys.readouterr().out
    assert code == 0 and "dig" in text and "harmonic" in text


def test_prl_metrics_and_adapters(capsys):
    metrics = {r["name"] for r in prl_json(capsys, "metrics")}
    assert {"dig_f1_miou", "mean_reward", "coco_map"} <= metrics
    adapters = {r["name"]: r for r in prl_json(capsys, "adapters")}
    assert set(adapters) == {"openai", "predictions", "transformers", "vllm"}
    assert adapters["predictions"]["options"]["path"] == "required"


def test_prl_up_refuses_a_busy_port_and_names_the_option(capsys, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code = run(
            ["up", "--workdir", str(tmp_path), "--services", "reward", "--reward-port", str(port)]
        )
    err = capsys.readouterr().err
    assert code == 2
    assert f"port {port} (reward) is in use" in err and "--reward-port" in err


@pytest.mark.parametrize("cmd", [["jobs", "list"], ["jobs", "show", "1"]])
def test_prl_jobs_without_a_service_is_one_line(capsys, cmd):
    code = run([*cmd, "--trainer-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "prl up" in err[0]
