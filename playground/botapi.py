"""A Telegram Bot API stand-in on 127.0.0.1 that an unmodified python-telegram-bot ``Application`` can poll.

Point the bot at it with::

    stand_in = BotApiStandIn(token=TOKEN)
    await stand_in.start()
    app = (
        ApplicationBuilder().token(TOKEN)
        .base_url(stand_in.base_url).base_file_url(stand_in.base_file_url)
        .rate_limiter(AIORateLimiter()).build()
    )

python-telegram-bot then calls ``{base_url}{token}/{method}`` and downloads ``{base_file_url}{token}/{file_path}``.
Tests (and the playground page, served by the same app) play the users through the simulation methods below
(``send_text``, ``send_photo``, ``send_document``, ``send_sticker``, ``send_location``, ``press_button``) and
read back what the bot did (``bot_messages``, ``reply_keyboard``, ``callback_answer``, ``counters``). Routes:

- ``/bot{token}/{method}``: the Bot API (GET or POST; JSON, URL-encoded or multipart parameters); the methods
  are listed in ``playground.methods.METHODS`` (messages, photos, documents, albums, venues and locations,
  chat actions, callback answers, edits, deletes, commands, getUpdates and files)
- ``/file/bot{token}/{file_path}``: file downloads, as ``getFile`` points to them
- ``/``, ``/static/…``, ``/api/…``, ``/media/{file_id}``: the playground page (see ``playground.web``)
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import defaultdict, deque
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

from playground.methods import MAX_DOWNLOAD_BYTES, METHODS_BY_LOWER_NAME, MethodContext
from playground.models import (
    ApiCall,
    BotMessage,
    BotProfile,
    CallbackQueryRecord,
    ChatActionRecord,
    ChatEntry,
    Counters,
    ReplyKeyboard,
    SimChat,
    SimUser,
)
from playground.params import ApiError, bad_request, read_params
from playground.state import SimWorld
from playground.web import STATIC_DIR, add_page_routes

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_BOT_USERNAME = "wanderlens_bot"
DEFAULT_BOT_NAME = "Wanderlens"
# Big enough for a 50 MB document upload plus multipart overhead; aiohttp's default is 1 MB.
MAX_REQUEST_BYTES = 64 * 1024 * 1024
URL_FETCH_TIMEOUT = 10.0
# Long polls and event streams are ended by SimWorld.close(); this only bounds stragglers.
SHUTDOWN_TIMEOUT = 1.0
_FAILURE_DESCRIPTIONS = {
    400: "Bad Request: injected failure",
    403: "Forbidden: bot was blocked by the user",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def _bot_id(token: str) -> int:
    # A real token starts with the bot's user id ("123456:ABC…"); fall back to a fixed id otherwise.
    prefix = token.split(":", 1)[0]
    return int(prefix) if prefix.isdigit() else 5_000_000_001


class BotApiStandIn:
    """The Bot API stand-in: an aiohttp server plus the simulated world it serves.

    Usable as ``async with BotApiStandIn(token=...) as stand_in:``. ``port=0`` picks a free port;
    ``privacy_mode=True`` delivers only commands, mentions and replies from groups, as Telegram does by
    default for bots.
    """

    def __init__(
        self,
        *,
        token: str,
        host: str = DEFAULT_HOST,
        port: int = 0,
        bot_username: str = DEFAULT_BOT_USERNAME,
        bot_name: str = DEFAULT_BOT_NAME,
        privacy_mode: bool = False,
        static_dir: Path | None = None,
    ) -> None:
        if not token:
            raise ValueError("the stand-in needs the token the bot will use. Received: token=''")
        self._token = token
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self.world = SimWorld(BotProfile(_bot_id(token), bot_name, bot_username, privacy_mode))
        self._failures: defaultdict[str, deque[ApiError]] = defaultdict(deque)
        self._static_dir = static_dir or STATIC_DIR
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._context = MethodContext(self.world, self._fetch_url)

    # --- lifecycle --------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_download)
        add_page_routes(app, self.world, self._static_dir)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("This BotApiStandIn is already running!")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._requested_port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._port = sock.getsockname()[1]
        runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=URL_FETCH_TIMEOUT))
        logger.info("Bot API stand-in listening on %s", self.url)

    async def stop(self) -> None:
        """Ends long polls and page streams first, so shutdown does not wait out their timeouts."""
        if self._runner is None:
            return
        self.world.close()
        if self._session is not None:
            await self._session.close()
        await self._runner.cleanup()
        self._runner = None
        logger.info("Bot API stand-in on %s stopped", self.url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("The stand-in has no port until start() is awaited")
        return self._port

    @property
    def url(self) -> str:
        """The playground page, e.g. ``http://127.0.0.1:8081/``."""
        return f"http://{self._host}:{self.port}/"

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``; PTB appends ``{token}/{method}``."""
        return f"http://{self._host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url(...)``; PTB appends ``{token}/{file_path}``."""
        return f"http://{self._host}:{self.port}/file/bot"

    @property
    def bot(self) -> BotProfile:
        return self.world.bot

    # --- HTTP handlers ----------------------------------------------------------------------------------

    def _respond(self, method: str, error: ApiError | None = None, result: Any = None) -> web.Response:
        self.world.record_call(ApiCall(method, error.status if error else 200, error and error.description))
        if error is not None:
            logger.debug("%s → %s %s", method, error.status, error.description)
            return web.json_response(error.body(), status=error.status)
        logger.debug("%s → ok", method)
        return web.json_response({"ok": True, "result": result})

    async def _handle_api(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        if request.match_info["token"] != self._token:
            return self._respond(name, ApiError(401, "Unauthorized"))
        known = METHODS_BY_LOWER_NAME.get(name.lower())
        method_name = known[0] if known else name
        failures = self._failures.get(method_name.lower())
        if failures:
            return self._respond(method_name, failures.popleft())
        if known is None:
            return self._respond(method_name, ApiError(404, "Not Found: method not found"))
        try:
            params = await read_params(request)
            result = await known[1](self._context, params)
        except ApiError as exc:
            return self._respond(method_name, exc)
        except Exception as exc:
            # A stand-in bug must not look like a bot bug: log it and answer like a broken server.
            logger.exception("Bot API stand-in failed on %s", method_name)
            return self._respond(method_name, ApiError(500, f"Internal Server Error: {exc!r}"))
        return self._respond(method_name, result=result)

    async def _handle_download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self._token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        stored = self.world.files.by_path(request.match_info["file_path"])
        if stored is None or stored.size > MAX_DOWNLOAD_BYTES:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type)

    async def _fetch_url(self, url: str, max_bytes: int) -> bytes:
        """Fetches a photo or document the bot sent by URL (local URLs only: there is no internet here)."""
        if self._session is None:
            raise bad_request("failed to get HTTP URL content")
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise bad_request("failed to get HTTP URL content")
                data = await response.content.read(max_bytes + 1)
        except (aiohttp.ClientError, TimeoutError):
            raise bad_request("failed to get HTTP URL content") from None
        if len(data) > max_bytes:
            raise bad_request("failed to get HTTP URL content: file is too big")
        return data

    # --- the cast ---------------------------------------------------------------------------------------

    def user(self, user_id: int, first_name: str, username: str | None = None, *, language_code: str = "en") -> SimUser:
        return self.world.add_user(user_id, first_name, username, language_code=language_code)

    def set_language(self, user: SimUser, language_code: str) -> SimUser:
        """Switches the user's app language, as in Telegram's settings; returns the user as they are now."""
        return self.world.set_language(user.id, language_code)

    def private_chat(self, user: SimUser) -> SimChat:
        return self.world.private_chat(user)

    def group_chat(self, chat_id: int, title: str, members: list[SimUser], *, supergroup: bool = True) -> SimChat:
        return self.world.group_chat(chat_id, title, members, chat_type="supergroup" if supergroup else "group")

    def block_bot(self, user: SimUser, blocked: bool = True) -> None:
        self.world.block_bot(user, blocked)

    # --- user actions: each queues an update for the bot ------------------------------------------------

    def send_text(self, chat: SimChat, user: SimUser, text: str, *, reply_to: int | None = None) -> int:
        """Returns the new message_id; ``/commands`` and ``@mentions`` get entities as on Telegram."""
        return self.world.send_text(chat, user, text, reply_to=reply_to)

    def send_photo(
        self,
        chat: SimChat,
        user: SimUser,
        data: bytes,
        *,
        caption: str | None = None,
        reply_to: int | None = None,
    ) -> int:
        """Stores the photo in up to four sizes (90, 320, 800 px and the original bytes, largest last)."""
        return self.world.send_photo(chat, user, data, caption=caption, reply_to=reply_to)

    def send_document(
        self,
        chat: SimChat,
        user: SimUser,
        data: bytes,
        *,
        file_name: str,
        mime_type: str,
        caption: str | None = None,
        reply_to: int | None = None,
    ) -> int:
        return self.world.send_document(
            chat, user, data, file_name=file_name, mime_type=mime_type, caption=caption, reply_to=reply_to
        )

    def send_sticker(self, chat: SimChat, user: SimUser, *, reply_to: int | None = None) -> int:
        return self.world.send_sticker(chat, user, reply_to=reply_to)

    def send_location(
        self,
        chat: SimChat,
        user: SimUser,
        latitude: float,
        longitude: float,
        *,
        horizontal_accuracy: float | None = None,
        reply_to: int | None = None,
    ) -> int:
        """Shares a location (``Message.location``), as the 📎 → Location menu or a request_location button does.

        Raises ValueError for coordinates off the globe, which no client would send.
        """
        return self.world.send_location(
            chat, user, latitude, longitude, horizontal_accuracy=horizontal_accuracy, reply_to=reply_to
        )

    def press_button(self, chat: SimChat, user: SimUser, message_id: int, callback_data: str) -> str:
        """Returns the callback query id; see ``callback_answer()`` for the bot's answer."""
        return self.world.press_button(chat, user, message_id, callback_data)

    # --- what the bot did -------------------------------------------------------------------------------

    def bot_messages(self, chat: SimChat) -> list[BotMessage]:
        """In order, deleted ones included (flagged), so positions stay stable."""
        return self.world.bot_messages(chat.id)

    def timeline(self, chat: SimChat) -> list[ChatEntry]:
        """Both sides' messages in order."""
        return self.world.entries(chat.id)

    def mark(self, chat: SimChat) -> int:
        """Starts "the next N messages" for ``wait_for_bot_messages``; returns the cursor."""
        return self.world.mark(chat.id)

    # A plain ``timeout`` (not asyncio.timeout) so the TimeoutError can list what did arrive.
    async def wait_for_bot_messages(
        self,
        chat: SimChat,
        count: int,
        *,
        timeout: float = 30.0,
        after: int | None = None,
    ) -> list[BotMessage]:
        """The first ``count`` bot messages after the last ``mark`` (or ``after``); TimeoutError if not."""
        return await self.world.wait_for_bot_messages(chat.id, count, wait_seconds=timeout, after=after)

    def reply_keyboard(self, chat: SimChat, user: SimUser | None = None) -> ReplyKeyboard | None:
        """The reply keyboard the chat shows now (``user``'s view of a selective one); None once removed."""
        current = self.world.reply_keyboard(chat.id, None if user is None else user.id)
        return None if current is None else current[1]

    def callback_answer(self, query_id: str) -> CallbackQueryRecord | None:
        return self.world.callback_query(query_id)

    async def wait_for_callback_answer(
        self,
        query_id: str,
        *,
        timeout: float = 10.0,
    ) -> CallbackQueryRecord:
        """Waits until the bot answers the callback query ``query_id``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            record = self.world.callback_query(query_id)
            if record is not None and record.answered:
                return record
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"callback query {query_id} was not answered within {timeout}s")
            await self.world.wait_changed(remaining)

    def callback_answers(self) -> list[CallbackQueryRecord]:
        return self.world.callback_answers()

    def chat_actions(self, chat: SimChat | None = None) -> list[ChatActionRecord]:
        return self.world.chat_actions(None if chat is None else chat.id)

    def counters(self) -> Counters:
        """Uploads vs file_id reuses vs URL sends, and requests per method (failed ones included)."""
        return self.world.counters()

    @property
    def calls(self) -> list[ApiCall]:
        """Every Bot API request answered, in order."""
        return list(self.world.calls)

    def deliveries(self, update_id: int) -> int:
        """How many getUpdates responses carried this update (1 unless the bot failed to confirm it)."""
        return self.world.updates.deliveries[update_id]

    def my_commands(self, *, language_code: str = "") -> list[dict[str, str]]:
        """The default-scope command list from setMyCommands."""
        return self.world.commands.get(('{"type": "default"}', language_code), [])

    # --- failure injection ------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Answers the next ``times`` calls of ``method`` with an error instead of running it.

        429 carries ``parameters.retry_after`` (PTB raises RetryAfter, AIORateLimiter retries); other
        statuses get Telegram's usual description for them unless ``description`` is given.
        """
        if status == 429:
            text = description or f"Too Many Requests: retry after {retry_after}"
            error = ApiError(429, text, retry_after=retry_after)
        else:
            error = ApiError(status, description or _FAILURE_DESCRIPTIONS.get(status, f"Error {status}"))
        self._failures[method.lower()].extend([error] * times)
