"""The main job (``prl demo --quick``) end to end at toy sizes: base, SFT and GRPO + DEVA rows
plus the oracle on the leaderboard, both training jobs' curves in the store, and the page in
headless Chromium. (That the full-size demo *learns* is measured by benchmarks/deva_ablation.py
and the slow test in tests/trainer/test_toy_learns.py.)"""

from __future__ import annotations

import shutil

import httpx
import pytest

from services.demo import MODELS, ORACLE, DemoConfig, format_leaderboard, run_demo
from trainer.toy import QUICK

pytestmark = [pytest.mark.torch, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cfg = DemoConfig.quick(tmp_path_factory.mktemp("demo"), n_boot=20, keep_serving=True)
    result = run_demo(cfg)
    yield result
    result.stack.stop()


def test_leaderboard_has_every_model_best_first(demo):
    entries = demo.leaderboard["entries"]
    assert entries[0]["model"] == ORACLE
    assert {e["model"] for e in entries} == {ORACLE, *MODELS.values()}
    values = [e["value"] for e in entries]
    assert values == sorted(values, reverse=True)
    assert 0.0 < entries[0]["value"] <= 1.0
    assert all(e["ci_low"] <= e["value"] <= e["ci_high"] for e in entries)
    assert ORACLE in format_leaderboard(demo.leaderboard)


def test_alignment_reward_went_through_the_embedding_service(demo):
    """The reference answers parse, so their DEVA alignment component was computed by the
    embedding service: r_v lies in [c, (a/v_min − b)²] = [2, 25] with the defaults."""
    align = demo.runs[ORACLE]["alignment_mean"]
    assert align is not None and 2.0 <= align <= 25.0
    assert demo.runs[MODELS["base"]]["alignment_mean"] is None  # unparsable answers: not scored


def test_grpo_started_from_sft_with_deva_and_both_curves_are_in_the_store(demo):
    sft, grpo = demo.jobs["sft"], demo.jobs["grpo"]
    assert sft["status"] == grpo["status"] == "completed"
    assert sft["step"] == QUICK.sft_steps and grpo["step"] == QUICK.grpo_steps
    url = demo.urls["leaderboard"]
    steps = list(range(1, QUICK.grpo_steps + 1))
    curves = httpx.get(f"{url}/v1/training-jobs/{grpo['id']}/metrics", timeout=30).json()
    assert curves["series"]["div/loss"]["steps"] == steps  # DEVA diversity loss on
    assert curves["series"]["ent/loss"]["steps"] == steps  # DEVA entropy regulariser on
    assert any(name.startswith("reward") for name in curves["series"])
    sft_curves = httpx.get(f"{url}/v1/training-jobs/{sft['id']}/metrics", timeout=30).json()
    assert sft_curves["series"]["loss"]["steps"] == list(range(1, QUICK.sft_steps + 1))
    assert grpo["config"]["init_from"].endswith(f"job-{sft['id']}/final")


def test_every_run_is_stored_with_per_sample_rows(demo):
    url = demo.urls["leaderboard"]
    for run in demo.runs.values():
        detail = httpx.get(f"{url}/v1/runs/{run['run_id']}", timeout=30).json()
        assert detail["status"] == "completed"
        assert detail["n_samples"] == detail["n_done"] == QUICK.n_eval
        assert len(detail["samples"]["items"]) == QUICK.n_eval
        assert detail["git_sha"] and detail["lib_versions"]  # provenance on every run


def test_page_renders_the_table_and_charts(demo):
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed: run `make browser`")
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.services.leaderboard.test_page_browser import ARGS, ink_fraction

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1800})
        page.goto(demo.urls["leaderboard"] + "/")
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        assert page.locator("#leaderboard-table tbody tr").count() == 4
        assert ink_fraction(page.locator("#leaderboard-chart").screenshot()) > 0.01
        panel = page.locator("#curves .panel").first  # a uPlot panel of the training job
        assert ink_fraction(panel.screenshot()) > 0.01
        browser.close()
