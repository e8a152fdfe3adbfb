"""The playground page in headless Chromium, against the stand-in and the echo bot.

Screenshots land in ``test-artifacts/playground/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis
from telegram.ext import Application

from bot import texts
from bot.i18n import Translator
from playground.botapi import BotApiStandIn
from playground.cast import GROUP_CHAT_ID, Cast
from tests.playground.conftest import ARTIFACTS
from tests.playground.echo_bot import ALBUM, VENUE_TITLE
from tests.redis_server import RedisServer
from tests.system import running_system

pytestmark = pytest.mark.browser

VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
UI_TIMEOUT_MS = 10_000


def write_photo(tmp_path: Path) -> Path:
    """A sunset-ish gradient JPEG, like a user's holiday photo."""
    image = Image.new("RGB", (1024, 768))
    pixels = image.load()
    for y in range(768):
        for x in range(0, 1024, 4):
            colour = (230 - y // 6, 120 + x // 12, 90 + y // 5)
            for dx in range(4):
                pixels[x + dx, y] = colour
    path = tmp_path / "holiday.jpg"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    path.write_bytes(buffer.getvalue())
    return path


async def assert_no_horizontal_scroll(page: Page, width: int) -> None:
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"page is {scroll_width}px wide in a {width}px viewport"


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_chat_flow(
    browser: Browser, stand_in: BotApiStandIn, cast: Cast, echo_app: object, tmp_path: Path, viewport: str
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = VIEWPORTS[viewport]
    context = await browser.new_context(viewport=size, device_scale_factor=2 if viewport == "phone" else 1)
    page = await context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            page_errors.append(msg.text) if msg.type == "error" and "Failed to load resource" not in msg.text else None
        ),
    )

    async def shot(step: str) -> None:
        await page.screenshot(path=str(ARTIFACTS / f"{viewport}-{step}.png"))

    try:
        await page.goto(stand_in.url)
        await expect(page.locator("body[data-ready=true]")).to_have_count(1)
        await shot("0-empty")
        await page.select_option("[data-testid=user-select]", str(cast.users[0].id))
        await page.select_option("[data-testid=chat-select]", str(cast.private_chats[0].id))
        await expect(page.get_by_test_id("chat-title")).to_have_text("Wanderlens")

        # A photo with a caption: the album of three and the keyboard come back.
        await page.get_by_test_id("file-input").set_input_files(str(write_photo(tmp_path)))
        await expect(page.get_by_test_id("attachment")).to_be_visible()
        await page.get_by_test_id("composer-input").fill("Somewhere like this?")
        await page.get_by_test_id("send-button").click()
        mine = page.locator("[data-testid=message][data-from=user]")
        await expect(mine.locator("img.photo")).to_have_count(1)
        await expect(mine.get_by_test_id("caption")).to_have_text("Somewhere like this?")
        items = page.get_by_test_id("album-item")
        await expect(items).to_have_count(3)
        await expect(page.get_by_test_id("caption")).to_have_text(
            ["Somewhere like this?", *(f"{i + 1}/3 · {name}" for i, (name, _, _) in enumerate(ALBUM))]
        )
        buttons = page.get_by_test_id("keyboard-button")
        await expect(buttons).to_have_text(["👍 Kyoto", "👍 Lisbon", "More like this"])
        await expect(page.get_by_test_id("message").last).to_be_in_viewport()
        await assert_no_horizontal_scroll(page, size["width"])
        await shot("1-album")

        # A button press: the callback answer shows as a toast, the keyboard is edited.
        await buttons.first.click()
        await expect(page.get_by_test_id("toast")).to_have_text("Saved like:1")
        await expect(buttons).to_have_text(["✅ Saved"])
        await shot("2-button")

        # Another user in the group sends a command; the bot's reply appears quoted.
        await page.select_option("[data-testid=user-select]", str(cast.users[1].id))
        await page.select_option("[data-testid=chat-select]", str(GROUP_CHAT_ID))
        await expect(page.get_by_test_id("chat-title")).to_have_text("Trip planning")
        await page.get_by_test_id("composer-input").fill("/suggest")
        await page.get_by_test_id("composer-input").press("Enter")
        reply = page.locator("[data-testid=message][data-from=bot]").last
        await expect(reply.get_by_test_id("message-text")).to_have_text("Suggestion for Bob: try Kyoto")
        await expect(reply.locator(".reply-quote")).to_contain_text("/suggest")
        await expect(page.get_by_test_id("composer-input")).to_have_value("")
        await assert_no_horizontal_scroll(page, size["width"])
        await shot("3-group")

        # A file that is no image is refused by the page's API, and the page says so.
        not_a_photo = tmp_path / "notes.txt"
        not_a_photo.write_text("not a photo")
        await page.get_by_test_id("file-input").set_input_files(str(not_a_photo))
        await page.get_by_test_id("send-button").click()
        await expect(page.get_by_test_id("error")).to_contain_text("notes.txt is not an image")
        await assert_no_horizontal_scroll(page, size["width"])
        await shot("4-error")
    finally:
        await context.close()
    assert page_errors == []


async def test_sharing_a_location_brings_back_a_venue_card(
    browser: Browser, stand_in: BotApiStandIn, cast: Cast, echo_app: Application
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = VIEWPORTS["phone"]
    context = await browser.new_context(viewport=size)
    page = await context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    rome = "https://www.openstreetmap.org/?mlat=41.9028&mlon=12.4964#map=12/41.9028/12.4964"
    try:
        await page.goto(stand_in.url)
        await expect(page.locator("body[data-ready=true]")).to_have_count(1)
        await page.select_option("[data-testid=user-select]", str(cast.users[0].id))
        await page.select_option("[data-testid=chat-select]", str(cast.private_chats[0].id))
        await expect(page.get_by_test_id("reply-keyboard")).to_be_hidden()

        # The bot asks with a reply keyboard; its location button shares the form's place (Rome).
        await page.get_by_test_id("composer-input").fill("/locate")
        await page.get_by_test_id("composer-input").press("Enter")
        keys = page.get_by_test_id("reply-keyboard-button")
        await expect(keys).to_have_text(["📍 Send my location", "Not now"])
        await page.screenshot(path=str(ARTIFACTS / "phone-6-location-keyboard.png"))
        await keys.first.click()
        shared = page.locator("[data-testid=message][data-from=user][data-kind=location]")
        await expect(shared.get_by_test_id("place-title")).to_have_text("📍 Location")
        await expect(shared.get_by_test_id("place-link")).to_have_attribute("href", rome)
        venue = page.locator("[data-testid=message][data-from=bot][data-kind=venue]")
        await expect(venue).to_have_count(1)
        await expect(venue.get_by_test_id("place-title")).to_have_text(f"📍 {VENUE_TITLE}")
        await expect(venue.get_by_test_id("place-address")).to_have_text("41.9028, 12.4964")
        await expect(venue.get_by_test_id("place")).to_contain_text("41.9028° N, 12.4964° E")
        await expect(venue.get_by_test_id("place-link")).to_have_attribute("href", rome)
        await expect(page.get_by_test_id("reply-keyboard")).to_be_hidden()  # the venue came with ReplyKeyboardRemove

        # The 📍 form: a preset elsewhere, shared without any keyboard.
        await page.get_by_test_id("location-button").click()
        await page.select_option("[data-testid=location-preset]", label="Tokyo")
        await expect(page.get_by_test_id("location-lat")).to_have_value("35.6762")
        await page.get_by_test_id("location-share").click()
        await expect(venue).to_have_count(2)
        await expect(venue.last.get_by_test_id("place-address")).to_have_text("35.6762, 139.6503")
        await expect(venue.last.get_by_test_id("place")).to_contain_text("35.6762° N, 139.6503° E")
        await expect(page.get_by_test_id("location-panel")).to_be_hidden()
        await expect(page.get_by_test_id("message").last).to_be_in_viewport()
        await assert_no_horizontal_scroll(page, size["width"])
        await page.screenshot(path=str(ARTIFACTS / "phone-7-venue.png"))
    finally:
        await context.close()
    assert [(loc.latitude, loc.longitude) for loc in echo_app.bot_data["locations"]] == [
        (41.9028, 12.4964),
        (35.6762, 139.6503),
    ]
    assert page_errors == []


async def test_picking_a_language_makes_the_real_bot_answer_in_it(
    browser: Browser, redis: Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    de = Translator.load().for_language("de")
    # The real bot without a worker: /help needs none, and the reply's language is all this checks.
    async with running_system(
        redis=redis,
        redis_server=redis_server,
        catalog=tmp_path,
        index_dir=tmp_path,
        extractor=None,  # type: ignore[arg-type]
        with_worker=False,
    ) as system:
        context = await browser.new_context(viewport=VIEWPORTS["phone"])
        page = await context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        expect.set_options(timeout=UI_TIMEOUT_MS)
        page_errors: list[str] = []
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        alice = system.cast.users[0]
        try:
            await page.goto(system.stand_in.url)
            await expect(page.locator("body[data-ready=true]")).to_have_count(1)
            await page.select_option("[data-testid=user-select]", str(alice.id))
            await page.select_option("[data-testid=chat-select]", str(system.cast.private_chats[0].id))
            await expect(page.get_by_test_id("lang-select")).to_have_value("en")
            await page.select_option("[data-testid=lang-select]", "de")
            for _ in range(100):  # the page's POST lands before the message is typed, as a person's would
                if system.stand_in.world.users[alice.id].language_code == "de":
                    break
                await asyncio.sleep(0.05)
            assert system.stand_in.world.users[alice.id].language_code == "de"
            await page.get_by_test_id("composer-input").fill("/help")
            await page.get_by_test_id("composer-input").press("Enter")
            reply = page.locator("[data-testid=message][data-from=bot]").last
            await expect(reply.get_by_test_id("message-text")).to_have_text(de.gettext(texts.HELP))
            # Another user keeps their own language, and the picker follows whoever you are.
            await page.select_option("[data-testid=user-select]", str(system.cast.users[1].id))
            await expect(page.get_by_test_id("lang-select")).to_have_value("en")
            await page.select_option("[data-testid=user-select]", str(alice.id))
            await expect(page.get_by_test_id("lang-select")).to_have_value("de")
            await assert_no_horizontal_scroll(page, VIEWPORTS["phone"]["width"])
            await page.screenshot(path=str(ARTIFACTS / "phone-5-language.png"))
        finally:
            await context.close()
    assert page_errors == []


async def test_the_view_follows_new_messages_until_the_reader_scrolls_up(
    browser: Browser, stand_in: BotApiStandIn, cast: Cast
) -> None:
    context = await browser.new_context(viewport=VIEWPORTS["desktop"])
    page = await context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        await page.goto(stand_in.url)
        await expect(page.locator("body[data-ready=true]")).to_have_count(1)
        await page.select_option("[data-testid=user-select]", str(cast.users[0].id))
        await page.select_option("[data-testid=chat-select]", str(GROUP_CHAT_ID))
        group, bob = cast.group, cast.users[1]
        messages = page.get_by_test_id("message")
        for n in range(40):
            stand_in.send_text(group, bob, f"line {n}: " + "a long line of chat " * 6)
        await expect(messages).to_have_count(40)
        await expect(messages.last).to_be_in_viewport()  # followed, though the list grew past the view
        # The list itself gets shorter (a smaller window, a taller composer): the view still shows the last one.
        await page.set_viewport_size({"width": VIEWPORTS["desktop"]["width"], "height": 420})
        await expect(messages.last).to_be_in_viewport()
        await page.set_viewport_size(VIEWPORTS["desktop"])
        # The reader scrolls up: a new message must not pull the view down.
        await page.get_by_test_id("message-list").hover()
        await page.mouse.wheel(0, -3000)
        await expect(messages.nth(5)).to_be_in_viewport()
        stand_in.send_text(group, bob, "something new")
        await expect(messages).to_have_count(41)
        await page.wait_for_timeout(500)  # a render that would scroll has happened by now
        await expect(messages.nth(5)).to_be_in_viewport()
        await expect(messages.last).not_to_be_in_viewport()
        # Back at the bottom, the view follows again.
        await page.mouse.wheel(0, 100_000)
        stand_in.send_text(group, bob, "and again")
        await expect(messages).to_have_count(42)
        await expect(messages.last).to_be_in_viewport()
    finally:
        await context.close()
