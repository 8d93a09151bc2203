"""The dashboard in a real headless Chromium (Debian's), against a real ``runlog serve``.

The store is of realistic shape (hundreds of runs in three projects, a run preempted
twice, a grid sweep). The browser selects runs and overlays their charts, watches a
live run's chart move as steps are logged, reads a preempted run's timeline, pauses a
sweep with the token and is refused without it, and verifies the log. Each page is
screenshotted into ``RUNLOG_SCREENSHOTS`` (a directory), or a ``screenshots`` folder in
the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

import api

from . import _dashstore
from ._server import TOKEN, running_server

CHROMIUM = os.environ.get("RUNLOG_TEST_CHROMIUM", "/usr/bin/chromium")
# Without these Chromium reaches for the network (updates, sync, QUIC) and stalls here.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000
RUNS = 300  # bulk runs in the store, 200 steps each

pytestmark = pytest.mark.slow


@pytest.fixture
def chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        message = (
            f"the browser test needs Chromium at {CHROMIUM}: apt-get install -y chromium "
            "(.ci/run does), or point RUNLOG_TEST_CHROMIUM at one"
        )
        # As with PostgreSQL: a machine without it skips, saying why; CI, which installs
        # it, sets RUNLOG_REQUIRE_BROWSER=1 so that a missing browser fails instead.
        if os.environ.get("RUNLOG_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (RUNLOG_REQUIRE_BROWSER=1 makes this a failure)")
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard") / "runlog.db"
    anyio.run(_dashstore.realistic, path, RUNS, 200)
    return path


@pytest.fixture(scope="module")
def url(store_path: Path) -> Iterator[str]:
    with running_server(store_path) as served:
        yield served


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("RUNLOG_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser(chromium: str, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as playwright:
        # A fresh profile directory per test: nothing carries over between runs.
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=FLAGS,
            viewport={"width": 1360, "height": 900},
        )
        try:
            yield context
        finally:
            await context.close()


async def _open(browser: BrowserContext, url: str, hash_: str = "#/") -> tuple[Page, list[str]]:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url + "/?refresh=300" + hash_)
    await page.wait_for_selector("#view[data-ready='1']", timeout=WAIT_MS)
    return page, errors


async def _shot(page: Page, folder: Path, name: str) -> None:
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def test_selected_runs_are_overlaid_in_one_panel_per_metric(
    browser: BrowserContext, url: str, shots: Path
) -> None:
    page, errors = await _open(browser, url)
    assert await page.title() == "runlog"
    await page.wait_for_selector("#runs tbody tr[data-run]", timeout=WAIT_MS)
    assert await page.locator("#page-info").get_attribute("data-total") == str(RUNS + 5)
    await page.select_option("#filter-project", "vision")
    await page.wait_for_function(
        "document.querySelector('#page-info').dataset.total === '101'", timeout=WAIT_MS
    )
    boxes = page.locator("#runs tbody tr[data-run^='vision/run-'] input.pick")
    await boxes.nth(0).check()
    await boxes.nth(1).check()
    loss = page.locator(".panel[data-metric='loss']")
    await page.wait_for_selector(".panel[data-metric='loss'][data-runs='2']", timeout=WAIT_MS)
    assert await loss.get_attribute("data-points") == "400"  # 200 steps from each run
    assert sorted(
        await page.locator(".panel").evaluate_all("nodes => nodes.map(n => n.dataset.metric)")
    ) == ["acc", "loss", "lr", "val_loss"]
    assert await loss.locator("canvas").count() == 1
    legend = await loss.locator(".u-legend").inner_text()
    assert legend.count("vision/run-") == 2
    await page.check("#chart-log")
    await page.wait_for_selector(".panel[data-metric='loss'][data-runs='2']", timeout=WAIT_MS)
    await _shot(page, shots, "runs")
    assert errors == []


async def test_charts_take_another_metric_as_x_axis_and_smooth(
    browser: BrowserContext, url: str
) -> None:
    page, errors = await _open(browser, url)
    await page.fill("#search", "twice")
    await page.locator('#runs tbody tr[data-run="vision/twice"] input.pick').check()
    await page.wait_for_selector(".panel[data-metric='loss'][data-points='120']", timeout=WAIT_MS)
    await page.select_option("#chart-x", "acc")
    await page.wait_for_selector(".panel[data-metric='loss'][data-runs='1']", timeout=WAIT_MS)
    metrics = await page.locator(".panel").evaluate_all("ns => ns.map(n => n.dataset.metric)")
    assert metrics == ["loss"]  # the x metric has no panel of its own
    await page.eval_on_selector(
        "#chart-smooth", "s => { s.value = 0.9; s.dispatchEvent(new Event('input')); }"
    )
    assert await page.locator(".panel[data-metric='loss']").get_attribute("data-points") == "120"
    assert errors == []


async def test_zooming_in_asks_the_server_for_the_range_at_full_resolution(
    browser: BrowserContext, url: str, store_path: Path
) -> None:
    # 3,000 steps: more than the 1,000 points a chart asks for, so zooming adds points.
    async with api.init(project="zoom", id="long", store=str(store_path)) as run:
        for step in range(3000):
            await run.log({"loss": 1 / (step + 1)})
    page, errors = await _open(browser, url)
    await page.fill("#search", "long")
    await page.locator('#runs tbody tr[data-run="zoom/long"] input.pick').check()
    panel = page.locator(".panel[data-metric='loss']")
    await page.wait_for_selector(
        ".panel[data-metric='loss'][data-last-step='2999']", timeout=WAIT_MS
    )
    before = int(await panel.get_attribute("data-points") or 0)
    assert before <= 1000
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    over = panel.locator(".u-over")
    grown = (
        f"Number(document.querySelector(\".panel[data-metric='loss']\").dataset.points) > {before}"
    )
    for attempt in range(3):  # a loaded machine may drop a drag made while the page still lays out
        box = await over.bounding_box()
        assert box is not None
        # Drag over the first tenth of the x axis: steps 0 to about 300.
        await page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2)
        await page.mouse.down()
        await page.mouse.move(box["x"] + box["width"] / 10, box["y"] + box["height"] / 2, steps=5)
        await page.mouse.up()
        try:
            await page.wait_for_function(grown, timeout=WAIT_MS // 3)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            await page.dblclick(".panel[data-metric='loss'] .u-over")  # uPlot: reset the zoom
    assert any("/history?" in u and "start=" in u and "stop=" in u for u in requests)
    assert errors == []


async def test_the_runs_table_sorts_searches_and_pages(browser: BrowserContext, url: str) -> None:
    page, errors = await _open(browser, url)
    await page.wait_for_selector("#runs tbody tr[data-run]", timeout=WAIT_MS)
    await page.click("#runs th[data-sort='steps']")
    await page.wait_for_selector("#runs th.sorted[data-sort='steps']", timeout=WAIT_MS)
    first = page.locator("#runs tbody tr").first
    steps = await page.locator("#runs tbody .steps").evaluate_all(
        "cells => cells.map(c => Number(c.textContent))"
    )
    assert len(steps) == 50
    assert steps == sorted(steps, reverse=True)  # most steps first
    await page.click("#next")
    await page.wait_for_function(
        "document.querySelector('#page-info').textContent.startsWith('51\u2013100 of')",
        timeout=WAIT_MS,
    )
    await page.fill("#search", "twice")
    await page.wait_for_function(
        "document.querySelector('#page-info').dataset.total === '1'", timeout=WAIT_MS
    )
    assert await first.get_attribute("data-run") == "vision/twice"
    assert errors == []


async def test_a_live_runs_chart_moves_as_steps_are_logged(
    browser: BrowserContext, url: str, store_path: Path
) -> None:
    run = await api.init(project="web", id="live", store=str(store_path))
    try:
        for step in range(20):
            await run.log({"loss": 1 / (step + 1), "acc": step / 100})
        await run.flush()
        page, errors = await _open(browser, url)
        await page.fill("#search", "live")
        row = page.locator('#runs tbody tr[data-run="web/live"]')
        await row.wait_for(timeout=WAIT_MS)
        assert await row.locator(".status").text_content() == "running"
        await row.locator("input.pick").check()
        panel = ".panel[data-metric='acc']"
        await page.wait_for_selector(panel + "[data-last-step='19']", timeout=WAIT_MS)

        # Steps logged now reach the chart through the live event stream.
        for step in range(20, 50):
            await run.log({"loss": 1 / (step + 1), "acc": step / 100})
        await run.flush()
        await page.wait_for_selector(panel + "[data-last-step='49']", timeout=WAIT_MS)
        assert await page.locator(panel).get_attribute("data-points") == "50"
    finally:
        await run.finish()
    await page.wait_for_function(
        "document.querySelector('#runs tr[data-run=\"web/live\"] .status')"
        ".textContent === 'finished'",
        timeout=WAIT_MS,
    )
    assert errors == []


async def test_a_run_preempted_twice_shows_both_preemptions_on_its_timeline(
    browser: BrowserContext, url: str, shots: Path
) -> None:
    page, errors = await _open(browser, url, "#/run/vision/twice")
    timeline = page.locator("#timeline")
    await timeline.wait_for(timeout=WAIT_MS)
    assert await timeline.get_attribute("data-preempts") == "2"
    assert await page.locator("#timeline rect.band[data-incarnation]").count() == 3
    assert await page.locator("#timeline a.mark-link[data-kind='preempt']").count() == 2
    exits = page.locator("#marks tbody tr[data-kind='exit']")
    assert await exits.count() == 3
    assert "code 143" in (await exits.nth(0).inner_text())
    await page.wait_for_selector(
        ".panel[data-metric='loss'][data-last-step='119']", timeout=WAIT_MS
    )

    # Time travel: back to the first exit, the run was preempted in incarnation 1.
    position = await exits.nth(0).locator("a").inner_text()
    stops = await page.evaluate("""() => {
        const s = document.querySelector('#as-of'); return Number(s.max); }""")
    for index in range(stops + 1):
        await page.eval_on_selector(
            "#as-of", "(s, i) => { s.value = i; s.dispatchEvent(new Event('input')); }", index
        )
        if await page.locator("#as-of-position").inner_text() == position:
            break
    await page.wait_for_selector(f"#as-of-state[data-position='{position[1:]}']", timeout=WAIT_MS)
    assert await page.locator("#as-of-state [data-field='status']").inner_text() == "preempted"
    assert await page.locator("#as-of-state [data-field='incarnation']").inner_text() == "1"
    await _shot(page, shots, "run")

    # Each mark links to its position in the log.
    await page.locator("#marks tbody tr[data-kind='preempt'] a").first.click()
    await page.wait_for_selector("#log tbody tr.selected", timeout=WAIT_MS)
    selected = page.locator("#log tbody tr.selected")
    assert "PreemptMarked" in await selected.inner_text()
    assert errors == []


async def test_pausing_a_sweep_without_the_token_is_refused(
    browser: BrowserContext, url: str
) -> None:
    page, errors = await _open(browser, url, "#/sweep/grid1")
    await page.wait_for_selector("#sweep-status", timeout=WAIT_MS)
    assert await page.locator("#sweep-status").inner_text() == "RUNNING"
    await page.click("#sweep-pause")
    message = page.locator("#sweep-message.refused")
    await message.wait_for(timeout=WAIT_MS)
    assert "401" in await message.inner_text()
    assert await page.locator("#sweep-status").inner_text() == "RUNNING"
    assert errors == []


async def test_pausing_a_sweep_with_the_token(
    browser: BrowserContext, url: str, shots: Path
) -> None:
    page, errors = await _open(browser, url, "#/sweep/grid1")
    await page.wait_for_selector("#parcoords path[data-run]", timeout=WAIT_MS)
    assert await page.locator("#parcoords path[data-run]").count() == 4
    best = await page.locator("#sweep-best a").inner_text()
    assert await page.locator(f"#sweep-runs tr.best[data-run='{best}']").count() == 1
    await page.fill("#token", TOKEN)
    await page.dispatch_event("#token", "change")
    await page.click("#sweep-pause")
    await page.wait_for_function(
        "document.querySelector('#sweep-status').textContent === 'PAUSED'", timeout=WAIT_MS
    )
    assert "now PAUSED" in await page.locator("#sweep-message.done").inner_text()
    await _shot(page, shots, "sweep")
    await page.click("#sweep-resume")
    await page.wait_for_function(
        "document.querySelector('#sweep-status').textContent === 'RUNNING'", timeout=WAIT_MS
    )
    assert errors == []


async def test_the_audit_view_verifies_the_log_and_explains_a_run(
    browser: BrowserContext, url: str, shots: Path
) -> None:
    page, errors = await _open(browser, url, "#/audit?from=1&run=vision/twice")
    await page.wait_for_function(
        "document.querySelector('#explain-out').textContent.includes('vision/twice')",
        timeout=WAIT_MS,
    )
    assert await page.locator("#log tbody tr").count() == 100
    await page.click("#verify")
    await page.wait_for_selector("#verify-out[data-ok='true']", timeout=WAIT_MS)
    assert "intact" in await page.locator("#verify-out").inner_text()
    await _shot(page, shots, "audit")
    assert errors == []


async def test_the_sweep_page_shows_the_queue(browser: BrowserContext, tmp_path: Path) -> None:
    from .conftest import _populate

    path = tmp_path / "queue.db"
    names = await _populate(path)
    with running_server(path) as served:
        page, errors = await _open(browser, served, "#/sweeps")
        row = page.locator(f'#sweeps tbody tr[data-sweep="{names["sweep"]}"]')
        await row.wait_for(timeout=WAIT_MS)
        assert await row.locator(".queued").text_content() == "1"
        await row.locator("a").click()
        queued = page.locator(f'#sweep-queue li[data-run="s/{names["queued"]}"]')
        await queued.wait_for(timeout=WAIT_MS)
        assert "preempted" in (await queued.text_content() or "")
        assert errors == []
