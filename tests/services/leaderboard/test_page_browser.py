"""The leaderboard page in real headless Chromium (Debian ``chromium`` + Python playwright).

The server is the real app under uvicorn on a free port, over a seeded SQLite file. The
screenshot checks look at pixels: a chart that rendered its data is not blank.
"""

from __future__ import annotations

import io
import shutil

import pytest

from services.leaderboard.app import create_app
from services.leaderboard.settings import LeaderboardSettings
from services.stack import serve_in_thread
from tests.services.leaderboard.leaderboard_helpers import seed_database

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed: run `make browser` (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    url = f"sqlite:///{tmp_path_factory.mktemp('lb') / 'store.db'}"
    seed_database(url, n_models=4, runs_per_model=2, n_samples=25, train_steps=30)
    with serve_in_thread(create_app(LeaderboardSettings(database_url=url))) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed: run `make browser` (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(server, browser):
    pg = browser.new_page(viewport={"width": 1280, "height": 1800})
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server + "/")
    pg.wait_for_selector("body[data-ready=true]", timeout=20_000)
    pg.errors = errors
    yield pg
    pg.close()


def ink_fraction(png: bytes) -> float:
    """Share of pixels that differ from white by more than a little (anti-aliasing aside)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("L")
    hist = img.histogram()
    dark = sum(hist[:235])
    return dark / (img.width * img.height)


def colour_count(png: bytes) -> int:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=64)
    return len([c for c in img.getcolors() if c[0] > 20])


def test_leaderboard_table_lists_every_model_best_first(page):
    rows = page.locator("#leaderboard-table tbody tr")
    assert rows.count() == 4
    values = [float(rows.nth(i).locator("td").nth(2).inner_text()) for i in range(4)]
    assert values == sorted(values, reverse=True)
    ranks = [rows.nth(i).locator("td").first.inner_text() for i in range(4)]
    assert ranks == ["1", "2", "3", "4"]
    assert page.errors == []


def test_leaderboard_chart_renders_bars_with_whiskers(page):
    chart = page.locator("#leaderboard-chart")
    assert chart.locator("rect.bar").count() == 4
    assert chart.locator("g.whisker").count() == 4
    shot = chart.screenshot()
    assert ink_fraction(shot) > 0.03
    assert colour_count(shot) >= 4  # four bar colours plus text and grid


def test_metric_switch_reorders_for_lower_is_better(page):
    page.select_option("#metric-select", "ece")
    page.wait_for_function(
        "document.querySelector('#leaderboard-chart').getAttribute('data-direction')"
        ".includes('lower')"
    )
    rows = page.locator("#leaderboard-table tbody tr")
    values = [float(rows.nth(i).locator("td").nth(2).inner_text()) for i in range(rows.count())]
    assert values == sorted(values)
    page.select_option("#metric-select", "f1")


def test_clicking_a_run_shows_metrics_chart_and_samples(page):
    page.locator("#runs-table tbody tr").first.click()
    page.wait_for_selector("#run-detail:not([hidden])")
    page.wait_for_function("document.querySelectorAll('#run-metrics-chart rect.bar').length === 3")
    assert page.locator("#run-metrics-table tbody tr").count() == 3
    assert page.locator("#samples-table tbody tr").count() == 20
    page.click("#samples-more")
    page.wait_for_function("document.querySelectorAll('#samples-table tbody tr').length === 25")
    assert page.locator("#samples-more").is_hidden()
    assert "git sha" in page.locator("#run-provenance").inner_text()
    assert ink_fraction(page.locator("#run-metrics-chart").screenshot()) > 0.02


def test_training_curves_draw_reward_band_and_loss_lines(page):
    reward = page.locator("#reward-chart")
    assert reward.locator("polyline.line").count() == 1  # reward/mean (std is its band)
    assert reward.locator("polygon.band").count() == 1
    assert page.locator("#loss-chart polyline.line").count() == 3  # policy, gfn, entropy
    for chart in (reward, page.locator("#loss-chart")):
        assert ink_fraction(chart.screenshot()) > 0.02
    assert page.errors == []


def test_a_read_key_from_the_url_is_sent_and_hidden(tmp_path, browser):
    """With auth_read on, `/?key=` authorises the page's calls and leaves the address bar."""
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    seed_database(url, n_models=2, runs_per_model=1, n_samples=3, train_steps=3)
    settings = LeaderboardSettings(database_url=url, auth_read=True, api_keys={"rk": ["read"]})
    with serve_in_thread(create_app(settings)) as base:
        pg = browser.new_page()
        pg.goto(f"{base}/")
        pg.wait_for_function("document.getElementById('status').textContent.includes('read key')")
        pg.goto(f"{base}/?key=rk")
        pg.wait_for_selector("body[data-ready=true]", timeout=20_000)
        assert pg.locator("#leaderboard-table tbody tr").count() == 2
        assert "key=" not in pg.url
        pg.close()
