"""The simulated Telegram world: users, chats, their timelines, the bot's update queue and counters.

One ``SimWorld`` holds all state in memory. Its methods are synchronous and run on the event loop's thread
(tests and the web page call them from coroutines); the ones that wait ("wait for the bot's reply") are
coroutines that sleep on a change signal instead of polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

from playground.entities import detect_entities, mentions
from playground.files import FileStore, PreparedVariant, prepare_photo
from playground.models import (
    ApiCall,
    BotMessage,
    BotProfile,
    CallbackQueryRecord,
    ChatActionRecord,
    ChatEntry,
    ChatType,
    Counters,
    Location,
    ReplyKeyboard,
    SimChat,
    SimUser,
    UserMessage,
)
from playground.updates import UpdateQueue
from playground.wire import JSON, message_json, user_json

# How long a client shows "typing…" after sendChatAction, unless a message arrives first.
CHAT_ACTION_SECONDS = 5.0
_CALLBACK_ID_BASE = 4_382_000_000_000_000_000


@dataclass(frozen=True)
class WorldEvent:
    """What the web page hears about: ``chat`` (timeline changed), ``action`` and ``callback_answer``."""

    kind: str
    chat_id: int | None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Timeline:
    """One chat's messages in order, plus its counters; private to the world."""

    entries: list[ChatEntry] = field(default_factory=list)
    index: dict[int, int] = field(default_factory=dict)  # message_id → position in entries
    next_message_id: int = 1
    rev: int = 0
    mark: int = 0


def _sticker_image() -> tuple[bytes, int, int]:
    # A plain smiley: enough for a bot's sticker handler to get a real, downloadable WebP.
    image = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((32, 32, 480, 480), fill=(255, 204, 77, 255))
    draw.ellipse((170, 170, 210, 230), fill=(60, 40, 20, 255))
    draw.ellipse((302, 170, 342, 230), fill=(60, 40, 20, 255))
    draw.arc((150, 200, 362, 400), 20, 160, fill=(60, 40, 20, 255), width=18)
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP")
    return buffer.getvalue(), 512, 512


class SimWorld:
    """All simulated state: the cast, the chats, what each side sent, and the bot's pending updates."""

    def __init__(self, bot: BotProfile) -> None:
        self.bot = bot
        self.files = FileStore()
        self._users: dict[int, SimUser] = {}
        self._chats: dict[int, SimChat] = {}
        self._timelines: dict[int, _Timeline] = {}
        self._blocked: set[int] = set()
        self._seq = 0
        self.updates = UpdateQueue()
        self._queries: dict[str, CallbackQueryRecord] = {}
        self._actions: list[ChatActionRecord] = []
        self._action_seq: dict[int, int] = {}  # chat id → message seq when its last action came
        self._sticker: tuple[bytes, int, int] | None = None
        self.uploads = 0
        self.file_id_reuses = 0
        self.url_sends = 0
        self.calls: list[ApiCall] = []
        # setMyCommands lists by (scope as sorted JSON, language code).
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self._changed = asyncio.Event()
        self._subscribers: set[asyncio.Queue[WorldEvent | None]] = set()
        self.closed = False

    # --- the cast ---------------------------------------------------------------------------------------

    @property
    def users(self) -> Mapping[int, SimUser]:
        return dict(self._users)

    @property
    def chats(self) -> Mapping[int, SimChat]:
        return dict(self._chats)

    def add_user(
        self, user_id: int, first_name: str, username: str | None = None, *, language_code: str = "en"
    ) -> SimUser:
        if user_id <= 0:
            raise ValueError(f"user ids are positive. Received: user_id={user_id}")
        user = SimUser(user_id, first_name, username, language_code)
        existing = self._users.get(user_id)
        if existing is not None and existing != user:
            raise ValueError(f"user {user_id} already exists as {existing}. Received: {user}")
        self._users[user_id] = user
        return user

    def set_language(self, user_id: int, language_code: str) -> SimUser:
        """Switches a user's app language (an IETF tag such as "de" or "pt-br"); later updates carry it."""
        if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", language_code):
            raise ValueError(f"a language code is an IETF tag such as de or pt-br. Received: {language_code!r}")
        user = dataclasses.replace(self._users[user_id], language_code=language_code)
        self._users[user_id] = user
        self._publish(WorldEvent("cast", None))
        return user

    def private_chat(self, user: SimUser) -> SimChat:
        """The user's private chat with the bot; its id is the user's id, as on Telegram."""
        self._require_user(user)
        return self._add_chat(SimChat(user.id, "private", None, (user.id,)))

    def group_chat(
        self, chat_id: int, title: str, members: list[SimUser], *, chat_type: ChatType = "supergroup"
    ) -> SimChat:
        if chat_id >= 0 or chat_type == "private":
            raise ValueError(f"group chat ids are negative. Received: chat_id={chat_id}, type={chat_type}")
        for member in members:
            self._require_user(member)
        return self._add_chat(SimChat(chat_id, chat_type, title, tuple(m.id for m in members)))

    def _add_chat(self, chat: SimChat) -> SimChat:
        existing = self._chats.get(chat.id)
        if existing is not None and existing != chat:
            raise ValueError(f"chat {chat.id} already exists as {existing}. Received: {chat}")
        self._chats[chat.id] = chat
        self._timelines.setdefault(chat.id, _Timeline())
        self._publish(WorldEvent("cast", None))
        return chat

    def block_bot(self, user: SimUser, blocked: bool = True) -> None:
        """Makes the bot's messages to this user's private chat fail with 403, as after "Stop bot"."""
        (self._blocked.add if blocked else self._blocked.discard)(user.id)

    def is_blocked(self, chat_id: int) -> bool:
        return chat_id in self._blocked

    def _require_user(self, user: SimUser) -> SimUser:
        """The user as the world knows them now: a test may hold a value from before a language switch."""
        current = self._users.get(user.id)
        if current is None or dataclasses.replace(user, language_code=current.language_code) != current:
            raise ValueError(f"unknown user; create it with user() first. Received: {user}")
        return current

    def require_chat(self, chat_id: int) -> SimChat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise KeyError(chat_id)
        return chat

    def _require_member(self, chat: SimChat, user: SimUser) -> _Timeline:
        user = self._require_user(user)
        if self._chats.get(chat.id) != chat:
            raise ValueError(f"unknown chat. Received: {chat}")
        if user.id not in chat.members:
            raise ValueError(f"{user.first_name} is not a member of chat {chat.id}. Received: {user}")
        return self._timelines[chat.id]

    # --- what users do ----------------------------------------------------------------------------------

    def send_text(self, chat: SimChat, user: SimUser, text: str, *, reply_to: int | None = None) -> int:
        if not text:
            raise ValueError("Telegram does not send empty messages. Received: text=''")
        return self._user_message(chat, user, reply_to, text=text, entities=detect_entities(text))

    def send_photo(
        self,
        chat: SimChat,
        user: SimUser,
        data: bytes,
        *,
        caption: str | None = None,
        reply_to: int | None = None,
    ) -> int:
        """Raises ``ImageDecodeError`` for bytes that are no image, as a Telegram client would refuse them."""
        return self.send_prepared_photo(chat, user, prepare_photo(data), caption=caption, reply_to=reply_to)

    def send_prepared_photo(
        self,
        chat: SimChat,
        user: SimUser,
        variants: tuple[PreparedVariant, ...],
        *,
        caption: str | None = None,
        reply_to: int | None = None,
    ) -> int:
        """``send_photo`` for a photo already decoded by ``prepare_photo`` (e.g. in a worker thread)."""
        self._require_member(chat, user)
        return self._user_message(
            chat,
            user,
            reply_to,
            photo=self.files.add_photo(variants),
            caption=caption or None,
            caption_entities=detect_entities(caption) if caption else (),
        )

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
        document = self.files.add_document(data, file_name=file_name, mime_type=mime_type)
        return self._user_message(
            chat,
            user,
            reply_to,
            document=document,
            caption=caption or None,
            caption_entities=detect_entities(caption) if caption else (),
        )

    def send_sticker(self, chat: SimChat, user: SimUser, *, reply_to: int | None = None) -> int:
        if self._sticker is None:
            self._sticker = _sticker_image()
        data, width, height = self._sticker
        return self._user_message(
            chat, user, reply_to, sticker=self.files.add_sticker(data, width=width, height=height)
        )

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
        """A shared (not live) location, as from the attachment menu or a request_location button."""
        location = Location(float(latitude), float(longitude), horizontal_accuracy or None)
        if not location.is_valid:
            raise ValueError(
                "a location has latitude in [-90, 90] and longitude in [-180, 180]. "
                f"Received: latitude={latitude}, longitude={longitude}"
            )
        if horizontal_accuracy is not None and not 0 <= horizontal_accuracy <= 1500:
            raise ValueError(f"horizontal_accuracy is 0-1500 metres. Received: {horizontal_accuracy}")
        return self._user_message(chat, user, reply_to, location=location)

    def _user_message(self, chat: SimChat, user: SimUser, reply_to: int | None, **content: Any) -> int:
        timeline = self._require_member(chat, user)
        user = self._users[user.id]  # with the app language it has now
        if reply_to is not None and reply_to not in timeline.index:
            raise ValueError(f"no message {reply_to} in chat {chat.id}. Received: reply_to={reply_to}")
        message = UserMessage(
            chat_id=chat.id,
            message_id=self._take_message_ids(timeline, 1)[0],
            seq=self._next_seq(),
            rev=self._bump(timeline),
            date=int(time.time()),
            user=user,
            reply_to=reply_to,
            **content,
        )
        message = dataclasses.replace(message, delivered=self._reaches_bot(chat, message))
        self._append(timeline, message)
        if message.delivered:
            self._enqueue("message", message_json(self, message))
        self._touched(chat.id, timeline)
        return message.message_id

    def _reaches_bot(self, chat: SimChat, message: UserMessage) -> bool:
        """Telegram's group privacy mode: commands, mentions of the bot and replies to it get through."""
        if chat.is_private or not self.bot.privacy_mode:
            return True
        text = message.text if message.text is not None else message.caption
        entities = message.entities or message.caption_entities
        if text:
            encoded = text.encode("utf-16-le")
            for entity in entities:
                if entity.type == "bot_command":
                    command = encoded[entity.offset * 2 : (entity.offset + entity.length) * 2].decode("utf-16-le")
                    _, _, addressee = command.partition("@")
                    if not addressee or addressee.lower() == self.bot.username.lower():
                        return True
            if self.bot.username.lower() in (m.lower() for m in mentions(text, entities)):
                return True
        replied = self.entry(chat.id, message.reply_to) if message.reply_to is not None else None
        return isinstance(replied, BotMessage)

    def press_button(self, chat: SimChat, user: SimUser, message_id: int, callback_data: str) -> str:
        """Presses an inline button of a bot message; returns the callback query id."""
        self._require_member(chat, user)
        user = self._users[user.id]  # with the app language it has now
        message = self.entry(chat.id, message_id)
        if not isinstance(message, BotMessage) or message.deleted:
            raise ValueError(f"no bot message {message_id} in chat {chat.id}. Received: message_id={message_id}")
        if callback_data not in {data for _, data in message.buttons}:
            raise ValueError(
                f"message {message_id} has no button with that data; it has {message.buttons}. "
                f"Received: callback_data={callback_data!r}"
            )
        query = CallbackQueryRecord(
            id=str(_CALLBACK_ID_BASE + len(self._queries) + 1),
            chat_id=chat.id,
            message_id=message_id,
            user_id=user.id,
            data=callback_data,
        )
        self._queries[query.id] = query
        self._enqueue(
            "callback_query",
            {
                "id": query.id,
                "from": user_json(user),
                "message": message_json(self, message),
                "chat_instance": str(abs(hash((self.bot.id, chat.id)))),
                "data": callback_data,
            },
        )
        self._notify()
        return query.id

    # --- what the bot does (called by the Bot API methods) --------------------------------------------

    def reserve_message_ids(self, chat_id: int, count: int = 1) -> list[int]:
        """Message ids for a message about to be sent; an album needs one per item before it exists."""
        return self._take_message_ids(self._timelines[chat_id], count)

    def add_bot_message(self, chat_id: int, message_ids: list[int], **content: Any) -> BotMessage:
        """Appends a bot message under ids from ``reserve_message_ids``."""
        timeline = self._timelines[chat_id]
        message = BotMessage(
            chat_id=chat_id,
            message_id=message_ids[0],
            seq=self._next_seq(),
            rev=self._bump(timeline),
            date=int(time.time()),
            **content,
        )
        self._append(timeline, message, extra_ids=message_ids[1:])
        self._touched(chat_id, timeline)
        return message

    def replace_message(self, old: ChatEntry, **changes: Any) -> ChatEntry:
        """Stores an edited (or deleted) version of a message under the same ids."""
        timeline = self._timelines[old.chat_id]
        new = dataclasses.replace(old, rev=self._bump(timeline), **changes)
        timeline.entries[timeline.index[old.message_id]] = new
        self._touched(old.chat_id, timeline)
        return new

    def record_action(self, chat_id: int, action: str) -> None:
        record = ChatActionRecord(chat_id, action, time.time())
        self._actions.append(record)
        self._action_seq[chat_id] = self._seq
        self._publish(WorldEvent("action", chat_id, {"action": action}))
        self._notify()

    def answer_callback(
        self, query_id: str, *, text: str | None, show_alert: bool, url: str | None
    ) -> CallbackQueryRecord | None:
        """Records the bot's answer; None when the id is unknown or already answered."""
        query = self._queries.get(query_id)
        if query is None or query.answered:
            return None
        query = dataclasses.replace(query, answered=True, text=text, show_alert=show_alert, url=url)
        self._queries[query_id] = query
        self._publish(WorldEvent("callback_answer", query.chat_id, dataclasses.asdict(query)))
        self._notify()
        return query

    def record_call(self, call: ApiCall) -> None:
        self.calls.append(call)

    def counters(self) -> Counters:
        return Counters(
            uploads=self.uploads,
            file_id_reuses=self.file_id_reuses,
            url_sends=self.url_sends,
            requests=dict(Counter(call.method for call in self.calls)),
        )

    # --- the update queue -------------------------------------------------------------------------------

    def _enqueue(self, kind: str, payload: JSON) -> None:
        self.updates.put(kind, payload)
        self._notify()

    # --- reading the timelines --------------------------------------------------------------------------

    def entries(self, chat_id: int, *, since_rev: int = 0) -> list[ChatEntry]:
        """A chat's messages in order; with ``since_rev``, only those added or changed after it."""
        return [e for e in self._timelines[chat_id].entries if e.rev > since_rev]

    def chat_rev(self, chat_id: int) -> int:
        return self._timelines[chat_id].rev

    def entry(self, chat_id: int, message_id: int) -> ChatEntry | None:
        timeline = self._timelines.get(chat_id)
        if timeline is None or message_id not in timeline.index:
            return None
        return timeline.entries[timeline.index[message_id]]

    def bot_messages(self, chat_id: int) -> list[BotMessage]:
        return [e for e in self._timelines[chat_id].entries if isinstance(e, BotMessage)]

    def reply_keyboard(self, chat_id: int, user_id: int | None = None) -> tuple[int, ReplyKeyboard] | None:
        """The reply keyboard a client shows in this chat now, with the id of the message that set it.

        The latest bot message that sets or removes one decides. A ``selective`` keyboard only concerns the
        sender of the message it replies to and the users it @mentions; pass ``user_id`` to see what that
        user's client shows.
        """
        for message in reversed(self.bot_messages(chat_id)):
            if message.reply_keyboard is None and not message.remove_keyboard:
                continue
            if user_id is not None and not self._keyboard_concerns(message, user_id):
                continue
            # Deleting the message that brought a keyboard takes the keyboard away too, as TDLib does.
            if message.deleted or message.reply_keyboard is None:
                return None
            return message.message_id, message.reply_keyboard
        return None

    def _keyboard_concerns(self, message: BotMessage, user_id: int) -> bool:
        # A selective ReplyKeyboardRemove is treated as one for everybody: the playground does not track it.
        if message.reply_keyboard is None or not message.reply_keyboard.selective:
            return True
        replied = self.entry(message.chat_id, message.reply_to) if message.reply_to is not None else None
        if isinstance(replied, UserMessage) and replied.user.id == user_id:
            return True
        user = self._users.get(user_id)
        named = {m.lower() for m in mentions(message.text or "", message.entities)}
        return user is not None and user.username is not None and user.username.lower() in named

    def mark(self, chat_id: int) -> int:
        """Remembers "now" for ``wait_for_bot_messages``; returns the cursor."""
        self._timelines[chat_id].mark = self._seq
        return self._seq

    async def wait_for_bot_messages(
        self, chat_id: int, count: int, *, wait_seconds: float, after: int | None = None
    ) -> list[BotMessage]:
        """The first ``count`` bot messages after the mark (or ``after``), waiting up to ``wait_seconds``."""
        cursor = self._timelines[chat_id].mark if after is None else after
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            found = [m for m in self.bot_messages(chat_id) if m.seq > cursor]
            if len(found) >= count:
                return found[:count]
            remaining = deadline - loop.time()
            if remaining <= 0:
                summary = [(m.kind, m.text or (m.venue.title if m.venue else m.captions)) for m in found]
                raise TimeoutError(
                    f"expected {count} bot message(s) in chat {chat_id} within {wait_seconds}s, "
                    f"got {len(found)}: {summary}"
                )
            await self.wait_changed(remaining)

    def callback_answers(self) -> list[CallbackQueryRecord]:
        return list(self._queries.values())

    def callback_query(self, query_id: str) -> CallbackQueryRecord | None:
        return self._queries.get(query_id)

    def chat_actions(self, chat_id: int | None = None) -> list[ChatActionRecord]:
        return [a for a in self._actions if chat_id is None or a.chat_id == chat_id]

    def current_action(self, chat_id: int) -> ChatActionRecord | None:
        """The action a client would still show: recent, and no bot message since."""
        actions = self.chat_actions(chat_id)
        if not actions or time.time() - actions[-1].at > CHAT_ACTION_SECONDS:
            return None
        sent_after = any(m.seq > self._action_seq[chat_id] for m in self.bot_messages(chat_id))
        return None if sent_after else actions[-1]

    # --- change signals ---------------------------------------------------------------------------------

    async def wait_changed(self, wait_seconds: float) -> None:
        """Sleeps until the next change anywhere in the world, or ``wait_seconds``."""
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), wait_seconds)

    def subscribe(self) -> asyncio.Queue[WorldEvent | None]:
        """A queue of ``WorldEvent``s for one listener; None means the world closed."""
        queue: asyncio.Queue[WorldEvent | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[WorldEvent | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        """Ends long polls and event streams, so the server can stop without waiting on them."""
        self.closed = True
        self.updates.close()
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._notify()

    def _notify(self) -> None:
        # Waiters hold the old event; a fresh one is ready for the next round.
        self._changed.set()
        self._changed = asyncio.Event()

    def _publish(self, event: WorldEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    # --- bookkeeping ------------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @staticmethod
    def _take_message_ids(timeline: _Timeline, count: int) -> list[int]:
        ids = list(range(timeline.next_message_id, timeline.next_message_id + count))
        timeline.next_message_id += count
        return ids

    @staticmethod
    def _bump(timeline: _Timeline) -> int:
        timeline.rev += 1
        return timeline.rev

    @staticmethod
    def _append(timeline: _Timeline, entry: ChatEntry, extra_ids: list[int] | tuple[int, ...] = ()) -> None:
        position = len(timeline.entries)
        timeline.entries.append(entry)
        for message_id in (entry.message_id, *extra_ids):
            timeline.index[message_id] = position

    def _touched(self, chat_id: int, timeline: _Timeline) -> None:
        self._publish(WorldEvent("chat", chat_id, {"rev": timeline.rev}))
        self._notify()
