"""Fixtures: a stand-in on a free port with the demo cast, and the echo bot polling it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from telegram.ext import Application

from playground.botapi import BotApiStandIn
from playground.cast import Cast, add_demo_cast
from tests.playground.echo_bot import TOKEN, build_echo_app


@pytest.fixture
async def stand_in() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn(token=TOKEN) as server:
        yield server


@pytest.fixture
def cast(stand_in: BotApiStandIn) -> Cast:
    return add_demo_cast(stand_in)


@pytest.fixture
async def echo_app(stand_in: BotApiStandIn) -> AsyncIterator[Application]:
    """The echo bot, polling the stand-in the way run_polling would, shut down in order afterwards."""
    app = build_echo_app(stand_in)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


# ------------------------------------------------------------------------------------- headless Chromium

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "playground"


def require_chromium() -> None:
    # A failure, not a skip: CI installs Chromium, so a missing one is a broken setup.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (CI does)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
