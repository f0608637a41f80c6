"""The main job (``prl demo``) end to end at reduced sizes: leaderboard rows, training curves
in the store, and the page in headless Chromium."""

from __future__ import annotations

import shutil

import httpx
import pytest

from services.demo import DemoConfig, format_leaderboard, run_demo

pytestmark = [pytest.mark.torch, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cfg = DemoConfig(
        workdir=tmp_path_factory.mktemp("demo"),
        n_train=8,
        n_eval=4,
        steps=2,
        n_boot=20,
        keep_serving=True,
    )
    result = run_demo(cfg)
    yield result
    result.stack.stop()


def test_leaderboard_has_every_model_best_first(demo):
    entries = demo.leaderboard["entries"]
    assert entries[0]["model"] == "reference-gt-jitter"
    assert {e["model"] for e in entries} == {"reference-gt-jitter", "qwen2vl-base", "qwen2vl-deva"}
    values = [e["value"] for e in entries]
    assert values == sorted(values, reverse=True)
    assert 0.0 < entries[0]["value"] <= 1.0
    assert "reference-gt-jitter" in format_leaderboard(demo.leaderboard)


def test_alignment_reward_went_through_the_embedding_service(demo):
    """The reference answers parse, so their DEVA alignment component was computed by the
    embedding service: r_v lies in [c, (a/v_min − b)²] = [2, 25] with the defaults."""
    align = demo.runs["reference-gt-jitter"]["alignment_mean"]
    assert align is not None and 2.0 <= align <= 25.0
    assert demo.runs["qwen2vl-base"]["alignment_mean"] is None  # unparsable answers: not scored


def test_training_job_ran_with_deva_and_its_curves_are_in_the_store(demo):
    assert demo.job["status"] == "completed" and demo.job["step"] == 2
    url = demo.urls["leaderboard"]
    curves = httpx.get(f"{url}/v1/training-jobs/{demo.job['id']}/metrics", timeout=30).json()
    assert curves["series"]["div/loss"]["steps"] == [1, 2]  # DEVA diversity loss on
    assert curves["series"]["ent/loss"]["steps"] == [1, 2]  # DEVA entropy regulariser on
    assert any(name.startswith("reward") for name in curves["series"])


def test_every_run_is_stored_with_per_sample_rows(demo):
    url = demo.urls["leaderboard"]
    for run in demo.runs.values():
        detail = httpx.get(f"{url}/v1/runs/{run['run_id']}", timeout=30).json()
        assert detail["status"] == "completed"
        assert detail["n_samples"] == detail["n_done"] == 4
        assert len(detail["samples"]["items"]) == 4
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
        assert page.locator("#leaderboard-table tbody tr").count() == 3
        assert ink_fraction(page.locator("#leaderboard-chart").screenshot()) > 0.01
        panel = page.locator("#curves .panel").first  # a uPlot panel of the training job
        assert ink_fraction(panel.screenshot()) > 0.01
        browser.close()
