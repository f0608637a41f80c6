"""``prl rewards fit-aggregator`` end to end on a SQLite store filled through the store API."""

from __future__ import annotations

import json

import numpy as np
import pytest

from schemas.reward import AggregateRequest, RewardSpec
from services.benchmark.learned_aggregator import fit_learned_spec, table_from_rows
from services.benchmark.store import RunSpec, SqlRunStore
from services.cli.errors import run as prl_run
from services.reward.fit import FitConfig, harmonic_mean
from services.reward.scoring import aggregate_values, compiled
from services.reward.scoring.catalog import aggregate_rows

SPEC = {
    "components": [{"name": "miou"}, {"name": "giou"}, {"name": "f1"}],
    "aggregate": {"method": "harmonic"},
}


def target_of(miou: float, giou: float) -> float:
    """The per-sample "metric" of the synthetic runs: harmonic mean of the scaled inputs
    (giou's range is [-1, 1], so its scaled value is (giou + 1) / 2)."""
    return float(harmonic_mean(np.array([[miou, (giou + 1) / 2]]))[0])


def fill_run(store: SqlRunStore, key: str, model: str, n: int, seed: int, **kw) -> int:
    rng = np.random.default_rng(seed)
    run_id = store.open_run(
        RunSpec(
            key=key,
            model=model,
            model_info={},
            suite="synthetic-agg",
            suite_version="1",
            content_hash="h" * 16,
            config={"reward": kw.get("reward", SPEC)},
            seed=seed,
            git_sha=None,
            lib_versions={},
            n_samples=n,
        )
    )
    rows = []
    for i in range(n):
        miou, giou = float(rng.uniform(0, 1)), float(rng.uniform(-1, 1))
        comps = {"miou": miou, "giou": giou, "f1": target_of(miou, giou)}
        if kw.get("drop_f1") and i % 2:
            del comps["f1"]
        rows.append(
            {
                "sample_id": f"s{i}",
                "prediction": "<think>x</think><answer>[]</answer>",
                "reward": 0.0,
                "components": comps,
                "error": None,
                "extra": {},
            }
        )
    assert store.add(run_id, rows) == n
    store.finish(run_id, "completed")
    return run_id


@pytest.fixture()
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = SqlRunStore(url)
    fill_run(store, "run-a", "model-a", 300, seed=0)
    fill_run(store, "run-b", "model-b", 300, seed=1)
    fill_run(store, "tiny", "model-c", 12, seed=2)
    return url


def prl(capsys, *args):
    code = prl_run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def test_fit_from_two_runs_then_serve_the_model(capsys, db, tmp_path):
    out = tmp_path / "agg.json"
    args = ["rewards", "fit-aggregator", "--run", "run-a", "--run", "2", "--run", "2"]
    args += ["--db", db, "--restarts", "2"]
    code, stdout, err = prl(capsys, *args, "--target", "f1", "--out", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["inputs"] == ["miou", "giou"] and summary["rows"] == 600
    assert summary["n_train"] == 480 and summary["n_holdout"] == 120
    assert [r["key"] for r in summary["runs"]] == ["run-a", "run-b"]
    assert summary["holdout_loss"] < 1e-3  # the target is a harmonic mean of the inputs
    model = json.loads(out.read_text())
    assert model["provenance"]["runs"][0]["key"] == "run-a"
    assert model["provenance"]["fit"]["holdout_mse"] == pytest.approx(summary["holdout_loss"])
    assert model["provenance"]["fitted_at"]
    # the printed spec works in the reward library as it is
    spec = summary["spec"]
    assert spec["aggregate"] == {"method": "learned", "params": {"path": str(out.resolve())}}
    rng = np.random.default_rng(9)
    rows = [{"miou": float(rng.uniform()), "giou": float(rng.uniform(-1, 1))} for _ in range(50)]
    got = aggregate_rows(AggregateRequest.model_validate({"reward": spec, "values": rows}))
    want = [target_of(r["miou"], r["giou"]) for r in rows]
    assert np.sqrt(np.mean((np.array(got.rewards) - want) ** 2)) < 0.04
    # text summary; an existing file is kept unless --force
    code, _, err = prl(capsys, *args, "--target", "f1", "--out", str(out))
    assert code == 2 and "exists; pass --force" in one_line_error(err)
    code, text, err = prl(capsys, *args, "--target", "f1", "--out", str(out), "--force")
    assert code == 0, err
    assert text.startswith(f"wrote {out}") and "harmonic" in text and '"learned"' in text


def test_bradley_terry_from_pairs_of_runs_on_the_same_samples(capsys, db, tmp_path):
    out = tmp_path / "bt.json"
    code, stdout, err = prl(
        capsys,
        *("rewards", "fit-aggregator", "--suite", "synthetic-agg", "--target", "f1"),
        *("--inputs", "miou,giou", "--loss", "bradley-terry", "--out", str(out), "--json"),
        *("--units", "4", "--restarts", "1"),
        *("--db", db),
    )
    assert code == 0, err
    s = json.loads(stdout)
    # s0..s11 are in all three runs (3 pairs each), s12..s299 in two (1 pair each)
    assert s["pairs"] + s["tied_pairs"] == 12 * 3 + 288
    assert s["loss"] == "bradley_terry" and len(s["runs"]) == 3
    fit = json.loads(out.read_text())["provenance"]["fit"]
    assert fit["holdout_pair_accuracy"] > 0.9


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--run", "nope"], "no run with id or key 'nope'"),
        (["--run", "99"], "no run with id or key '99'"),
        (["--suite", "other"], "no completed run of suite 'other'"),
        ([], "no runs given"),
        (["--run", "tiny"], "too few samples to fit: 12 stored rows"),
        (["--run", "run-a", "--inputs", "miou,format"], "its reward has no component 'format'"),
        (["--run", "run-a", "--inputs", "miou,f1"], "the target 'f1' is also an input"),
        (["--run", "run-a", "--loss", "hinge"], "--loss 'hinge': use mse or bradley-terry"),
        (["--run", "run-a", "--loss", "bt"], "preference pairs need at least two runs"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(capsys, db, tmp_path, extra, message):
    out = tmp_path / "m.json"
    code, _, err = prl(
        capsys, "rewards", "fit-aggregator", "--target", "f1", "--out", str(out), "--db", db, *extra
    )
    assert code == 2
    assert message in one_line_error(err)
    assert not out.exists()


def test_rows_missing_the_target_are_skipped_and_counted(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'half.db'}"
    fill_run(SqlRunStore(url), "half", "m", 30, seed=3, drop_f1=True)
    code, _, err = prl(
        capsys,
        *("rewards", "fit-aggregator", "--run", "half", "--target", "f1"),
        *("--out", str(tmp_path / "m.json"), "--db", url),
    )
    assert code == 2
    assert "15 stored rows have every input" in err and "(15 rows lack one)" in err


def test_fit_learned_spec_helper_compares_with_harmonic(tmp_path):
    """The helper for benchmark scripts: rows of (components, metric) and a base spec in, a
    spec using the fitted model out; on harmonic-generated data it matches harmonic."""
    rng = np.random.default_rng(7)
    base = {
        "components": [{"name": "f1"}, {"name": "miou"}, {"name": "alignment", "weight": 0.25}],
        "aggregate": {"method": "harmonic"},
    }
    harm = compiled(
        RewardSpec.model_validate(
            {**base, "components": [{"name": n} for n in ("f1", "miou", "alignment")]}
        )
    )
    lo, hi = harm.lo[2], harm.hi[2]
    raw = np.column_stack(
        [rng.uniform(0, 1, 400), rng.uniform(0, 1, 400), rng.uniform(lo, hi, 400)]
    )
    metric, _ = aggregate_values(harm, raw, np.ones(raw.shape, bool))
    rows = [
        (dict(zip(("f1", "miou", "alignment"), r, strict=True)), m)
        for r, m in zip(raw, metric, strict=True)
    ]
    rows.append(({"f1": 1.0}, 1.0))  # missing values: skipped
    spec, result = fit_learned_spec(
        base, rows, tmp_path / "ablation.json", cfg=FitConfig(restarts=2)
    )
    assert [c["name"] for c in spec["components"]] == ["f1", "miou", "alignment"]
    assert all("weight" not in c for c in spec["components"])
    assert result.n_train + result.n_holdout == 400
    assert result.holdout_loss < 2e-3
    learned = compiled(RewardSpec.model_validate(spec))
    got, errors = aggregate_values(learned, raw[:50], np.ones((50, 3), bool))
    assert errors == [None] * 50
    assert np.abs(got - metric[:50]).mean() < 0.04


def test_table_from_rows_scales_by_range_and_skips_incomplete_rows():
    t = table_from_rows(
        [({"a": 0.5, "g": 0.0}, 0.5), ({"a": 2.0, "g": -3.0}, 1.0), ({"a": 0.1}, 0.2)],
        ["a", "g"],
        {"a": (0.0, 1.0), "g": (-1.0, 1.0)},
    )
    assert t.x.tolist() == [[0.5, 0.5], [1.0, 0.0]] and t.target.tolist() == [0.5, 1.0]
    assert t.skipped == 1
