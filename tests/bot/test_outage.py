"""The bot while its Redis is down, end to end: the unmodified Application polling the Bot API stand-in, the real
worker (with the quick colour extractor, so that no shared photos are needed), and a Redis server of this test's
own that it stops and starts again empty."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot import texts
from bot.i18n import Lang, Translator
from contract.connect import COMMAND_TIMEOUT_S
from contract.outage import NOTICE_AFTER_S
from recommender.catalog import load_catalog
from recommender.index_build import build_index
from tests.redis_server import RedisServer
from tests.system import running_system
from tests.worker.fakes import ColourExtractor, colour_catalog, photo_bytes


@pytest.fixture(scope="module")
def en() -> Lang:
    return Translator.load().default


@pytest.fixture(scope="module")
def colour_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("colour-site")
    catalog = colour_catalog(folder / "catalog", 40)
    build_index(load_catalog(catalog), ColourExtractor(), folder / "index", progress=False)  # type: ignore[arg-type]
    return catalog, folder / "index"


def system(own_redis: Redis, own_redis_server: RedisServer, colour_site: tuple[Path, Path], **overrides: object):
    catalog, index = colour_site
    return running_system(
        redis=own_redis,
        redis_server=own_redis_server,
        catalog=catalog,
        index_dir=index,
        extractor=ColourExtractor(),
        **overrides,
    )  # type: ignore[arg-type]


async def restart_after(own_redis_server: RedisServer, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await asyncio.to_thread(own_redis_server.restart)


async def test_a_photo_sent_while_redis_restarts_is_answered_once_it_is_back(
    own_redis: Redis, own_redis_server: RedisServer, colour_site: tuple[Path, Path], en: Lang
) -> None:
    async with system(own_redis, own_redis_server, colour_site) as running:
        alice, chat = running.cast.users[0], running.cast.private_chats[0]
        album, _ = await running.photo(chat, alice, photo_bytes((40, 90, 200)))
        assert album.kind == "media_group"

        # Back within the moment a restart takes: no message about it, just the answer.
        own_redis_server.stop()
        restarting = asyncio.create_task(restart_after(own_redis_server, 0.5))
        album, follow_up = await running.photo(chat, alice, photo_bytes((200, 40, 40)))
        await restarting
        assert album.kind == "media_group" and len(album.items) == 5
        assert follow_up.buttons

        # Down for longer: the user is told the answer will come, then it comes; Redis came back empty, and the
        # worker made its stream and consumer group again.
        own_redis_server.stop()
        running.stand_in.mark(chat)
        running.stand_in.send_photo(chat, alice, photo_bytes((40, 200, 40)))
        (notice,) = await running.stand_in.wait_for_bot_messages(chat, 1, timeout=NOTICE_AFTER_S + 10)
        assert notice.text == en.gettext(texts.WAITING_FOR_BACKEND)
        await restart_after(own_redis_server, 0)
        _, album, follow_up = await running.stand_in.wait_for_bot_messages(chat, 3, timeout=30)
        assert album.kind == "media_group" and len(album.items) == 5
        assert follow_up.buttons


async def test_past_the_wait_the_user_is_told_to_try_again_and_settings_say_so_at_once(
    own_redis: Redis, own_redis_server: RedisServer, colour_site: tuple[Path, Path], en: Lang
) -> None:
    async with system(own_redis, own_redis_server, colour_site, outage_wait_s=1.0) as running:
        alice, chat = running.cast.users[0], running.cast.private_chats[0]
        own_redis_server.stop()
        try:
            (sorry,) = await running.photo(chat, alice, photo_bytes((40, 90, 200)), replies=1)
            assert sorry.text == en.gettext(texts.BACKEND_DOWN)
            # A setting is stored by the bot itself, which does not wait for Redis: it says so instead of the
            # generic apology.
            (sorry,) = await running.say(chat, alice, "/language de", replies=1)
            assert sorry.text == en.gettext(texts.BACKEND_DOWN)
            await asyncio.sleep(0.5)
            assert len(running.stand_in.bot_messages(chat)) == 2, "one answer each, nothing more"
        finally:
            await restart_after(own_redis_server, 0)
        (done,) = await running.say(chat, alice, "/language de", replies=1)
        assert "Deutsch" in (done.text or "")


async def test_a_photo_sent_while_redis_hangs_is_answered_when_it_wakes(
    own_redis: Redis, own_redis_server: RedisServer, colour_site: tuple[Path, Path], en: Lang
) -> None:
    """A stopped server accepts connections and never answers (as one cut off without a reset does): each command
    gives up after COMMAND_TIMEOUT_S, the first failure marks Redis down, and the request's other steps skip it."""
    async with system(own_redis, own_redis_server, colour_site) as running:
        alice, chat = running.cast.users[0], running.cast.private_chats[0]
        own_redis_server.process.send_signal(signal.SIGSTOP)
        try:
            running.stand_in.mark(chat)
            running.stand_in.send_photo(chat, alice, photo_bytes((40, 90, 200)))
            # One timed-out command, then the wait: told well before the steps could time out one after another.
            (notice,) = await running.stand_in.wait_for_bot_messages(
                chat, 1, timeout=COMMAND_TIMEOUT_S + NOTICE_AFTER_S + 4
            )
            assert notice.text == en.gettext(texts.WAITING_FOR_BACKEND)
        finally:
            own_redis_server.process.send_signal(signal.SIGCONT)
        _, album, follow_up = await running.stand_in.wait_for_bot_messages(chat, 3, timeout=40)
        assert album.kind == "media_group" and len(album.items) == 5
        assert follow_up.buttons
