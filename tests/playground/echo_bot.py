"""A small echo bot for the playground tests, built on an unmodified python-telegram-bot Application.

It walks the paths the real bot takes: it downloads the user's photo, answers with a three-photo album
(uploaded the first time, re-sent by cached file_id after that) and an inline keyboard, answers button
presses and edits the keyboard, handles commands in groups, and reports files it cannot download. /locate asks
for the user's location with a reply keyboard; a shared location comes back as a venue, keyboard removed.
"""

from __future__ import annotations

import io
import logging

from PIL import Image
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from playground.botapi import BotApiStandIn

logger = logging.getLogger(__name__)

TOKEN = "5000000001:TEST-echo-bot-token"
ALBUM = (
    ("Kyoto, Japan", (200, 80, 60), (640, 480)),
    ("Lisbon, Portugal", (60, 140, 200), (800, 600)),
    ("Banff, Canada", (40, 160, 90), (480, 640)),
)
KEYBOARD = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("👍 Kyoto", callback_data="like:1"),
            InlineKeyboardButton("👍 Lisbon", callback_data="like:2"),
        ],
        [InlineKeyboardButton("More like this", callback_data="more")],
    ]
)
SAVED_KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("✅ Saved", callback_data="saved")]])
LOCATION_KEYBOARD = ReplyKeyboardMarkup(
    [[KeyboardButton("📍 Send my location", request_location=True)], [KeyboardButton("Not now")]],
    resize_keyboard=True,
    one_time_keyboard=True,
)
VENUE_TITLE = "You are here"


def jpeg(color: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


async def record_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Remembers every update id the bot processed, to catch double deliveries."""
    context.bot_data.setdefault("update_ids", []).append(update.update_id)


async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Downloads the photo, then answers with an album of three destinations and a keyboard."""
    assert update.message is not None
    photo_file = await update.message.photo[-1].get_file()
    context.bot_data.setdefault("downloads", []).append(bytes(await photo_file.download_as_bytearray()))
    await context.bot.send_chat_action(update.message.chat_id, ChatAction.UPLOAD_PHOTO)
    cached: list[str] | None = context.bot_data.get("album_file_ids")
    media = [
        InputMediaPhoto(cached[i] if cached else jpeg(color, size), caption=f"{i + 1}/3 · {name}")
        for i, (name, color, size) in enumerate(ALBUM)
    ]
    sent = await update.message.reply_media_group(media)
    if cached is None:
        context.bot_data["album_file_ids"] = [message.photo[-1].file_id for message in sent]
    await update.message.reply_text("Which one do you like?", reply_markup=KEYBOARD)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answers the button and swaps the keyboard for a confirmation."""
    query = update.callback_query
    assert query is not None
    await query.answer(f"Saved {query.data}")
    if query.data != "saved":
        await query.edit_message_reply_markup(SAVED_KEYBOARD)


async def on_suggest(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Replies to /suggest with the sender's name."""
    assert update.message is not None and update.effective_user is not None
    context.bot_data.setdefault("command_entities", []).append(update.message.entities)
    await update.message.reply_text(f"Suggestion for {update.effective_user.first_name}: try Kyoto")


async def on_locate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Asks for the user's location with a reply keyboard button."""
    assert update.message is not None
    await update.message.reply_text("Where are you?", reply_markup=LOCATION_KEYBOARD)


async def on_location(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Keeps the location and answers with a venue at the same place, removing the keyboard."""
    assert update.message is not None and update.message.location is not None
    location = update.message.location
    context.bot_data.setdefault("locations", []).append(location)
    await update.message.reply_venue(
        latitude=location.latitude,
        longitude=location.longitude,
        title=VENUE_TITLE,
        address=f"{location.latitude:.4f}, {location.longitude:.4f}",
        reply_markup=ReplyKeyboardRemove(),
    )


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Echoes plain text."""
    assert update.message is not None and update.message.text is not None
    await update.message.reply_text(f"You said: {update.message.text}")


async def on_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Tries to download a document and says whether Telegram let it."""
    assert update.message is not None and update.message.document is not None
    try:
        await update.message.document.get_file()
    except BadRequest as exc:
        await update.message.reply_text(f"Could not download: {exc.message}")
        return
    await update.message.reply_text("Downloaded")


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Logs the error and keeps it for the test to assert on."""
    logger.error("Echo bot error", exc_info=context.error)
    context.bot_data.setdefault("errors", []).append(context.error)


def build_echo_app(stand_in: BotApiStandIn, *, token: str = TOKEN) -> Application:
    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(stand_in.base_url)
        .base_file_url(stand_in.base_file_url)
        .rate_limiter(AIORateLimiter(max_retries=2))
        .build()
    )
    app.add_handler(TypeHandler(Update, record_update), group=-1)
    app.add_handler(CommandHandler("suggest", on_suggest))
    app.add_handler(CommandHandler("locate", on_locate))
    app.add_handler(MessageHandler(filters.LOCATION, on_location))
    app.add_handler(MessageHandler(filters.PHOTO, on_photo))
    app.add_handler(MessageHandler(filters.Document.ALL, on_document))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_error_handler(on_error)
    return app
