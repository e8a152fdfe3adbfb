"""Bot API JSON for the playground's entities: the exact shapes python-telegram-bot parses.

Functions only; the world hands in what they need to look up (chats, users, replied-to messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from playground.models import (
    BotMessage,
    BotProfile,
    ChatEntry,
    Entity,
    FileRef,
    Keyboard,
    Location,
    PhotoSize,
    SimChat,
    SimUser,
    UserMessage,
    Venue,
)

JSON = dict[str, Any]


class WireLookup(Protocol):
    """What serialising a message needs from the world."""

    @property
    def bot(self) -> BotProfile: ...

    @property
    def users(self) -> Mapping[int, SimUser]: ...

    def require_chat(self, chat_id: int) -> SimChat: ...

    def entry(self, chat_id: int, message_id: int) -> ChatEntry | None: ...


def user_json(user: SimUser) -> JSON:
    data: JSON = {"id": user.id, "is_bot": False, "first_name": user.first_name}
    if user.username:
        data["username"] = user.username
    data["language_code"] = user.language_code
    return data


def bot_json(bot: BotProfile, *, get_me: bool = False) -> JSON:
    data: JSON = {"id": bot.id, "is_bot": True, "first_name": bot.first_name, "username": bot.username}
    if get_me:
        data |= {
            "can_join_groups": True,
            "can_read_all_group_messages": not bot.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
    return data


def chat_json(chat: SimChat, users: Mapping[int, SimUser]) -> JSON:
    if chat.is_private:
        user = users[chat.id]
        data: JSON = {"id": chat.id, "type": "private", "first_name": user.first_name}
        if user.username:
            data["username"] = user.username
        return data
    return {"id": chat.id, "type": chat.type, "title": chat.title}


def entity_json(entity: Entity) -> JSON:
    data: JSON = {"type": entity.type, "offset": entity.offset, "length": entity.length}
    if entity.url is not None:
        data["url"] = entity.url
    if entity.language is not None:
        data["language"] = entity.language
    return data


def photo_json(sizes: tuple[PhotoSize, ...]) -> list[JSON]:
    return [
        {
            "file_id": s.file_id,
            "file_unique_id": s.file_unique_id,
            "width": s.width,
            "height": s.height,
            "file_size": s.file_size,
        }
        for s in sizes
    ]


def file_json(ref: FileRef) -> JSON:
    data: JSON = {"file_id": ref.file_id, "file_unique_id": ref.file_unique_id, "file_size": ref.file_size}
    for key in ("file_name", "mime_type", "width", "height"):
        if getattr(ref, key) is not None:
            data[key] = getattr(ref, key)
    return data


def sticker_json(ref: FileRef) -> JSON:
    return file_json(ref) | {"type": "regular", "is_animated": False, "is_video": False, "emoji": "👍"}


def location_json(location: Location) -> JSON:
    data: JSON = {"latitude": location.latitude, "longitude": location.longitude}
    if location.horizontal_accuracy:
        data["horizontal_accuracy"] = location.horizontal_accuracy
    return data


def venue_json(venue: Venue) -> JSON:
    data: JSON = {"location": location_json(venue.location), "title": venue.title, "address": venue.address}
    for key in ("foursquare_id", "foursquare_type", "google_place_id", "google_place_type"):
        if getattr(venue, key) is not None:
            data[key] = getattr(venue, key)
    return data


def keyboard_json(keyboard: Keyboard) -> JSON:
    rows = []
    for row in keyboard:
        buttons = []
        for button in row:
            item: JSON = {"text": button.text}
            if button.callback_data is not None:
                item["callback_data"] = button.callback_data
            if button.url is not None:
                item["url"] = button.url
            buttons.append(item)
        rows.append(buttons)
    return {"inline_keyboard": rows}


def _text_fields(data: JSON, key: str, text: str | None, entities: tuple[Entity, ...]) -> None:
    if text is None:
        return
    data[key] = text
    if entities:
        data[f"{key}_entities" if key == "caption" else "entities"] = [entity_json(e) for e in entities]


def message_json(world: WireLookup, entry: ChatEntry, message_id: int | None = None, *, depth: int = 0) -> JSON:
    """One Message; for an album pass the item's ``message_id``. Replies nest one level, like Telegram's."""
    message_id = entry.message_id if message_id is None else message_id
    chat = world.require_chat(entry.chat_id)
    data: JSON = {"message_id": message_id}
    if isinstance(entry, UserMessage):
        data["from"] = user_json(entry.user)
    else:
        data["from"] = bot_json(world.bot)
    data["chat"] = chat_json(chat, world.users)
    data["date"] = entry.date
    if isinstance(entry, UserMessage):
        _user_message_fields(data, entry)
    else:
        _bot_message_fields(data, entry, message_id)
    if entry.reply_to is not None and depth == 0:
        replied = world.entry(entry.chat_id, entry.reply_to)
        if replied is not None and not replied.deleted:
            data["reply_to_message"] = message_json(world, replied, entry.reply_to, depth=1)
    return data


def _user_message_fields(data: JSON, message: UserMessage) -> None:
    _text_fields(data, "text", message.text, message.entities)
    if message.photo:
        data["photo"] = photo_json(message.photo)
    if message.document is not None:
        data["document"] = file_json(message.document)
    if message.sticker is not None:
        data["sticker"] = sticker_json(message.sticker)
    if message.location is not None:
        data["location"] = location_json(message.location)
    _text_fields(data, "caption", message.caption, message.caption_entities)


def _bot_message_fields(data: JSON, message: BotMessage, message_id: int) -> None:
    if message.edit_date is not None:
        data["edit_date"] = message.edit_date
    item = next((i for i in message.items if i.message_id == message_id), None)
    if item is not None:
        data["media_group_id"] = message.media_group_id
        data["photo"] = photo_json(item.photo.sizes)
        _text_fields(data, "caption", item.caption, item.caption_entities)
        return
    _text_fields(data, "text", message.text, message.entities)
    if message.photo is not None:
        data["photo"] = photo_json(message.photo.sizes)
    if message.document is not None:
        data["document"] = file_json(message.document)
    if message.venue is not None:
        data["venue"] = venue_json(message.venue)
    if message.location is not None:
        data["location"] = location_json(message.location)  # a venue's Message carries both, as Telegram's
    _text_fields(data, "caption", message.caption, message.caption_entities)
    if message.keyboard:
        data["reply_markup"] = keyboard_json(message.keyboard)


def messages_json(world: WireLookup, entry: ChatEntry) -> list[JSON]:
    """Every Message an entry stands for (an album is several)."""
    if isinstance(entry, BotMessage) and entry.items:
        return [message_json(world, entry, item.message_id) for item in entry.items]
    return [message_json(world, entry)]
