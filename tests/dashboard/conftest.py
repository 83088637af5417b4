"""The dashboard under test: served in-process on a free port over the test fleet, and a
real headless Chromium (Debian's ``chromium``) driven by Playwright.

Without chromium (or Playwright) the browser tests are skipped, saying why; CI installs
chromium first (``.ci/run``), so there they always run. Screenshots go to the test's
temporary directory, or, with ``FLEETBUS_UPDATE_SCREENSHOTS=1``, to ``docs/img/`` for
docs/dashboard.md.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from fleetbus.dashboard import Dashboard, open_dashboard
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.testing.fleets import FleetUnderTest

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    return os.environ.get("FLEETBUS_CHROMIUM") or shutil.which("chromium")


@pytest.fixture
async def dashboard(fleet: FleetUnderTest) -> AsyncIterator[Dashboard]:
    """The dashboard of the test's fleet, as the admin, sampling twice a second."""
    conn = await connect(ConnectSettings.from_url(fleet.url, name="fleetbus-dashboard"))
    try:
        async with open_dashboard(conn, fleet.spec, port=0, interval=0.5) as served:
            yield served
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    if executable is None:
        pytest.skip(
            "Debian's chromium is not installed (apt-get install chromium): browser tests skipped"
        )
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]'): browser tests skipped")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page at 1280 x 800; a script error on it fails the test."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
def shoot(tmp_path: Path) -> Any:
    """``await shoot(page, "name")``: a PNG of the page, in docs/img/ when asked for."""
    folder = DOCS_IMG if os.environ.get("FLEETBUS_UPDATE_SCREENSHOTS") == "1" else tmp_path

    async def take(page: Page, name: str, *, full_page: bool = False) -> Path:
        path = folder / f"dashboard-{name}.png"
        await page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        return path

    return take
