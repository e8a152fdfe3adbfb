"""The whole system for end-to-end tests: the Bot API stand-in with the demo cast, the real bot Application, a real
Redis and (optionally) the real worker with the default backbone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from telegram.ext import Application

from bot.main import build_application
from bot.settings import BotSettings
from playground.botapi import BotApiStandIn
from playground.cast import Cast, add_demo_cast
from playground.models import BotMessage
from recommender.extractor import Extractor
from recommender.index import open_index
from tests.conftest import search_kind
from tests.redis_server import RedisServer
from worker.loop import Worker
from worker.settings import WorkerSettings

TOKEN = "5000000002:END-TO-END-test-token"


@dataclass
class System:
    stand_in: BotApiStandIn
    cast: Cast
    redis: Redis
    app: Application
    worker: Worker | None
    catalog: Path

    async def say(self, chat, user, message: str, *, replies: int, timeout: float = 30) -> list[BotMessage]:
        self.stand_in.mark(chat)
        self.stand_in.send_text(chat, user, message)
        return await self.stand_in.wait_for_bot_messages(chat, replies, timeout=timeout)

    async def photo(
        self,
        chat,
        user,
        data: bytes,
        *,
        caption: str | None = None,
        replies: int = 2,
        timeout: float = 30,
    ) -> list[BotMessage]:
        self.stand_in.mark(chat)
        self.stand_in.send_photo(chat, user, data, caption=caption)
        return await self.stand_in.wait_for_bot_messages(chat, replies, timeout=timeout)

    async def press(self, chat, user, message: BotMessage, data: str, *, replies: int) -> list[BotMessage]:
        self.stand_in.mark(chat)
        self.stand_in.press_button(chat, user, message.message_id, data)
        return await self.stand_in.wait_for_bot_messages(chat, replies, timeout=30)


@contextlib.asynccontextmanager
async def running_system(
    *,
    redis: Redis,
    redis_server: RedisServer,
    catalog: Path,
    index_dir: Path,
    extractor: Extractor,
    with_worker: bool = True,
    **bot_overrides: object,
) -> AsyncIterator[System]:
    async with BotApiStandIn(token=TOKEN) as stand_in:
        cast = add_demo_cast(stand_in)
        worker = task = None
        if with_worker:
            worker = Worker(
                redis=redis,
                extractor=extractor,
                index=open_index(index_dir, expected=extractor.fingerprint, search=search_kind()),
                options=WorkerSettings(redis_url=redis_server.url, metrics_port=0, heartbeat_s=1).options(),
            )
            task = asyncio.create_task(worker.run())
        settings = BotSettings(
            telegram_token=TOKEN,
            redis_url=redis_server.url,
            catalog_dir=catalog,
            telegram_base_url=stand_in.base_url,
            telegram_base_file_url=stand_in.base_file_url,
            **bot_overrides,  # type: ignore[arg-type]
        )
        app = build_application(settings)
        # run_polling's own order (initialize, post_init, start, ... stop, post_stop, shutdown, post_shutdown),
        # spelled out because the test needs the event loop while the bot runs.
        await app.initialize()
        await app.post_init(app)  # type: ignore[misc]
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            yield System(stand_in, cast, redis, app, worker, catalog)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.post_stop(app)  # type: ignore[misc]
            await app.shutdown()
            await app.post_shutdown(app)  # type: ignore[misc]
            if worker is not None and task is not None:
                worker.stop()
                await asyncio.wait_for(task, 15)
