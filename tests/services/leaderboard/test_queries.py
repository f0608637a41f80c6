import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.leaderboard import queries
from services.store import db
from services.store import repository as repo
from services.store.models import Base
from tests.services.leaderboard.leaderboard_helpers import add_run


def test_competition_ranks_share_ties():
    assert queries.competition_ranks([0.9, 0.8, 0.8, 0.7]) == [1, 2, 2, 4]
    assert queries.competition_ranks([]) == []
    assert queries.competition_ranks([1.0, 1.0]) == [1, 1]


def test_best_run_per_model_in_the_metric_direction(factory):
    with db.transaction(factory) as s:
        a1 = add_run(s, "A", {"f1": 0.5, "loss": 2.0}, lower={"loss"})
        a2 = add_run(s, "A", {"f1": 0.7, "loss": 3.0}, lower={"loss"})
        b1 = add_run(s, "B", {"f1": 0.6, "loss": 1.5}, lower={"loss"})
        add_run(s, "C", {"f1": 0.99, "loss": 0.1}, lower={"loss"}, status="failed")
        add_run(s, "C", {"f1": 0.98}, status="running")
        add_run(s, "D", {"f1": 0.95}, suite=("dig", "0", "hash-0"))  # other version
    with factory() as s:
        lb = queries.leaderboard(s, "dig", "f1", version="1")
        assert lb.higher_is_better is True
        assert [(e.model, e.run_id, e.rank, e.n_runs) for e in lb.entries] == [
            ("A", a2, 1, 2),
            ("B", b1, 2, 1),
        ]
        loss = queries.leaderboard(s, "dig", "loss", version="1")
        assert loss.higher_is_better is False
        assert [(e.model, e.run_id, e.value) for e in loss.entries] == [
            ("B", b1, 1.5),
            ("A", a1, 2.0),
        ]
        old = queries.leaderboard(s, "dig", "f1", version="0")
        assert [e.model for e in old.entries] == ["D"]


def test_default_version_is_the_newest_stored(factory):
    with db.transaction(factory) as s:
        add_run(s, "A", {"f1": 0.1}, suite=("dig", "1", "h1"))
    with db.transaction(factory) as s:
        add_run(s, "B", {"f1": 0.2}, suite=("dig", "2", "h2"))
    with factory() as s:
        lb = queries.leaderboard(s, "dig", "f1")
        assert (lb.version, lb.content_hash, [e.model for e in lb.entries]) == ("2", "h2", ["B"])


def test_ci_overlap_with_the_leader(factory):
    with db.transaction(factory) as s:
        add_run(s, "A", {"f1": 0.8}, ci={"f1": (0.75, 0.85)})
        add_run(s, "B", {"f1": 0.7}, ci={"f1": (0.6, 0.76)})
        add_run(s, "C", {"f1": 0.5}, ci={"f1": (0.45, 0.55)})
        add_run(s, "D", {"f1": 0.4})
    with factory() as s:
        e = queries.leaderboard(s, "dig", "f1").entries
        assert [x.overlaps_best for x in e] == [True, True, False, None]
        assert (e[1].ci_low, e[1].ci_high) == (0.6, 0.76)


def test_errors_name_what_exists(factory):
    with db.transaction(factory) as s:
        add_run(s, "A", {"f1": 0.5, "miou": 0.4})
        add_run(s, "B", {"acc": 0.5}, lower={"acc"})
        add_run(s, "C", {"acc": 0.6})
    with factory() as s:
        with pytest.raises(repo.NotFoundError, match=r"metrics here: \['acc', 'f1', 'miou'\]"):
            queries.leaderboard(s, "dig", "map")
        with pytest.raises(repo.NotFoundError, match=r"stored suites: \['dig'\]"):
            queries.leaderboard(s, "coco", "f1")
        with pytest.raises(queries.QueryError, match="both as higher- and lower-is-better"):
            queries.leaderboard(s, "dig", "acc")


def _brute_force(runs, higher):
    best = {}
    for model, value, status, rid in runs:
        if status != "completed":
            continue
        cur = best.get(model)
        better = cur is None or (value > cur[0] if higher else value < cur[0])
        if better or (value == cur[0] and rid > cur[1]):
            best[model] = (value, rid)
    return sorted(
        ((m, v, r) for m, (v, r) in best.items()), key=lambda t: (-t[1] if higher else t[1], t[0])
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from("ABCDE"),
            st.sampled_from([0.1, 0.2, 0.5, 0.9]),
            st.sampled_from(["completed", "completed", "failed"]),
        ),
        min_size=1,
        max_size=25,
    ),
    st.booleans(),
)
def test_leaderboard_matches_brute_force(runs, higher):
    eng = db.make_engine("sqlite://")
    Base.metadata.create_all(eng)
    factory = db.session_factory(eng)
    stored = []
    with db.transaction(factory) as s:
        for model, value, status in runs:
            rid = add_run(s, model, {"m": value}, lower=() if higher else {"m"}, status=status)
            stored.append((model, value, status, rid))
    with factory() as s:
        if not any(st == "completed" for *_, st, _ in stored):
            with pytest.raises(repo.NotFoundError):
                queries.leaderboard(s, "dig", "m")
            return
        got = [(e.model, e.value, e.run_id) for e in queries.leaderboard(s, "dig", "m").entries]
    eng.dispose()
    # ties between equal values of one model resolve to the newest run (all finished in order)
    assert got == _brute_force(stored, higher)


def test_list_runs_filters_and_pages_without_gaps(factory):
    rng = random.Random(0)
    with db.transaction(factory) as s:
        ids = [
            add_run(s, rng.choice("AB"), {"f1": 0.1}, status=rng.choice(["completed", "failed"]))
            for _ in range(23)
        ]
        add_run(s, "A", {"f1": 0.1}, suite=("refcoco", "1", "x"))
    with factory() as s:
        seen, cursor = [], None
        while True:
            page = queries.list_runs(s, suite="dig", limit=5, cursor=cursor)
            seen += [r.id for r in page.items]
            assert len(page.items) <= 5
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == sorted(ids, reverse=True)
        a_failed = queries.list_runs(s, model="A", status="failed", suite="dig", limit=100)
        truth = {
            r.id
            for r in queries.list_runs(s, limit=100).items
            if (r.model, r.status, r.suite) == ("A", "failed", "dig")
        }
        assert {r.id for r in a_failed.items} == truth
        assert queries.list_runs(s, version="9").items == []


def test_run_detail_has_metrics_provenance_and_paged_samples(factory):
    with db.transaction(factory) as s:
        rid = add_run(s, "A", {"f1": 0.5, "miou": 0.25}, n_samples=7)
        repo.add_predictions(s, rid, [{"sample_id": "bad", "error": "timeout"}])
    with factory() as s:
        d = queries.run_detail(s, rid, limit=3)
        assert [m.name for m in d.metrics] == ["f1", "miou"]
        assert (d.model, d.suite, d.suite_version, d.suite_hash) == ("A", "dig", "1", "hash-1")
        assert d.git_sha == "abc" and d.config_hash == repo.config_hash(d.config)
        assert d.n_done == 8
        got, cursor = [p.sample_id for p in d.samples.items], d.samples.next_cursor
        while cursor is not None:
            page = queries.run_predictions(s, rid, limit=3, cursor=cursor)
            got += [p.sample_id for p in page.items]
            cursor = page.next_cursor
        assert got == [f"s{i}" for i in range(7)] + ["bad"]
        errs = queries.run_detail(s, rid, errors_only=True).samples
        assert [p.sample_id for p in errs.items] == ["bad"]
        assert errs.items[0].error == {"code": "error", "message": "timeout"}
        with pytest.raises(repo.NotFoundError):
            queries.run_detail(s, 10_000)


def test_suites_list_counts_and_metric_names(factory):
    with db.transaction(factory) as s:
        add_run(s, "A", {"f1": 0.5})
        add_run(s, "B", {"miou": 0.5})
        add_run(s, "A", {"acc": 0.5}, suite=("cub", "2", "z"))
    with factory() as s:
        got = {(x.name, x.version): (x.n_runs, x.metrics) for x in queries.list_suites(s)}
        assert got == {("cub", "2"): (1, ["acc"]), ("dig", "1"): (2, ["f1", "miou"])}


def test_training_curves_by_name_and_step(factory):
    with db.transaction(factory) as s:
        job = repo.create_training_job(s, "j", config={}, model="A")
        for step in (2, 0, 1):
            repo.add_training_metrics(
                s, job.id, step, {"reward/mean": step / 10, "loss": 1 - step / 10}
            )
        other = repo.create_training_job(s, "k", config={})
        repo.add_training_metrics(s, other.id, 0, {"loss": 5.0})
    with factory() as s:
        c = queries.training_curves(s, job.id)
        assert c.series["reward/mean"].steps == [0, 1, 2]
        assert c.series["reward/mean"].values == [0.0, 0.1, 0.2]
        assert c.series["loss"].values == [1.0, 0.9, 0.8]
        assert c.job.model == "A"
        assert set(queries.training_curves(s, job.id, ["loss"]).series) == {"loss"}
        jobs = queries.list_training_jobs(s, limit=1)
        assert [j.id for j in jobs.items] == [other.id] and jobs.next_cursor == other.id
        with pytest.raises(repo.NotFoundError):
            queries.training_curves(s, 999)


def test_leaderboard_follows_run_status_changes(factory):
    with db.transaction(factory) as s:
        rid = add_run(s, "A", {"f1": 0.9}, status="failed")
        add_run(s, "B", {"f1": 0.5})
    with factory() as s:
        assert [e.model for e in queries.leaderboard(s, "dig", "f1").entries] == ["B"]
    with db.transaction(factory) as s:
        run = repo.get_run(s, rid)
        again = repo.get_or_create_run(
            s,
            run.key,
            model=run.model,
            suite=run.suite,
            config=run.config,
            seed=run.seed,
            git_sha=None,
            lib_versions={},
        )
        assert again.id == rid and again.status == "running"
        repo.finish_run(s, rid, "completed")
    with factory() as s:
        assert [e.model for e in queries.leaderboard(s, "dig", "f1").entries] == ["A", "B"]
    with db.transaction(factory) as s:
        repo.get_run(s, rid).status = "cancelled"  # a direct ORM change is synced too
    with factory() as s:
        assert [e.model for e in queries.leaderboard(s, "dig", "f1").entries] == ["B"]


@given(st.integers(0, 60), st.integers(2, 20))
def test_thin_keeps_first_last_and_at_most_max_points_evenly(n, max_points):
    from schemas.leaderboard import Series

    s = Series(steps=list(range(n)), values=[float(i) for i in range(n)])
    t = queries.thin(s, max_points)
    stride = -(-(n - 1) // (max_points - 1)) if n > 1 else 1
    gaps = [b - a for a, b in zip(t.steps, t.steps[1:], strict=False)]
    assert all(0 < g <= stride for g in gaps)  # no hole wider than the stride
    if n:
        assert t.steps[0] == 0 and t.steps[-1] == n - 1
        assert t.steps == sorted(set(t.steps)) and t.values == [float(x) for x in t.steps]
    if n <= max_points:
        assert t == s
    else:
        assert len(t.steps) <= max_points


def _with_spec(s, run_id, name, spec, digest, value):  # type: ignore[no-untyped-def]
    row = {"name": name, "value": value, "reward_spec": spec, "reward_spec_hash": digest}
    repo.set_metrics(s, run_id, [row])


def test_runs_of_one_reward_metric_scored_with_different_specs_are_not_ranked(factory):
    with db.transaction(factory) as s:
        a = add_run(s, "A", {"dig/f1": 0.9})
        b = add_run(s, "B", {"dig/f1": 0.1})
        _with_spec(s, a, "reward", "deva_detection", "h-deva", 0.28)
        _with_spec(s, b, "reward", "dig", "h-dig", 1.5)
    with factory() as s:
        with pytest.raises(queries.QueryError, match="different reward specs") as err:
            queries.leaderboard(s, "dig", "reward")
        assert "deva_detection" in str(err.value) and "dig (h-dig)" in str(err.value)
        assert [e.model for e in queries.leaderboard(s, "dig", "dig/f1").entries] == ["A", "B"]


def test_a_reward_metric_of_one_spec_is_ranked_and_reports_its_spec(factory):
    with db.transaction(factory) as s:
        a = add_run(s, "A", {})
        b = add_run(s, "B", {})
        _with_spec(s, a, "reward[dig]", "dig", "h-dig", 1.5)
        _with_spec(s, b, "reward[dig]", "dig", "h-dig", 2.5)
    with factory() as s:
        lb = queries.leaderboard(s, "dig", "reward[dig]")
        assert (lb.reward_spec, lb.reward_spec_hash) == ("dig", "h-dig")
        assert [(e.model, e.reward_spec) for e in lb.entries] == [("B", "dig"), ("A", "dig")]
