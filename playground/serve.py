"""Running the playground on its own: the stand-in with the demo cast, until stopped.

``serve_playground`` is the coroutine a caller embeds (the ``wanderlens`` CLI starts the bot next to it);
``run_playground`` is the blocking entry point. The bot connects with::

    ApplicationBuilder().token(token)
        .base_url(f"http://{host}:{port}/bot").base_file_url(f"http://{host}:{port}/file/bot")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from playground.botapi import DEFAULT_BOT_USERNAME, DEFAULT_HOST, BotApiStandIn
from playground.cast import add_demo_cast

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8081
# Any string works as long as the bot uses the same one; the digits become the bot's user id.
DEFAULT_TOKEN = "5000000001:PLAYGROUND-local-token"


async def serve_playground(
    *,
    token: str = DEFAULT_TOKEN,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    bot_username: str = DEFAULT_BOT_USERNAME,
    privacy_mode: bool = False,
    on_ready: Callable[[BotApiStandIn], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serves the stand-in with the demo cast until ``stop`` is set or the task is cancelled.

    ``on_ready`` runs once the port is bound (e.g. to start the bot against ``stand_in.base_url``).
    """
    async with BotApiStandIn(
        token=token, host=host, port=port, bot_username=bot_username, privacy_mode=privacy_mode
    ) as stand_in:
        add_demo_cast(stand_in)
        logger.info("Playground: open %s in a browser", stand_in.url)
        logger.info("Bot API base_url=%s base_file_url=%s", stand_in.base_url, stand_in.base_file_url)
        if on_ready is not None:
            await on_ready(stand_in)
        await (stop or asyncio.Event()).wait()


def run_playground(
    *,
    token: str = DEFAULT_TOKEN,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    bot_username: str = DEFAULT_BOT_USERNAME,
    privacy_mode: bool = False,
) -> None:
    """Blocking: serves the playground until SIGINT (Ctrl+C) or SIGTERM, then shuts down cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Not available on Windows' default loop; Ctrl+C then ends asyncio.run instead.
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await serve_playground(
            token=token, host=host, port=port, bot_username=bot_username, privacy_mode=privacy_mode, stop=stop
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
