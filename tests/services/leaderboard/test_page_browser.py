"""The leaderboard page in real headless Chromium (Debian ``chromium`` + Python playwright).

The server is the real app under uvicorn on a free port, over a store written by the real
benchmark runner (tests/services/leaderboard/page_data.py). The checks read what a user sees:
text in the tables, the URL, pixels of the drawn boxes, the uPlot panels and their legends,
at 1400 px and at 420 px wide. No request may leave the server (no CDN).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from services.leaderboard.app import create_app
from services.leaderboard.settings import LeaderboardSettings
from services.stack import serve_in_thread
from tests.services.leaderboard.leaderboard_helpers import seed_database
from tests.services.leaderboard.page_data import seed_page_store

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


def _need_browser():  # type: ignore[no-untyped-def]
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed: run `make browser` (apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api", reason="pip install playwright")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    _need_browser()
    root = tmp_path_factory.mktemp("page")
    url = f"sqlite:///{root / 'store.db'}"
    ids = seed_page_store(url, root)
    return url, ids


@pytest.fixture(scope="module")
def server(store):
    with serve_in_thread(create_app(LeaderboardSettings(database_url=store[0]))) as base:
        yield base


@pytest.fixture(scope="module")
def browser(store):  # the store first: seeding runs asyncio, playwright's sync API holds a loop
    sync_api = _need_browser()
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def open_page(browser, server, query="", width=1400):  # type: ignore[no-untyped-def]
    pg = browser.new_page(viewport={"width": width, "height": 1000}, accept_downloads=True)
    pg.errors = []
    pg.foreign = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on(
        "request",
        lambda r: (
            None if r.url.startswith((server, "data:", "blob:")) else pg.foreign.append(r.url)
        ),
    )
    pg.goto(f"{server}/{query}")
    pg.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert pg.get_attribute("body", "data-error") is None
    return pg


def save(pg, name: str) -> None:  # type: ignore[no-untyped-def]
    """With ``PRL_SCREENSHOTS=DIR``, keep a full-page screenshot for a person to look at."""
    import os

    out = os.environ.get("PRL_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(Path(out) / f"{name}.png"), full_page=True)


def pixels(png: bytes):  # type: ignore[no-untyped-def]
    from PIL import Image

    return Image.open(io.BytesIO(png)).convert("RGB")


def ink_fraction(png: bytes) -> float:
    """Share of pixels that differ from white by more than a little (anti-aliasing aside)."""
    hist = pixels(png).convert("L").histogram()
    return sum(hist[:235]) / sum(hist)


def count_colour(img, rgb, tol=40) -> int:  # type: ignore[no-untyped-def]
    r0, g0, b0 = rgb
    return sum(
        1
        for r, g, b in img.getdata()
        if abs(r - r0) < tol and abs(g - g0) < tol and abs(b - b0) < tol
    )


def table_text(pg, selector):  # type: ignore[no-untyped-def]
    return pg.eval_on_selector_all(
        f"{selector} tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
    )


def test_leaderboard_header_names_the_metric_direction_spec_date_and_job(browser, server, store):
    pg = open_page(browser, server)
    head, *rows = table_text(pg, "#leaderboard-table")
    assert "dig/f1 ↑" in head and "reward spec" in head and "date" in head
    assert "training job" in head and "dig/miou" in head  # a column per other suite metric
    models = [r[head.index("model")] for r in rows]
    assert models == ["qwen2vl-dig-grpo", "qwen2vl-base"]
    assert rows[0][head.index("sig.")] == "best" and rows[1][head.index("sig.")] == "▼"
    assert rows[0][head.index("training job")] == "job #1"  # its checkpoint is in job 1's dir
    assert rows[1][head.index("training job")] == "–"
    assert rows[1][head.index("date")].startswith("20")
    assert "ranked by dig/f1 ↑ higher is better" in pg.inner_text("#lb-meta")
    assert "dig/f1 (↑ higher is better)" in pg.inner_text("#lb-chart-title")
    assert "metric=dig%2Ff1" in pg.url and "suite=dig" in pg.url
    # a reward metric is keyed by its spec and the page says which
    pg.select_option("#metric-select", "reward[dig]")
    pg.wait_for_function("location.search.includes('reward%5Bdig%5D')")
    pg.wait_for_function(
        "document.getElementById('lb-meta').textContent.includes('reward spec dig')"
    )
    head, *rows = table_text(pg, "#leaderboard-table")
    assert [r[head.index("reward spec")] for r in rows] == ["dig", "dig"]
    assert pg.errors == [] and pg.foreign == []
    pg.close()


def test_leaderboard_exports_csv_and_json(browser, server):
    pg = open_page(browser, server)
    with pg.expect_download() as dl:
        pg.click("#lb-csv")
    text = dl.value.path().read_text()
    header, first, *_ = text.splitlines()
    assert header.startswith("suite,version,metric,higher_is_better,rank,model,value")
    assert first.split(",")[5] == "qwen2vl-dig-grpo"
    with pg.expect_download() as dl:
        pg.click("#lb-json")
    data = json.loads(dl.value.path().read_text())
    assert data["metric"] == "dig/f1" and data["rows"][0]["model"] == "qwen2vl-dig-grpo"
    pg.close()


def test_sample_viewer_draws_both_images_with_gt_and_predicted_boxes(browser, server, store):
    run_id = store[1]["runs"]["qwen2vl-dig-grpo"]
    sample = next(iter(store[1]["task"].samples())).id
    pg = open_page(browser, server, f"?run={run_id}&sample={sample}")
    assert not pg.is_hidden("#sample-viewer")
    assert pg.locator("#sample-images canvas").count() == 2  # DiG: A and B side by side
    assert [c.strip() for c in pg.locator("#sample-images figcaption").all_inner_texts()] == [
        "image A",
        "image B",
    ]
    shot = pixels(pg.locator("#sample-images").screenshot())
    assert count_colour(shot, (0x16, 0xA3, 0x4A)) > 100  # GT boxes (green)
    assert count_colour(shot, (0xDC, 0x26, 0x26)) > 100  # predicted boxes (red)
    assert len(set(shot.getdata())) > 200  # the rendered scene, not a blank canvas
    # components: raw, range, scaled; for dig every range is [0, 1] so scaled == raw
    _, *rows = table_text(pg, "#components-table")
    comps = {r[0]: r for r in rows}
    assert set(comps) >= {"format", "f1", "miou"} and comps["miou"][2] == "[0, 1]"
    assert comps["miou"][1] == comps["miou"][3]
    total = rows[-1]
    raw_sum = sum(float(comps[c][1]) for c in ("format", "f1", "miou"))
    assert total[0] == "reward = sum(…)" and float(total[1]) == pytest.approx(raw_sum, abs=1e-3)
    pairs = table_text(pg, "#pairs-table")[1:]
    assert pairs and all(float(p[2]) >= 0.5 and p[3] == "yes" for p in pairs)
    assert "<answer>" in pg.inner_text("#sample-completion")
    # clicking another sample moves the deep link
    pg.locator("#samples-table tbody tr").nth(1).click()
    pg.wait_for_function(f"!location.search.includes('sample={sample}')")
    assert pg.errors == [] and pg.foreign == []
    pg.close()


def test_filters_and_breakdown_by_stage_and_difference_kind(browser, server, store):
    run_id = store[1]["runs"]["qwen2vl-base"]
    samples = list(store[1]["task"].samples())
    pg = open_page(browser, server, f"?run={run_id}")
    kind = next(k for s in samples for k in s.meta["kinds"])
    with_kind = [s.id for s in samples if kind in s.meta["kinds"]]
    _, *rows = table_text(pg, "#breakdown-table")
    by_group = {r[0]: r for r in rows}
    assert by_group["all"][1] == str(len(samples))
    assert by_group[f"difference: {kind}"][1] == str(len(with_kind))
    pg.select_option("#kind-filter", kind)
    shown = [r[0] for r in table_text(pg, "#samples-table")[1:]]
    assert sorted(shown) == sorted(with_kind)
    assert pg.inner_text("#samples-count") == f"{len(with_kind)} of {len(samples)} samples"
    pg.close()


def test_two_run_comparison_counts_better_and_worse_samples(browser, server, store):
    runs = store[1]["runs"]
    a, b = runs["qwen2vl-dig-grpo"], runs["qwen2vl-base"]
    pg = open_page(browser, server, f"?run={a}&compare={b}&jobs=1,2")
    save(pg, "page-1400")
    pg.wait_for_function("document.getElementById('compare-summary').textContent.length > 0")
    # hand count from the stored rewards through the API
    ra = {p["sample_id"]: p["reward"] for p in api(pg, server, f"/v1/runs/{a}?limit=500")}
    rb = {p["sample_id"]: p["reward"] for p in api(pg, server, f"/v1/runs/{b}?limit=500")}
    worse = sum(rb[k] < ra[k] - 1e-12 for k in ra)
    better = sum(rb[k] > ra[k] + 1e-12 for k in ra)
    summary = pg.inner_text("#compare-summary")
    assert f"better on {better}, worse on {worse}, equal on {len(ra) - better - worse}" in summary
    deltas = [abs(float(r[3])) for r in table_text(pg, "#compare-table")[1:]]
    assert deltas == sorted(deltas, reverse=True)
    pg.close()


def api(pg, server, path):  # type: ignore[no-untyped-def]
    return pg.evaluate(f"fetch('{server}{path}').then(r => r.json())")["samples"]["items"]


def test_training_panels_one_per_metric_with_integer_steps_and_separate_legends(browser, server):
    pg = open_page(browser, server, "?jobs=1,2")
    panels = pg.locator("#curves .panel")
    picked = pg.locator("#metric-picker input:checked").count()
    assert panels.count() == picked >= 10
    titles = panels.locator("h4").all_inner_texts()
    for name in ("reward", "entropy", "grad_norm", "learning_rate", "kl", "tokens_per_s"):
        assert name in titles
    info = pg.evaluate(
        """() => window.prlPlots.map(u => ({
            series: u.series.length, splits: u.axes[0]._splits,
            xlabel: u.axes[0].label, ylabel: u.axes[1].label,
            plot: u.over.getBoundingClientRect().bottom,
            legend: u.root.querySelector('.u-legend').getBoundingClientRect().top }))"""
    )
    for p in info:
        assert p["xlabel"] == "step" and p["ylabel"]
        assert all(float(v).is_integer() for v in p["splits"])
        assert p["legend"] >= p["plot"]  # the legend sits under the plot, never on it
        assert p["series"] >= 3  # step + two jobs overlaid
    reward = pg.locator('#curves .panel[data-metric="reward"]')
    labels = reward.locator(".u-legend .u-label").all_inner_texts()
    assert any("+ reward_std" in t for t in labels)  # the ± std band
    # hover shows values in the legend
    reward.scroll_into_view_if_needed()
    box = reward.locator(".u-over").bounding_box()
    pg.mouse.move(box["x"] + 5, box["y"] + 5)
    pg.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=4)
    values = reward.locator(".u-legend .u-value").all_inner_texts()
    assert any(v not in ("–", "") for v in values[1:])
    shot = pixels(reward.screenshot())
    assert (
        count_colour(shot, (0x25, 0x63, 0xEB)) > 50 and count_colour(shot, (0xDC, 0x26, 0x26)) > 50
    )
    # smoothing is in the URL and the title
    pg.evaluate(
        "() => { const s = document.getElementById('smoothing'); s.value = '0.5';"
        " s.dispatchEvent(new Event('input')); }"
    )
    assert "EMA 0.5" in pg.locator("#curves .panel h4").first.inner_text()
    assert "smooth=0.5" in pg.url and "jobs=1%2C2" in pg.url
    assert pg.errors == [] and pg.foreign == []
    pg.close()


def test_narrow_screen_has_no_page_overflow(browser, server, store):
    run_id = store[1]["runs"]["qwen2vl-dig-grpo"]
    sample = next(iter(store[1]["task"].samples())).id
    pg = open_page(browser, server, f"?run={run_id}&sample={sample}&jobs=1", width=420)
    save(pg, "page-420")
    assert pg.evaluate("document.documentElement.scrollWidth") <= 420
    for sel in ("#sample-images canvas", "#curves .panel", "#leaderboard-chart"):
        right = pg.evaluate(
            f"Math.max(...[...document.querySelectorAll('{sel}')]"
            ".map(e => e.getBoundingClientRect().right))"
        )
        assert right <= 420
    assert pg.errors == []
    pg.close()


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
