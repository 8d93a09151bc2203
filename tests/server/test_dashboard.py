"""The dashboard page in a real headless Chromium (Debian's), against a real server.

The browser loads ``/``, sees a run appear in the runs table as it starts, and its
chart grow when steps are logged; the sweep view shows a sweep's queue.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

import api

from ._server import running_server

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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    path = tmp_path / "runlog.db"
    with running_server(path) as url:
        yield path, url


@pytest.fixture
async def browser(chromium: str, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as playwright:
        # A fresh profile directory per test: nothing carries over between runs.
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, args=FLAGS
        )
        try:
            yield context
        finally:
            await context.close()


async def _open(browser: BrowserContext, url: str) -> Page:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url + "/?refresh=200")
    await page.wait_for_selector("#runs tbody", timeout=WAIT_MS)
    assert errors == []
    return page


async def test_a_run_appears_and_its_chart_updates_as_steps_are_logged(
    browser: BrowserContext, served: tuple[Path, str]
) -> None:
    path, url = served
    page = await _open(browser, url)
    assert await page.title() == "runlog"

    run = await api.init(project="web", id="live", store=str(path))
    try:
        for step in range(20):
            await run.log({"loss": 1 / (step + 1), "acc": step / 100})
        await run.flush()
        row = page.locator('#runs tbody tr[data-run="web/live"]')
        await row.wait_for(timeout=WAIT_MS)
        await page.wait_for_function(
            "document.querySelector('#runs tr[data-run=\"web/live\"] .last-step')"
            ".textContent === '19'",
            timeout=WAIT_MS,
        )
        assert await row.locator(".status").text_content() == "running"

        await row.click()
        await page.wait_for_function(
            "document.querySelector('#chart').dataset.points === '20'", timeout=WAIT_MS
        )
        assert await page.locator("#chart").get_attribute("data-metric") == "acc"
        assert await page.locator("#chart path.line").count() == 1

        # Steps logged now reach the chart through the live event stream.
        for step in range(20, 50):
            await run.log({"loss": 1 / (step + 1), "acc": step / 100})
        await run.flush()
        await page.wait_for_function(
            "document.querySelector('#chart').dataset.lastStep === '49'", timeout=WAIT_MS
        )
        assert await page.locator("#chart").get_attribute("data-points") == "50"
        await page.select_option("#metric", "loss")
        assert await page.locator("#chart").get_attribute("data-metric") == "loss"
    finally:
        await run.finish()
    await page.wait_for_function(
        "document.querySelector('#runs tr[data-run=\"web/live\"] .status')"
        ".textContent === 'finished'",
        timeout=WAIT_MS,
    )


async def test_the_sweep_view_shows_the_queue(
    browser: BrowserContext, served: tuple[Path, str]
) -> None:
    from .conftest import _populate

    path, url = served
    names = await _populate(path)
    page = await _open(browser, url)
    sweep_row = page.locator(f'#sweeps tbody tr[data-sweep="{names["sweep"]}"]')
    await sweep_row.wait_for(timeout=WAIT_MS)
    assert await sweep_row.locator(".queued").text_content() == "1"
    await sweep_row.click()
    queued = page.locator(f'#sweep-queue li[data-run="s/{names["queued"]}"]')
    await queued.wait_for(timeout=WAIT_MS)
    assert "preempted" in (await queued.text_content() or "")
    assert await page.locator("#sweep-status").text_content() == "RUNNING"
