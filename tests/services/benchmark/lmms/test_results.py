"""lmms-eval's results dict → store runs (services.benchmark.lmms.results), by hand-made payloads
in lmms-eval 0.7.3's layout; no lmms-eval needed."""

from __future__ import annotations

import json
import shutil

import pytest

from services.benchmark.lmms.results import (
    LmmsRequest,
    sample_rows,
    store_task_runs,
    task_content_hash,
    task_metrics,
    task_runs,
)
from services.benchmark.store import MemoryRunStore, SqlRunStore


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data" / "docs.json"
    path.parent.mkdir()
    path.write_text(json.dumps([{"q": "a", "answer": "yes"}]))
    return path


def config(data_files, address="0x7f0011223344"):
    return {
        "task": "t",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": data_files},
        "doc_to_text": f"<function doc_to_text at {address}>",
        "metric_list": [{"metric": "acc", "aggregation": "mean"}],
        "metadata": {"version": 1.0},
    }


def payload(data_file):
    return {
        "results": {
            "t": {
                "alias": "t",
                "acc,none": 0.75,
                "acc_stderr,none": 0.25,
                "acc_stderr_clt,none": 0.2,
                "acc_stderr_clustered,none": "N/A",
                "f1,strict": 0.5,
                "f1_stderr,strict": "N/A",
                "lengths,none": [1, 2],
            },
            "g": {"alias": "g", "acc,none": 0.6, "acc_stderr,none": "N/A"},
        },
        "group_subtasks": {"g": ["t"], "t": []},
        "configs": {"t": config({"test": str(data_file)})},
        "versions": {"t": 1.0, "g": 0.0},
        "n-shot": {"t": 0},
        "higher_is_better": {"t": {"acc": True, "f1": None}, "g": {"acc": True}},
        "n-samples": {"t": {"original": 5, "effective": 4}},
        "samples": {
            "t": [
                {
                    "doc_id": i,
                    "target": "yes",
                    "filtered_resps": ["yes" if i % 4 else "no"],
                    "acc": float(i % 4 != 0),
                    "f1": {"score": 0.5, "prediction": "x"},
                    "doc_hash": f"h{i}",
                }
                for i in range(4)
            ]
        },
        "lmms_eval_version": "some-branch@abc",  # lmms-eval's git string: not what is stored
        "prl_lib_versions": {"lmms_eval": "0.7.3", "torch": "2.13.0+cpu"},
    }


REQUEST = LmmsRequest(model_path="/ckpt/tiny", model_name="tiny", limit=4)


def test_metrics_take_values_stderrs_and_directions_from_their_own_keys():
    results = {
        "alias": "t",
        "acc,none": 0.75,
        "acc_stderr,none": 0.25,
        "acc_stderr_clt,none": 0.2,
        "f1,strict": 0.5,
        "f1_stderr,strict": "N/A",
        "lengths,none": [1, 2],
        "nan,none": float("nan"),
    }
    got = task_metrics(results, {"acc": True, "f1": None, "loss": False}, 4)
    assert got == [
        {"name": "acc", "value": 0.75, "higher_is_better": True, "stderr": 0.25, "n": 4},
        {"name": "f1,strict", "value": 0.5, "higher_is_better": True, "stderr": None, "n": 4},
    ]
    (loss,) = task_metrics({"loss,none": 2.0}, {"loss": False}, None)
    assert loss["higher_is_better"] is False and loss["stderr"] is None


def test_content_hash_ignores_function_addresses_and_data_location(data_file, tmp_path):
    base = task_content_hash(config({"test": str(data_file)}))
    assert task_content_hash(config({"test": str(data_file)}, address="0x1")) == base
    moved = tmp_path / "elsewhere" / "docs.json"
    moved.parent.mkdir()
    shutil.copy(data_file, moved)
    assert task_content_hash(config({"test": str(moved)})) == base
    moved.write_text(json.dumps([{"q": "a", "answer": "no"}]))  # the data changed
    assert task_content_hash(config({"test": str(moved)})) != base
    # a relative path is read against the base directory
    assert task_content_hash(config({"test": "docs.json"}), data_file.parent) == base
    # a prompt change is a content change
    other = {**config({"test": str(data_file)}), "doc_to_text": "<function other at 0x1>"}
    assert task_content_hash(other) != base


def test_sample_rows_keep_prediction_scores_and_target(data_file):
    samples = payload(data_file)["samples"]["t"]
    rows = sample_rows(samples, ["acc", "f1", "missing"])
    assert len(rows) == len(samples)
    assert rows[0] == {
        "sample_id": "0",
        "prediction": "no",
        "reward": None,
        "components": {"acc": 0.0, "f1": 0.5},
        "error": None,
        "extra": {"target": "yes", "doc_hash": "h0", "input_media": None},
    }
    assert [r["prediction"] for r in rows] == ["no", "yes", "yes", "yes"]


def test_one_run_per_task_and_group_with_provenance(data_file):
    runs = task_runs(payload(data_file), REQUEST, model_info={"path": "/ckpt/tiny"}, git_sha="abc")
    assert [r.task for r in runs] == ["t", "g"]
    t, g = runs
    assert t.spec.suite == "lmms-eval/t" and t.spec.suite_version == "1.0+lmms-eval.0.7.3"
    assert g.spec.suite == "lmms-eval/g" and g.spec.suite_version == "0.0+lmms-eval.0.7.3"
    assert t.spec.content_hash == task_content_hash(config({"test": str(data_file)}))
    assert g.spec.content_hash != t.spec.content_hash and g.rows == []
    assert t.spec.n_samples == 4 and len(t.rows) == 4
    assert t.spec.config == {
        "harness": "lmms-eval",
        "lmms_eval": "0.7.3",
        "task": "t",
        "backend": "qwen2_vl",
        "model_args": "",
        "device": "cpu",
        "limit": 4,
        "gen_kwargs": None,
        "num_fewshot": 0,
        "seed": 0,
    }
    assert t.spec.lib_versions == {"lmms_eval": "0.7.3", "torch": "2.13.0+cpu"}
    assert t.spec.model == "tiny" and t.spec.git_sha == "abc"
    assert [m["name"] for m in t.metrics] == ["acc", "f1,strict"]
    # the key is a function of what determines the numbers: another limit, another run
    again = task_runs(payload(data_file), REQUEST, model_info={}, git_sha=None)
    assert again[0].spec.key == t.spec.key
    other = LmmsRequest(model_path="/ckpt/tiny", model_name="tiny", limit=8)
    assert task_runs(payload(data_file), other, model_info={}, git_sha=None)[0].spec.key != (
        t.spec.key
    )


def test_stored_runs_reach_the_leaderboard_and_a_rerun_adds_nothing(data_file, tmp_path):
    from services.leaderboard import queries
    from services.store.db import transaction

    store = SqlRunStore(f"sqlite:///{tmp_path / 's.db'}")
    runs = task_runs(payload(data_file), REQUEST, model_info={"path": "/ckpt/tiny"}, git_sha="a")
    first = store_task_runs(store, runs)
    assert [s["n_new"] for s in first] == [4, 0]
    again = store_task_runs(store, runs)
    assert [s["run_id"] for s in again] == [s["run_id"] for s in first]
    assert [s["n_new"] for s in again] == [0, 0]
    with transaction(store.factory) as s:
        board = queries.leaderboard(s, "lmms-eval/t", "acc")
        suites = {v.name: v for v in queries.list_suites(s)}
    (entry,) = board.entries
    assert entry.model == "tiny" and entry.value == 0.75 and entry.n == 4
    assert suites["lmms-eval/t"].metrics == ["acc", "f1,strict"]
    assert suites["lmms-eval/g"].metrics == ["acc"]


def test_memory_store_gets_the_same_rows(data_file):
    store = MemoryRunStore()
    (t, _) = task_runs(payload(data_file), REQUEST, model_info={}, git_sha=None)
    store_task_runs(store, [t])
    run_id = store.runs[t.spec.key]
    assert store.status[run_id] == "completed"
    assert store.metrics[run_id]["acc"]["value"] == 0.75
    assert sorted(store.predictions[run_id]) == ["0", "1", "2", "3"]
