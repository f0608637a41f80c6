"""``prl bench run`` / ``prl bench show`` in-process (typer's CliRunner) on a predictions file."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

import services.cli.bench  # noqa: F401  (registers the bench commands)
from services.cli.base import app
from services.cli.bench import adapter_options, parse_opts


def test_parse_opts_reads_json_values_and_rejects_missing_equals():
    assert parse_opts(["a=1", "b=true", "c=x=y", "d=[1, 2]"], "--task-opt") == {
        "a": 1,
        "b": True,
        "c": "x=y",
        "d": [1, 2],
    }
    with pytest.raises(typer.BadParameter, match="key=value"):
        parse_opts(["novalue"], "--task-opt")


def test_model_flag_maps_to_each_adapters_option():
    assert adapter_options("predictions", "p.jsonl", {}, None) == {"path": "p.jsonl"}
    assert adapter_options("transformers", "m", {}, 16) == {"model": "m", "max_new_tokens": 16}
    assert adapter_options("openai", "m", {"base_url": "u"}, 16) == {
        "model": "m",
        "base_url": "u",
        "max_tokens": 16,
    }


def test_run_then_resume_then_show(dig_root, dig_predictions, tmp_path):
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    args = [
        "bench",
        "run",
        "--task",
        "dig",
        "--task-opt",
        f"root={dig_root}",
        "--adapter",
        "predictions",
    ]
    args += [
        "--model",
        str(dig_predictions),
        "--db",
        db,
        "--batch-size",
        "4",
        "--n-boot",
        "50",
        "--no-progress",
        "--json",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    out1 = json.loads(first.stdout[first.stdout.index("{") :])
    assert out1["n_new"] == 9
    second = runner.invoke(app, args)
    out2 = json.loads(second.stdout[second.stdout.index("{") :])
    assert out2["key"] == out1["key"] and out2["n_new"] == 0
    assert out2["metrics"] == out1["metrics"]

    shown = runner.invoke(app, ["bench", "show", "--db", db, "--key", out1["key"], "--json"])
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.stdout)
    assert summary["status"] == "completed" and summary["done"] == 9
    assert {m["name"] for m in summary["metrics"]} == {m["name"] for m in out1["metrics"]}
    listing = runner.invoke(app, ["bench", "show", "--db", db])
    assert out1["key"] in listing.stdout
    missing = runner.invoke(app, ["bench", "show", "--db", db, "--key", "nope"])
    assert missing.exit_code == 1
    extra = runner.invoke(app, [*args, "--metric", "lisa_giou_ciou"])
    out3 = json.loads(extra.stdout[extra.stdout.index("{") :])
    assert out3["key"] == out1["key"] and out3["n_new"] == 0  # same run, metric added
    assert {"lisa/box_giou", "dig/f1"} <= {m["name"] for m in out3["metrics"]}
