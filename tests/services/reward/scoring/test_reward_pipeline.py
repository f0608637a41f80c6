import asyncio

import pytest

from schemas.reward import (
    BoxSolution,
    ErrorInfo,
    Group,
    GroupsRequest,
    LabelSolution,
    RewardSpec,
    Sample,
)
from services.reward.scoring import (
    ScoringContext,
    SpecError,
    ascore_groups,
    ascore_samples,
    batch_component,
    presets,
    resolve_reward,
    score_samples,
)

GOOD = "<think>t</think><answer>[0, 0, 10, 10]</answer>"
GT = BoxSolution(boxes=[[0, 0, 10, 10]])


def spec(components, method="harmonic", **params):
    return RewardSpec.model_validate(
        {"components": components, "aggregate": {"method": method, "params": params}}
    )


CALLS: list[tuple[int, object]] = []


async def _fake_batch(samples, params, context):
    """Test batch component: 1 when the completion contains 'ok', an error for 'fail'."""
    CALLS.append((len(samples), context))
    return [
        ErrorInfo(code="dependency_down", message="x") if "fail" in s.completion else 0.5
        for s in samples
    ]


batch_component("test_batch", needs="any", bounds=(0.0, 1.0))(_fake_batch)


def test_every_preset_resolves_with_defaults_filled():
    for name in presets.names():
        s = resolve_reward(name)
        assert s.components
    s = resolve_reward("dig")
    assert s.components[1].params["tau"] == 0.5
    assert s.aggregate.method == "sum"
    assert [c.name for c in resolve_reward("deva_detection").components][-1] in (
        "format",
        "alignment",
    )
    assert resolve_reward("deva_detection").aggregate.method == "harmonic"


@pytest.mark.parametrize(
    "ref, fragment",
    [
        ("dgi", "did you mean 'dig'"),
        (spec([{"name": "f2"}]), "reward.components[0].name: unknown reward component 'f2'"),
        (spec([{"name": "f1", "params": {"tau": 2}}]), "reward.components[0].params.tau"),
        (spec([{"name": "f1", "params": {"tua": 0.5}}]), "known parameters: tau"),
        (spec([{"name": "f1"}], method="harmonc"), "did you mean 'harmonic'"),
        (spec([{"name": "f1"}], eps=-1), "reward.aggregate.params.eps"),
        (spec([{"name": "f1", "weight": 0}]), "every weight is 0"),
        (spec([{"name": "f1"}, {"name": "f1"}]), "listed more than once"),
    ],
)
def test_bad_specs_explain_themselves(ref, fragment):
    with pytest.raises(SpecError) as exc:
        resolve_reward(ref)
    assert fragment in str(exc.value)


def test_solution_kind_mismatch_names_the_sample():
    s = [
        Sample(id="a", completion=GOOD, solution=GT),
        Sample(id="b", completion=GOOD, solution=LabelSolution(label="x")),
    ]
    with pytest.raises(SpecError, match=r"samples\[1\].solution: component 'f1' needs a box"):
        score_samples(s, "dig")


def test_sync_api_refuses_batch_components():
    with pytest.raises(SpecError, match="ascore_samples"):
        score_samples(
            [Sample(id="a", completion=GOOD, solution=GT)], spec([{"name": "test_batch"}])
        )


def test_batch_component_failure_is_flagged_and_left_out():
    ctx = ScoringContext(settings="S")
    samples = [
        Sample(id="ok", completion=GOOD, solution=GT),
        Sample(id="fail", completion=GOOD + " fail", solution=GT),
        Sample(id="noparse", completion="nothing", solution=GT),
    ]
    CALLS.clear()
    res = asyncio.run(ascore_samples(samples, spec([{"name": "f1"}, {"name": "test_batch"}]), ctx))
    assert [(2, ctx)] == CALLS  # one call, only the samples that parsed
    ok, fail, noparse = res
    assert ok.components == {"f1": 1.0, "test_batch": 0.5}
    assert ok.reward == pytest.approx(2 / (1 + 2))
    assert fail.component_errors["test_batch"].code == "dependency_down"
    assert "test_batch" not in fail.components
    assert fail.reward == pytest.approx(1.0)  # f1 alone, not a harmonic mean with a fake 0
    assert noparse.reward == 0.0 and noparse.error.code == "no_answer"
    assert noparse.components == {"f1": 0.0}


def test_groups_rewards_advantages_and_stats():
    far = "<think>t</think><answer>[50, 50, 60, 60]</answer>"
    req = GroupsRequest(
        reward=spec([{"name": "f1"}], method="sum"),
        advantage="grpo",
        groups=[
            Group(id="g1", solution=GT, completions=[GOOD, far, GOOD, "junk"]),
            Group(id="g2", solution=GT, completions=[GOOD, GOOD]),
        ],
    )
    out = asyncio.run(ascore_groups(req))
    g1, g2 = out.groups
    assert g1.rewards == [1.0, 0.0, 1.0, 0.0]
    assert g1.components == {"f1": [1.0, 0.0, 1.0, 0.0]}
    assert [e and e.code for e in g1.errors] == [None, None, None, "no_answer"]
    std = (4 * 0.25 / 3) ** 0.5
    assert g1.std == pytest.approx(std)
    assert g1.advantages == pytest.approx([0.5 / (std + 1e-4), -0.5 / (std + 1e-4)] * 2)
    assert g2.zero_variance and g2.advantages == [0.0, 0.0] and g2.std == 0.0
    assert not g1.zero_variance
    st = out.stats
    assert (st.n_groups, st.n_completions) == (2, 6)
    assert st.reward_mean == pytest.approx(4 / 6)
    assert st.mean_group_std == pytest.approx(std / 2)
    assert st.zero_variance_fraction == 0.5
    assert st.error_fraction == pytest.approx(1 / 6)


def test_groups_report_component_errors_per_completion():
    req = GroupsRequest(
        reward=spec([{"name": "f1"}, {"name": "test_batch"}]),
        groups=[Group(id="g", solution=GT, completions=[GOOD, GOOD + " fail"])],
    )
    (g,) = asyncio.run(ascore_groups(req)).groups
    errs = g.component_errors["test_batch"]
    assert errs[0] is None and errs[1].code == "dependency_down"
    assert g.components["test_batch"] == [0.5, 0.0]  # missing → range minimum, flagged above


def test_unknown_advantage_estimator():
    req = GroupsRequest(reward="dig", advantage="gpro", groups=[])
    with pytest.raises(SpecError, match="did you mean 'grpo'"):
        asyncio.run(ascore_groups(req))


def test_collector_is_paused_only_while_scoring():
    import gc

    from services.reward.scoring.pipeline import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the outer pause owns re-enabling
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    score_samples([Sample(id="s", completion=GOOD, solution=GT)], "dig")
    assert gc.isenabled()
