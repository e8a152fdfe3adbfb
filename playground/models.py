"""The playground's plain data: simulated users and chats, and the messages both sides send.

Everything here is a frozen dataclass. The world (``playground.state``) keeps the current version of each
message and swaps in a ``dataclasses.replace`` copy when the bot edits or deletes it, so a value a test holds
never changes under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ChatType = Literal["private", "group", "supergroup"]
BotMessageKind = Literal["text", "photo", "media_group", "document", "sticker", "venue", "location"]
UserMessageKind = Literal["text", "photo", "document", "sticker", "location"]
PhotoSource = Literal["upload", "file_id", "url"]


@dataclass(frozen=True)
class BotProfile:
    """Who the bot is, as getMe reports it; ``privacy_mode`` is Telegram's group privacy setting."""

    id: int
    first_name: str
    username: str
    privacy_mode: bool = False


@dataclass(frozen=True)
class SimUser:
    """A simulated Telegram user (never a bot)."""

    id: int
    first_name: str
    username: str | None = None
    language_code: str = "en"


@dataclass(frozen=True)
class SimChat:
    """A chat the bot is in: a user's private chat, or a group whose members are user ids."""

    id: int
    type: ChatType
    title: str | None = None
    members: tuple[int, ...] = ()

    @property
    def is_private(self) -> bool:
        return self.type == "private"


@dataclass(frozen=True)
class Entity:
    """A MessageEntity; ``offset`` and ``length`` count UTF-16 code units, as Telegram's do."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class PhotoSize:
    """One stored size of a photo, as Telegram lists them in ``Message.photo``."""

    file_id: str
    file_unique_id: str
    width: int
    height: int
    file_size: int


@dataclass(frozen=True)
class FileRef:
    """A non-photo file (document or sticker) as it appears in a message."""

    file_id: str
    file_unique_id: str
    file_size: int
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Button:
    """An inline keyboard button; the playground only acts on ``callback_data`` buttons."""

    text: str
    callback_data: str | None = None
    url: str | None = None


Keyboard = tuple[tuple[Button, ...], ...]


@dataclass(frozen=True)
class Location:
    """A point on the map, as in ``Message.location``; ``horizontal_accuracy`` is in metres (0-1500)."""

    latitude: float
    longitude: float
    horizontal_accuracy: float | None = None

    @property
    def is_valid(self) -> bool:
        """On the globe: latitude in [-90, 90], longitude in [-180, 180] (NaN is neither)."""
        return -90.0 <= self.latitude <= 90.0 and -180.0 <= self.longitude <= 180.0


@dataclass(frozen=True)
class Venue:
    """A named place (``sendVenue``); the optional ids are passed through as the bot sent them."""

    location: Location
    title: str
    address: str
    foursquare_id: str | None = None
    foursquare_type: str | None = None
    google_place_id: str | None = None
    google_place_type: str | None = None


@dataclass(frozen=True)
class ReplyButton:
    """A reply keyboard button; ``request`` names what pressing it sends instead of its text.

    Only ``"location"`` is simulated (the page shares a location); the others ("contact", "poll", "users",
    "chat", "web_app") are recorded so a test can see them.
    """

    text: str
    request: str | None = None

    @property
    def request_location(self) -> bool:
        return self.request == "location"


@dataclass(frozen=True)
class ReplyKeyboard:
    """A ReplyKeyboardMarkup: the keyboard a client shows instead of its letters until it is removed."""

    rows: tuple[tuple[ReplyButton, ...], ...]
    resize: bool = False
    one_time: bool = False
    persistent: bool = False
    selective: bool = False
    placeholder: str | None = None

    @property
    def buttons(self) -> list[tuple[str, bool]]:
        """Flattened to ``(text, request_location)`` pairs, row by row."""
        return [(button.text, button.request_location) for row in self.rows for button in row]


@dataclass(frozen=True)
class SentPhoto:
    """A photo the bot sent, with how it arrived: uploaded bytes, a reused file_id, or a URL."""

    sizes: tuple[PhotoSize, ...]
    source: PhotoSource
    data: bytes = field(repr=False, compare=False)

    @property
    def file_id(self) -> str:
        """The file_id of the largest size: what a bot caches to re-send the photo."""
        return self.sizes[-1].file_id


@dataclass(frozen=True)
class AlbumItem:
    """One photo of a media group; Telegram gives each its own message_id."""

    message_id: int
    photo: SentPhoto
    caption: str | None = None
    caption_entities: tuple[Entity, ...] = ()


@dataclass(frozen=True)
class UserMessage:
    """A message a simulated user sent.

    ``delivered`` is False when the bot's privacy mode kept it from the bot (plain group chatter).
    """

    chat_id: int
    message_id: int
    seq: int
    rev: int
    date: int
    user: SimUser
    text: str | None = None
    entities: tuple[Entity, ...] = ()
    photo: tuple[PhotoSize, ...] = ()
    caption: str | None = None
    caption_entities: tuple[Entity, ...] = ()
    document: FileRef | None = None
    sticker: FileRef | None = None
    location: Location | None = None
    reply_to: int | None = None
    delivered: bool = True
    deleted: bool = False

    @property
    def kind(self) -> UserMessageKind:
        if self.location is not None:
            return "location"
        if self.photo:
            return "photo"
        if self.document is not None:
            return "document"
        if self.sticker is not None:
            return "sticker"
        return "text"


@dataclass(frozen=True)
class BotMessage:
    """Something the bot sent; a media group is ONE BotMessage whose ``items`` carry the message_ids.

    ``message_id`` is the first (or only) id. ``deleted`` is set instead of dropping the message, so the
    order of ``bot_messages()`` never shifts under a test. A venue also fills ``location``, as Telegram's
    Message does. ``keyboard`` is the inline keyboard; ``reply_keyboard`` and ``remove_keyboard`` are the
    reply keyboard a client shows from this message on (Telegram does not echo those in the Message).
    """

    chat_id: int
    message_id: int
    seq: int
    rev: int
    date: int
    kind: BotMessageKind
    text: str | None = None
    entities: tuple[Entity, ...] = ()
    caption: str | None = None
    caption_entities: tuple[Entity, ...] = ()
    photo: SentPhoto | None = None
    items: tuple[AlbumItem, ...] = ()
    media_group_id: str | None = None
    document: FileRef | None = None
    venue: Venue | None = None
    location: Location | None = None
    keyboard: Keyboard = ()
    reply_keyboard: ReplyKeyboard | None = None
    remove_keyboard: bool = False
    reply_to: int | None = None
    edit_date: int | None = None
    deleted: bool = False

    @property
    def message_ids(self) -> tuple[int, ...]:
        return tuple(item.message_id for item in self.items) or (self.message_id,)

    @property
    def captions(self) -> tuple[str | None, ...]:
        """Per-item captions of an album (or the single photo's caption)."""
        if self.items:
            return tuple(item.caption for item in self.items)
        return (self.caption,)

    @property
    def buttons(self) -> list[tuple[str, str | None]]:
        """The inline keyboard flattened to ``(text, callback_data)`` pairs, row by row."""
        return [(button.text, button.callback_data) for row in self.keyboard for button in row]

    @property
    def reply_buttons(self) -> list[tuple[str, bool]]:
        """The reply keyboard flattened to ``(text, request_location)`` pairs; empty without one."""
        return self.reply_keyboard.buttons if self.reply_keyboard is not None else []

    @property
    def requests_location(self) -> bool:
        """Whether this message shows a reply keyboard with a "share my location" button."""
        return any(request_location for _, request_location in self.reply_buttons)

    @property
    def photos(self) -> tuple[SentPhoto, ...]:
        if self.items:
            return tuple(item.photo for item in self.items)
        return (self.photo,) if self.photo is not None else ()


ChatEntry = UserMessage | BotMessage


@dataclass(frozen=True)
class CallbackQueryRecord:
    """A button press and, once the bot calls answerCallbackQuery, its answer."""

    id: str
    chat_id: int
    message_id: int
    user_id: int
    data: str
    answered: bool = False
    text: str | None = None
    show_alert: bool = False
    url: str | None = None


@dataclass(frozen=True)
class ChatActionRecord:
    """A sendChatAction call; ``at`` is wall-clock seconds, since Telegram shows it for about 5 s."""

    chat_id: int
    action: str
    at: float


@dataclass(frozen=True)
class ApiCall:
    """One request the stand-in answered, failures included."""

    method: str
    status: int
    description: str | None = None


@dataclass(frozen=True)
class Counters:
    """A snapshot of what the bot did with files and methods; see ``BotApiStandIn.counters()``."""

    uploads: int
    file_id_reuses: int
    url_sends: int
    requests: Mapping[str, int]

    def calls(self, method: str) -> int:
        """Requests seen for ``method`` (any letter case), failed ones included."""
        return sum(n for name, n in self.requests.items() if name.lower() == method.lower())
