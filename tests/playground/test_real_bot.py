"""The playground page driving the real Wanderlens bot, Redis and worker, as a new user would: headless Chromium.

Screenshots land in ``test-artifacts/playground/real-*.png``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis

from playground.cast import GROUP_CHAT_ID
from recommender.extractor import Extractor
from tests.playground.conftest import ARTIFACTS
from tests.redis_server import RedisServer
from tests.system import running_system

pytestmark = pytest.mark.browser

CAPTION = re.compile(r"^\d+\. (?P<name>.+?)(?: — .+?)? · \d+% match")
UI_TIMEOUT_MS = 30_000


async def album_names(page: Page, count: int) -> list[str]:
    """Names in the captions of the last ``count`` album photos on the page."""
    captions = await page.locator("[data-testid=message][data-from=bot] [data-testid=album-item]").evaluate_all(
        "items => items.map(i => i.querySelector('[data-testid=caption]')?.innerText || '')"
    )
    names = []
    for caption in captions[-count:]:
        match = CAPTION.match(caption.splitlines()[0])
        assert match, f"caption does not read like '1. Name — City, Country · 87% match': {caption!r}"
        names.append(match["name"])
    return names


async def send_photo(page: Page, photo: Path, caption: str = "") -> None:
    await page.get_by_test_id("file-input").set_input_files(str(photo))
    if caption:
        await page.get_by_test_id("composer-input").fill(caption)
    await page.get_by_test_id("send-button").click()


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}])
async def test_a_new_user_gets_named_destinations_likes_pages_and_group_suggestions(
    browser: Browser,
    redis: Redis,
    redis_server: RedisServer,
    travel_catalog: Path,
    travel_index: Path,
    default_extractor: Extractor,
    viewport: dict[str, int],
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    label = "phone" if viewport["width"] < 500 else "desktop"
    photos = sorted(p for p in travel_catalog.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    async with running_system(
        redis=redis,
        redis_server=redis_server,
        catalog=travel_catalog,
        index_dir=travel_index,
        extractor=default_extractor,
    ) as system:
        context = await browser.new_context(viewport=viewport)
        page = await context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        expect.set_options(timeout=UI_TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        alice, bob = system.cast.users[0], system.cast.users[1]
        try:
            await page.goto(system.stand_in.url)
            await expect(page.locator("body[data-ready=true]")).to_have_count(1)
            await page.select_option("[data-testid=user-select]", str(alice.id))
            await page.select_option("[data-testid=chat-select]", str(system.cast.private_chats[0].id))

            # A travel photo: five named destinations, then the 👍 and More ▶ buttons.
            await send_photo(page, photos[10])
            items = page.locator("[data-testid=message][data-from=bot] [data-testid=album-item]")
            await expect(items).to_have_count(5)
            first_page = await album_names(page, 5)
            assert len(set(first_page)) == 5
            buttons = page.get_by_test_id("keyboard-button")
            likes_and_pins = ["👍1", "👍2", "👍3", "👍4", "👍5", "📍1", "📍2", "📍3", "📍4", "📍5"]
            await expect(buttons).to_have_text([*likes_and_pins, "More ▶"])
            await page.screenshot(path=str(ARTIFACTS / f"real-{label}-1-album.png"))

            # 📍1: the first place as a venue card, named as in the album.
            await page.get_by_role("button", name="📍1").last.click()
            await expect(page.get_by_test_id("place-title").last).to_contain_text(first_page[0])

            await buttons.first.click()
            await expect(page.get_by_test_id("toast")).to_contain_text(first_page[0])
            await expect(page.locator("[data-testid=message][data-from=bot]").last).to_contain_text("Liked")

            await page.get_by_role("button", name="More ▶").last.click()
            await expect(items).to_have_count(10)
            second_page = await album_names(page, 5)
            assert not set(second_page) & set(first_page)
            await page.screenshot(path=str(ARTIFACTS / f"real-{label}-2-more.png"))

            # The group: Alice and Bob each like a place there, then /suggest says whom each place fits.
            await page.select_option("[data-testid=chat-select]", str(GROUP_CHAT_ID))
            await send_photo(page, photos[10], "/suggest")
            group_items = page.locator("[data-testid=message][data-from=bot] [data-testid=album-item]")
            await expect(group_items).to_have_count(5)
            await page.get_by_role("button", name="👍1").last.click()
            await expect(page.locator("[data-testid=message][data-from=bot]").last).to_contain_text("Alice")
            await page.select_option("[data-testid=user-select]", str(bob.id))
            await send_photo(page, photos[len(photos) // 2 + 3], "/suggest")
            await expect(group_items).to_have_count(10)
            await page.get_by_role("button", name="👍1").last.click()
            await expect(page.locator("[data-testid=message][data-from=bot]").last).to_contain_text("Bob")
            await page.get_by_test_id("composer-input").fill("/suggest")
            await page.get_by_test_id("composer-input").press("Enter")
            await expect(group_items).to_have_count(15)
            captions = await group_items.evaluate_all("items => items.slice(-5).map(i => i.innerText)")
            fits = " ".join(line for c in captions for line in c.splitlines() if line.startswith("Fits:"))
            assert "Alice" in fits and "Bob" in fits, captions
            scroll_width = await page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= viewport["width"]
            await page.screenshot(path=str(ARTIFACTS / f"real-{label}-3-group.png"))
        finally:
            await context.close()
        assert errors == []
