"""The Bot API methods the stand-in implements, one coroutine each, and the table that names them.

Each method reads its parameters from ``ApiParams``, checks them against the Bot API's limits (raising
``ApiError`` with Telegram's description), changes the world and returns the JSON ``result``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from playground.entities import utf16_len
from playground.files import ImageDecodeError, prepare_photo
from playground.formatting import FormattingError, format_text
from playground.models import (
    AlbumItem,
    BotMessage,
    Button,
    Entity,
    FileRef,
    Keyboard,
    Location,
    ReplyButton,
    ReplyKeyboard,
    SentPhoto,
    SimChat,
    Venue,
)
from playground.params import ApiError, ApiParams, UploadedFile, bad_request
from playground.state import SimWorld
from playground.updates import UpdatesConflict
from playground.wire import JSON, bot_json, message_json, messages_json

# Bot API limits (https://core.telegram.org/bots/api and /bots/faq).
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER = 200
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
MAX_PHOTO_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_DOCUMENT_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_PHOTO_DIMENSIONS_SUM = 10_000
MAX_PHOTO_ASPECT_RATIO = 20
ALBUM_SIZE = (2, 10)
MAX_COMMANDS = 100
# A reply keyboard keeps at most this many buttons per row and in all; Telegram drops the rest silently.
MAX_ROW_BUTTONS = 12
MAX_KEYBOARD_BUTTONS = 300
MAX_HORIZONTAL_ACCURACY = 1500.0
# KeyboardButton fields that make a button send something other than its text, and the name we record.
_BUTTON_REQUESTS = {
    "request_location": "location",
    "request_contact": "contact",
    "request_poll": "poll",
    "request_users": "users",
    "request_chat": "chat",
    "web_app": "web_app",
}
# TDLib refuses the whole message when a group gets a keyboard with such a button.
_PRIVATE_ONLY_REQUESTS = {
    "location": "location can be requested in private chats only",
    "contact": "phone number can be requested in private chats only",
    "poll": "poll can be requested in private chats only",
    "users": "users can be requested in private chats only",
    "chat": "chats can be requested in private chats only",
    "web_app": "web App buttons can be used in private chats only",
}
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
_WRONG_FILE = "wrong file identifier/HTTP URL specified"
_MEDIA_GROUP_BASE = 13_600_000_000_000_000


@dataclass(frozen=True)
class MethodContext:
    """What a method may use: the world, and a way to fetch photos the bot sends by URL."""

    world: SimWorld
    fetch_url: Callable[[str, int], Awaitable[bytes]]


Method = Callable[[MethodContext, ApiParams], Awaitable[Any]]


# --- shared parameter handling ----------------------------------------------------------------------------


def _chat(ctx: MethodContext, params: ApiParams) -> SimChat:
    raw = params.get_str("chat_id", required=True) or ""
    try:
        chat_id = int(raw)
    except ValueError:
        raise bad_request("chat not found") from None
    try:
        chat = ctx.world.require_chat(chat_id)
    except KeyError:
        raise bad_request("chat not found") from None
    if chat.is_private and ctx.world.is_blocked(chat.id):
        raise ApiError(403, "Forbidden: bot was blocked by the user")
    return chat


def _formatted(params: ApiParams, name: str, *, limit: int, required: bool) -> tuple[str | None, tuple[Entity, ...]]:
    text = params.get_str(name, required=required)
    if not text:
        return None, ()
    entities_name = "entities" if name == "text" else f"{name}_entities"
    try:
        text, entities = format_text(text, params.get_str("parse_mode"), params.get_json(entities_name))
    except FormattingError as exc:
        raise bad_request(str(exc)) from None
    if not text.strip() and required:
        raise bad_request("message text is empty")
    if utf16_len(text) > limit:
        raise bad_request("message is too long" if name == "text" else "message caption is too long")
    return text, entities


def _reply_to(ctx: MethodContext, params: ApiParams, chat: SimChat) -> int | None:
    reply = params.get_json("reply_parameters")
    if isinstance(reply, dict):
        message_id, allow_missing = reply.get("message_id"), bool(reply.get("allow_sending_without_reply"))
    else:
        message_id = params.get_int("reply_to_message_id")
        allow_missing = params.get_bool("allow_sending_without_reply")
    if message_id is None:
        return None
    entry = ctx.world.entry(chat.id, int(message_id))
    if entry is None or entry.deleted:
        if allow_missing:
            return None
        raise bad_request("message to be replied not found")
    return int(message_id)


def _keyboard(params: ApiParams) -> Keyboard:
    """The inline keyboard of an edit: edits take no other markup, as on Telegram."""
    markup = params.get_json("reply_markup")
    if not markup:
        return ()
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        raise bad_request("inline keyboard expected")
    return _inline_keyboard(markup)


def _send_markup(params: ApiParams, chat: SimChat) -> dict[str, Any]:
    """``reply_markup`` of a send, as BotMessage fields: an inline keyboard, a reply keyboard or its removal.

    ForceReply is accepted and not simulated.
    """
    markup = params.get_json("reply_markup")
    if not isinstance(markup, dict):
        return {}
    if "inline_keyboard" in markup:
        return {"keyboard": _inline_keyboard(markup)}
    if "keyboard" in markup:
        return {"reply_keyboard": _reply_keyboard(markup, chat)}
    if markup.get("remove_keyboard"):
        return {"remove_keyboard": True}
    return {}


def _inline_keyboard(markup: dict[str, Any]) -> Keyboard:
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse inline keyboard: rows must be arrays of buttons")
    keyboard = []
    for row in rows:
        buttons = []
        for raw in row:
            if not isinstance(raw, dict) or not raw.get("text"):
                raise bad_request("can't parse inline keyboard button: text must be non-empty")
            data, url = raw.get("callback_data"), raw.get("url")
            if data is None and url is None:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
                raise bad_request("BUTTON_DATA_INVALID")
            buttons.append(Button(str(raw["text"]), None if data is None else str(data), url))
        keyboard.append(tuple(buttons))
    return tuple(keyboard)


def _reply_keyboard(markup: dict[str, Any], chat: SimChat) -> ReplyKeyboard | None:
    """A ReplyKeyboardMarkup; None when no button has text (Telegram then sends the message without one)."""
    rows = markup["keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse reply keyboard markup JSON object")
    keyboard: list[tuple[ReplyButton, ...]] = []
    total = 0
    for row in rows:
        buttons = []
        for raw in row:
            button = _reply_button(raw, chat)
            if button is None or len(buttons) >= MAX_ROW_BUTTONS or total >= MAX_KEYBOARD_BUTTONS:
                continue
            buttons.append(button)
            total += 1
        if buttons:
            keyboard.append(tuple(buttons))
    if not keyboard:
        return None
    placeholder = markup.get("input_field_placeholder")
    return ReplyKeyboard(
        rows=tuple(keyboard),
        resize=bool(markup.get("resize_keyboard")),
        one_time=bool(markup.get("one_time_keyboard")),
        persistent=bool(markup.get("is_persistent")),
        selective=bool(markup.get("selective")),
        placeholder=str(placeholder) if placeholder else None,
    )


def _reply_button(raw: Any, chat: SimChat) -> ReplyButton | None:
    # A bare string is a text button, as the Bot API still allows.
    if isinstance(raw, str):
        return ReplyButton(raw) if raw else None
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
        raise bad_request('can\'t parse keyboard button: Field "text" must be of type String')
    if not raw["text"]:
        return None  # TDLib skips buttons without text
    request = next((name for field, name in _BUTTON_REQUESTS.items() if raw.get(field)), None)
    if request is not None and not chat.is_private:
        raise bad_request(_PRIVATE_ONLY_REQUESTS[request])
    return ReplyButton(raw["text"], request)


def _location(params: ApiParams, *, wrong: str, with_accuracy: bool) -> Location:
    """latitude/longitude (and horizontal_accuracy, clamped to 0-1500 as TDLib does)."""
    coordinates = []
    for name in ("latitude", "longitude"):
        if not (params.get_str(name) or "").strip():
            raise bad_request(f"{name} is empty")
        coordinates.append(params.get_float(name, default=0.0))
    accuracy = params.get_float("horizontal_accuracy", default=0.0) if with_accuracy else 0.0
    accuracy = min(max(accuracy, 0.0), MAX_HORIZONTAL_ACCURACY)
    location = Location(coordinates[0], coordinates[1], accuracy or None)
    if not location.is_valid:
        raise bad_request(wrong)
    return location


async def _photo(ctx: MethodContext, value: UploadedFile | str | None) -> SentPhoto:
    """An InputFile for a photo: uploaded bytes, a URL to fetch, or a file_id to reuse."""
    if value is None or value == "":
        raise bad_request("there is no photo in the request")
    if isinstance(value, str) and not value.startswith(("http://", "https://")):
        sizes = ctx.world.files.photo_sizes(value)
        if sizes is None:
            raise bad_request(_WRONG_FILE)
        stored = ctx.world.files.get(sizes[-1].file_id)
        return SentPhoto(sizes, "file_id", stored.data if stored else b"")
    if isinstance(value, str):
        data, source = await ctx.fetch_url(value, MAX_PHOTO_UPLOAD_BYTES), "url"
    else:
        data, source = value.data, "upload"
    if len(data) > MAX_PHOTO_UPLOAD_BYTES:
        raise ApiError(413, "Request Entity Too Large")
    try:
        # Decoding a big photo takes a while; keep the server answering other requests meanwhile.
        variants = await asyncio.to_thread(prepare_photo, data)
    except ImageDecodeError:
        raise bad_request("IMAGE_PROCESS_FAILED") from None
    full = variants[-1]
    ratio = max(full.width, full.height) / max(1, min(full.width, full.height))
    if full.width + full.height > MAX_PHOTO_DIMENSIONS_SUM or ratio > MAX_PHOTO_ASPECT_RATIO:
        raise bad_request("PHOTO_INVALID_DIMENSIONS")
    return SentPhoto(ctx.world.files.add_photo(variants), source, data)


def _count_photo(ctx: MethodContext, photo: SentPhoto) -> None:
    # Counted once the request succeeds, so a rejected album does not count its uploads.
    if photo.source == "upload":
        ctx.world.uploads += 1
    elif photo.source == "file_id":
        ctx.world.file_id_reuses += 1
    else:
        ctx.world.url_sends += 1


async def _document(ctx: MethodContext, value: UploadedFile | str | None) -> FileRef:
    if value is None or value == "":
        raise bad_request("there is no document in the request")
    if isinstance(value, str) and not value.startswith(("http://", "https://")):
        stored = ctx.world.files.get(value)
        if stored is None:
            raise bad_request(_WRONG_FILE)
        ctx.world.file_id_reuses += 1
        return stored.as_file_ref()
    if isinstance(value, str):
        data = await ctx.fetch_url(value, MAX_DOCUMENT_UPLOAD_BYTES)
        name, mime_type = value.rsplit("/", 1)[-1] or "file", None
        ctx.world.url_sends += 1
    else:
        data, name, mime_type = value.data, value.filename or "file", value.content_type
        ctx.world.uploads += 1
    if len(data) > MAX_DOCUMENT_UPLOAD_BYTES:
        raise ApiError(413, "Request Entity Too Large")
    mime_type = mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return ctx.world.files.add_document(data, file_name=name, mime_type=mime_type)


def _bot_message(ctx: MethodContext, chat_id: int, message_id: int) -> BotMessage:
    entry = ctx.world.entry(chat_id, message_id)
    if entry is None or entry.deleted:
        raise bad_request("message to edit not found")
    if not isinstance(entry, BotMessage):
        raise bad_request("message can't be edited")
    return entry


def _edit_target(ctx: MethodContext, params: ApiParams) -> BotMessage:
    if params.has("inline_message_id"):
        raise bad_request("the playground has no inline messages; pass chat_id and message_id")
    chat = _chat(ctx, params)
    message_id = params.get_int("message_id", required=True)
    assert message_id is not None
    return _bot_message(ctx, chat.id, message_id)


def _store_edit(ctx: MethodContext, message: BotMessage, **changes: Any) -> JSON:
    if all(getattr(message, key) == value for key, value in changes.items()):
        raise bad_request(_NOT_MODIFIED)
    edited = ctx.world.replace_message(message, edit_date=int(time.time()), **changes)
    return message_json(ctx.world, edited)


# --- getting updates and files ----------------------------------------------------------------------------


async def get_me(ctx: MethodContext, params: ApiParams) -> JSON:
    return bot_json(ctx.world.bot, get_me=True)


async def get_updates(ctx: MethodContext, params: ApiParams) -> list[JSON]:
    limit = params.get_int("limit", default=100) or 100
    allowed = params.get_json("allowed_updates")
    if allowed is not None and not isinstance(allowed, list):
        raise bad_request("allowed_updates must be an array")
    try:
        return await ctx.world.updates.get(
            offset=params.get_int("offset"),
            limit=max(1, min(100, limit)),
            poll_seconds=params.get_float("timeout", default=0.0),
            allowed_updates=allowed,
        )
    except UpdatesConflict:
        raise ApiError(
            409,
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        ) from None


async def delete_webhook(ctx: MethodContext, params: ApiParams) -> bool:
    if params.get_bool("drop_pending_updates"):
        ctx.world.updates.drop_pending()
    return True


async def set_webhook(ctx: MethodContext, params: ApiParams) -> bool:
    raise bad_request("the playground delivers updates through getUpdates only; use polling")


async def get_webhook_info(ctx: MethodContext, params: ApiParams) -> JSON:
    return {"url": "", "has_custom_certificate": False, "pending_update_count": ctx.world.updates.pending_count}


async def get_file(ctx: MethodContext, params: ApiParams) -> JSON:
    file_id = params.get_str("file_id", required=True) or ""
    stored = ctx.world.files.get(file_id)
    if stored is None:
        raise bad_request("invalid file_id")
    if stored.size > MAX_DOWNLOAD_BYTES:
        raise bad_request("file is too big")
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.size,
        "file_path": stored.file_path,
    }


# --- sending ----------------------------------------------------------------------------------------------


async def send_message(ctx: MethodContext, params: ApiParams) -> JSON:
    chat = _chat(ctx, params)
    text, entities = _formatted(params, "text", limit=MAX_TEXT, required=True)
    markup, reply_to = _send_markup(params, chat), _reply_to(ctx, params, chat)
    ids = ctx.world.reserve_message_ids(chat.id)
    message = ctx.world.add_bot_message(
        chat.id, ids, kind="text", text=text, entities=entities, reply_to=reply_to, **markup
    )
    return message_json(ctx.world, message)


async def send_photo(ctx: MethodContext, params: ApiParams) -> JSON:
    chat = _chat(ctx, params)
    caption, caption_entities = _formatted(params, "caption", limit=MAX_CAPTION, required=False)
    markup, reply_to = _send_markup(params, chat), _reply_to(ctx, params, chat)
    photo = await _photo(ctx, params.file_or_str("photo"))
    _count_photo(ctx, photo)
    message = ctx.world.add_bot_message(
        chat.id,
        ctx.world.reserve_message_ids(chat.id),
        kind="photo",
        photo=photo,
        caption=caption,
        caption_entities=caption_entities,
        reply_to=reply_to,
        **markup,
    )
    return message_json(ctx.world, message)


async def send_document(ctx: MethodContext, params: ApiParams) -> JSON:
    chat = _chat(ctx, params)
    caption, caption_entities = _formatted(params, "caption", limit=MAX_CAPTION, required=False)
    markup, reply_to = _send_markup(params, chat), _reply_to(ctx, params, chat)
    document = await _document(ctx, params.file_or_str("document"))
    message = ctx.world.add_bot_message(
        chat.id,
        ctx.world.reserve_message_ids(chat.id),
        kind="document",
        document=document,
        caption=caption,
        caption_entities=caption_entities,
        reply_to=reply_to,
        **markup,
    )
    return message_json(ctx.world, message)


async def send_media_group(ctx: MethodContext, params: ApiParams) -> list[JSON]:
    chat = _chat(ctx, params)
    media = params.get_json("media")
    if not isinstance(media, list):
        raise bad_request("media is empty" if media is None else "can't parse media JSON object")
    low, high = ALBUM_SIZE
    if not low <= len(media) <= high:
        raise bad_request(f"wrong number of media in the album: {len(media)}; send {low}-{high} items")
    reply_to = _reply_to(ctx, params, chat)
    prepared: list[tuple[SentPhoto, str | None, tuple[Entity, ...]]] = []
    for index, item in enumerate(media):
        if not isinstance(item, dict) or item.get("type") != "photo":
            kind = item.get("type") if isinstance(item, dict) else item
            raise bad_request(f"media #{index + 1}: the playground supports photo albums only, got {kind!r}")
        item_params = ApiParams({k: v for k, v in item.items() if k in ("caption", "parse_mode", "caption_entities")})
        caption, entities = _formatted(item_params, "caption", limit=MAX_CAPTION, required=False)
        reference = item.get("media")
        if not isinstance(reference, str):
            raise bad_request(f"media #{index + 1}: {_WRONG_FILE}")
        prepared.append((await _photo(ctx, params.attachment(reference)), caption, entities))
    # Telegram sends an album all-or-nothing, so nothing is counted or stored until every item is valid.
    for photo, _, _ in prepared:
        _count_photo(ctx, photo)
    ids = ctx.world.reserve_message_ids(chat.id, len(prepared))
    items = tuple(
        AlbumItem(message_id, photo, caption, entities)
        for message_id, (photo, caption, entities) in zip(ids, prepared, strict=True)
    )
    message = ctx.world.add_bot_message(
        chat.id,
        ids,
        kind="media_group",
        items=items,
        media_group_id=str(_MEDIA_GROUP_BASE + ids[0] * 1000 + abs(chat.id) % 1000),
        reply_to=reply_to,
    )
    return messages_json(ctx.world, message)


async def send_venue(ctx: MethodContext, params: ApiParams) -> JSON:
    chat = _chat(ctx, params)
    location = _location(params, wrong="wrong venue location specified", with_accuracy=False)
    venue = Venue(
        location,
        title=params.get_str("title", required=True) or "",
        address=params.get_str("address", required=True) or "",
        foursquare_id=params.get_str("foursquare_id") or None,
        foursquare_type=params.get_str("foursquare_type") or None,
        google_place_id=params.get_str("google_place_id") or None,
        google_place_type=params.get_str("google_place_type") or None,
    )
    markup, reply_to = _send_markup(params, chat), _reply_to(ctx, params, chat)
    message = ctx.world.add_bot_message(
        chat.id,
        ctx.world.reserve_message_ids(chat.id),
        kind="venue",
        venue=venue,
        location=location,
        reply_to=reply_to,
        **markup,
    )
    return message_json(ctx.world, message)


async def send_location(ctx: MethodContext, params: ApiParams) -> JSON:
    """A static location; live_period, heading and proximity alerts are accepted and not simulated."""
    chat = _chat(ctx, params)
    location = _location(params, wrong="wrong location specified", with_accuracy=True)
    markup, reply_to = _send_markup(params, chat), _reply_to(ctx, params, chat)
    message = ctx.world.add_bot_message(
        chat.id,
        ctx.world.reserve_message_ids(chat.id),
        kind="location",
        location=location,
        reply_to=reply_to,
        **markup,
    )
    return message_json(ctx.world, message)


async def send_chat_action(ctx: MethodContext, params: ApiParams) -> bool:
    chat = _chat(ctx, params)
    action = params.get_str("action", required=True)
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    ctx.world.record_action(chat.id, action)
    return True


async def answer_callback_query(ctx: MethodContext, params: ApiParams) -> bool:
    query_id = params.get_str("callback_query_id", required=True) or ""
    text = params.get_str("text")
    if text and len(text) > MAX_CALLBACK_ANSWER:
        raise bad_request("MESSAGE_TOO_LONG")
    answered = ctx.world.answer_callback(
        query_id, text=text or None, show_alert=params.get_bool("show_alert"), url=params.get_str("url")
    )
    if answered is None:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    return True


# --- editing and deleting ---------------------------------------------------------------------------------


async def edit_message_text(ctx: MethodContext, params: ApiParams) -> JSON:
    message = _edit_target(ctx, params)
    if message.kind != "text":
        raise bad_request("there is no text in the message to edit")
    text, entities = _formatted(params, "text", limit=MAX_TEXT, required=True)
    # Like Telegram, an edit without reply_markup drops the inline keyboard.
    return _store_edit(ctx, message, text=text, entities=entities, keyboard=_keyboard(params))


async def edit_message_caption(ctx: MethodContext, params: ApiParams) -> JSON:
    message = _edit_target(ctx, params)
    caption, entities = _formatted(params, "caption", limit=MAX_CAPTION, required=False)
    message_id = params.get_int("message_id")
    if message.items:
        items = tuple(
            dataclasses.replace(item, caption=caption, caption_entities=entities)
            if item.message_id == message_id
            else item
            for item in message.items
        )
        if items == message.items:
            raise bad_request(_NOT_MODIFIED)
        edited = ctx.world.replace_message(message, items=items, edit_date=int(time.time()))
        return message_json(ctx.world, edited, message_id)
    if message.kind not in ("photo", "document"):
        raise bad_request("there is no caption in the message to edit")
    return _store_edit(ctx, message, caption=caption, caption_entities=entities, keyboard=_keyboard(params))


async def edit_message_reply_markup(ctx: MethodContext, params: ApiParams) -> JSON:
    message = _edit_target(ctx, params)
    if message.items:
        raise bad_request("album messages can't have an inline keyboard")
    return _store_edit(ctx, message, keyboard=_keyboard(params))


async def delete_message(ctx: MethodContext, params: ApiParams) -> bool:
    chat = _chat(ctx, params)
    message_id = params.get_int("message_id", required=True)
    assert message_id is not None
    entry = ctx.world.entry(chat.id, message_id)
    if entry is None or entry.deleted:
        raise bad_request("message to delete not found")
    if not isinstance(entry, BotMessage):
        if not chat.is_private:
            # The bot is no group admin, so it may only delete its own messages there.
            raise bad_request("message can't be deleted")
        ctx.world.replace_message(entry, deleted=True)
        return True
    remaining = tuple(item for item in entry.items if item.message_id != message_id)
    if remaining:
        ctx.world.replace_message(entry, items=remaining)
    else:
        ctx.world.replace_message(entry, deleted=True)
    return True


# --- commands and profile ---------------------------------------------------------------------------------


def _commands_key(params: ApiParams) -> tuple[str, str]:
    scope = params.get_json("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), params.get_str("language_code") or ""


async def set_my_commands(ctx: MethodContext, params: ApiParams) -> bool:
    commands = params.get_json("commands")
    if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
        raise bad_request("commands must be an array of at most 100 BotCommand")
    for command in commands:
        if not isinstance(command, dict) or not _COMMAND_NAME.fullmatch(str(command.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    ctx.world.commands[_commands_key(params)] = [
        {"command": c["command"], "description": c["description"]} for c in commands
    ]
    return True


async def get_my_commands(ctx: MethodContext, params: ApiParams) -> list[JSON]:
    return ctx.world.commands.get(_commands_key(params), [])


async def delete_my_commands(ctx: MethodContext, params: ApiParams) -> bool:
    ctx.world.commands.pop(_commands_key(params), None)
    return True


async def accept(ctx: MethodContext, params: ApiParams) -> bool:
    """For calls the playground has nothing to simulate (logOut, close, profile texts): Telegram says ok."""
    return True


METHODS: dict[str, Method] = {
    "getMe": get_me,
    "getUpdates": get_updates,
    "deleteWebhook": delete_webhook,
    "setWebhook": set_webhook,
    "getWebhookInfo": get_webhook_info,
    "getFile": get_file,
    "sendMessage": send_message,
    "sendPhoto": send_photo,
    "sendDocument": send_document,
    "sendMediaGroup": send_media_group,
    "sendVenue": send_venue,
    "sendLocation": send_location,
    "sendChatAction": send_chat_action,
    "answerCallbackQuery": answer_callback_query,
    "editMessageText": edit_message_text,
    "editMessageCaption": edit_message_caption,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
    "logOut": accept,
    "close": accept,
    "setMyDescription": accept,
    "setMyShortDescription": accept,
    "setMyName": accept,
    "setChatMenuButton": accept,
}
# Telegram matches method names case-insensitively.
METHODS_BY_LOWER_NAME: dict[str, tuple[str, Method]] = {name.lower(): (name, fn) for name, fn in METHODS.items()}
