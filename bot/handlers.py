"""The bot's handlers: each one turns an update into a job for the worker and the worker's reply into messages.

They reach the worker only through Redis (``worker.client.JobClient``, kept in ``bot_data`` by ``bot.main``),
and never import TensorFlow.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from telegram import Message, PhotoSize, Update, User
from telegram.constants import ChatAction, ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import messages as text
from bot.album import CatalogPhotos, send_album
from bot.ratelimit import PhotoRateLimit
from wanderlens.settings import BotSettings
from worker import protocol as p
from worker.client import ChatBusy, JobClient, QueueFull

logger = logging.getLogger(__name__)

BOT_API_DOWNLOAD_LIMIT = 20 * 1024 * 1024
SUGGEST = re.compile(r"^/suggest(@\w+)?(\s|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Services:
    """What the handlers share, created in ``post_init`` and kept in ``application.bot_data``."""

    settings: BotSettings
    redis: Redis
    jobs: JobClient
    photos: CatalogPhotos
    rate_limit: PhotoRateLimit


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.bot_data["services"]  # type: ignore[no-any-return]


def display_name(user: User | None) -> str:
    if user is None:
        return "someone"
    return user.first_name or (f"@{user.username}" if user.username else f"user {user.id}")


def is_group(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


# --------------------------------------------------------------------------------------------- commands


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Says what the bot does, how to use it, and what it stores."""
    await update.effective_message.reply_text(text.START)  # type: ignore[union-attr]


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Lists the commands."""
    await update.effective_message.reply_text(text.HELP)  # type: ignore[union-attr]


async def like_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/like [n]: likes result n of the chat's last album (the first when no number is given)."""
    rank = 1
    if context.args:
        try:
            rank = int(context.args[0])
        except ValueError:
            await update.effective_message.reply_text("Usage: /like 2 — likes the 2nd place of the last album.")  # type: ignore[union-attr]
            return
    await _like(update, context, {"number": rank})


async def more_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/more: the next page of the chat's latest results."""
    await _more(update, context)


async def likes_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/likes: lists what this user liked in this chat."""
    reply = await _ask(update, context, p.LIKES)
    if reply is not None and reply.ok:
        await update.effective_message.reply_text(text.likes_list(reply.items, int(reply.extra.get("total", 0))))  # type: ignore[union-attr]


async def forget_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: asks for confirmation before deleting the user's data."""
    await update.effective_message.reply_text(text.FORGET_CONFIRM, reply_markup=text.forget_keyboard())  # type: ignore[union-attr]


async def suggest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/suggest: as a reply to a photo, recommendations for that photo; alone, places for the whole group."""
    message = update.effective_message
    replied = message.reply_to_message if message else None
    if replied is not None and (replied.photo or _image_document(replied)):
        await _recommend(update, context, replied)
        return
    if not is_group(update):
        await message.reply_text(text.ASK_FOR_PHOTO)  # type: ignore[union-attr]
        return
    reply = await _ask(update, context, p.GROUP_SUGGEST, {"k": services(context).settings.album_size})
    if reply is not None:
        await _show(update, context, reply, group=True)


# --------------------------------------------------------------------------------------------- photos


async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo or an image file: destinations that look like it."""
    await _recommend(update, context, update.effective_message)  # type: ignore[arg-type]


async def group_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In a group, only photos captioned /suggest or mentioning the bot are for us."""
    message = update.effective_message
    if message is None:
        return
    caption = message.caption or ""
    mentioned = f"@{context.bot.username}".lower() in caption.lower()
    if SUGGEST.match(caption) or mentioned:
        await _recommend(update, context, message)


async def not_an_image(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A document that is not an image."""
    await update.effective_message.reply_text(text.NOT_AN_IMAGE)  # type: ignore[union-attr]


async def sticker(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers are pictures, but not photos of places."""
    await update.effective_message.reply_text(text.STICKER)  # type: ignore[union-attr]


async def plain_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything else in a private chat: remind what the bot needs."""
    await update.effective_message.reply_text(text.ASK_FOR_PHOTO)  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------- buttons


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """👍n, More ▶ and the /forget confirmation."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    data = query.data
    if data.startswith("like:"):
        _, page_id, rank = data.split(":", 2)
        reply = await _ask(update, context, p.LIKE, _like_body(update, {"page_id": page_id, "rank": int(rank)}))
        if reply is not None and reply.ok and reply.items:
            await query.answer(f"❤️ {reply.items[0].name}")
            who = display_name(update.effective_user) if is_group(update) else None
            await update.effective_message.reply_text(  # type: ignore[union-attr]
                text.liked(reply.items[0], int(reply.extra["likes"]), who=who)
            )
        elif reply is not None:
            await query.answer(text.error_text(reply))
    elif data == "more":
        await query.answer()
        await _more(update, context)
    elif data == "forget:yes":
        reply = await _ask(update, context, p.FORGET)
        await query.answer()
        if reply is not None and reply.ok:
            await query.edit_message_text(text.forgotten(int(reply.extra.get("likes_deleted", 0))))
    elif data == "forget:no":
        await query.answer()
        await query.edit_message_text(text.FORGET_CANCELLED)
    else:
        await query.answer()


# --------------------------------------------------------------------------------------------- the work


def _image_document(message: Message) -> bool:
    document = message.document
    return bool(document and (document.mime_type or "").startswith("image/"))


def _like_body(update: Update, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "user_name": display_name(update.effective_user)}


async def _like(update: Update, context: ContextTypes.DEFAULT_TYPE, body: dict[str, Any]) -> None:
    reply = await _ask(update, context, p.LIKE, _like_body(update, body))
    if reply is None:
        return
    message = update.effective_message
    if reply.ok and reply.items:
        who = display_name(update.effective_user) if is_group(update) else None
        await message.reply_text(text.liked(reply.items[0], int(reply.extra["likes"]), who=who))  # type: ignore[union-attr]
    else:
        await message.reply_text(text.error_text(reply))  # type: ignore[union-attr]


async def _more(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    reply = await _ask(update, context, p.MORE, {"k": services(context).settings.album_size})
    if reply is not None:
        await _show(update, context, reply, group=bool(reply.extra.get("group")))


async def _recommend(update: Update, context: ContextTypes.DEFAULT_TYPE, source: Message) -> None:
    svc = services(context)
    chat, user = update.effective_chat, update.effective_user
    message = update.effective_message
    if chat is None or user is None or message is None:
        return
    if not await svc.rate_limit.allow(user.id):
        await message.reply_text(text.RATE_LIMITED)
        return
    media: PhotoSize | Any = source.photo[-1] if source.photo else source.document
    if media is None:
        await message.reply_text(text.ASK_FOR_PHOTO)
        return
    if (media.file_size or 0) > BOT_API_DOWNLOAD_LIMIT:
        await message.reply_text(text.TOO_BIG)
        return
    await context.bot.send_chat_action(chat.id, ChatAction.UPLOAD_PHOTO)
    body = {"k": svc.settings.album_size, "file_unique_id": media.file_unique_id}
    photo_bytes: bytes | None = None
    if not await svc.jobs.has_cached_photo(media.file_unique_id):
        photo_bytes = bytes(await (await media.get_file()).download_as_bytearray())
    reply = await _ask(update, context, p.RECOMMEND, body, photo_bytes)
    if reply is not None and reply.error == p.PHOTO_GONE:
        # The cached fingerprint expired between our check and the worker: send the photo after all.
        photo_bytes = bytes(await (await media.get_file()).download_as_bytearray())
        reply = await _ask(update, context, p.RECOMMEND, body, photo_bytes)
    if reply is not None:
        await _show(update, context, reply, group=False)


async def _ask(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    kind: str,
    body: dict[str, Any] | None = None,
    photo_bytes: bytes | None = None,
) -> p.Reply | None:
    """Send one job and wait for its reply; tells the user when the queue is full or the worker is slow."""
    svc = services(context)
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    if chat is None or user is None:
        return None
    job = p.Job.new(
        kind,
        chat_id=chat.id,
        user_id=user.id,
        reply_to=svc.jobs.instance,
        timeout=svc.settings.reply_timeout_s,
        body=body,
    )
    problem: str | None = None
    reply: p.Reply | None = None
    try:
        # A little longer than the job's deadline, so that the worker's own "too late" reply can arrive.
        reply = await svc.jobs.request(job, photo_bytes, timeout=svc.settings.reply_timeout_s + 2)
    except QueueFull:
        problem = text.BUSY
    except ChatBusy:
        problem = text.STILL_WORKING
    except TimeoutError:
        logger.warning("job %s (%s) for chat %s: no reply in time", job.id, kind, chat.id)
        problem = text.TIMED_OUT
    if problem is not None:
        if update.callback_query is not None:
            await update.callback_query.answer(problem, show_alert=True)
        elif message is not None:
            await message.reply_text(problem)
        return None
    assert reply is not None
    if reply.error == p.PHOTO_GONE:
        return reply
    if not reply.ok and kind not in (p.LIKE, p.UNLIKE):
        if update.callback_query is not None:
            await update.callback_query.answer()
        if message is not None:
            await message.reply_text(text.error_text(reply))
        return None
    return reply


async def _show(update: Update, context: ContextTypes.DEFAULT_TYPE, reply: p.Reply, *, group: bool) -> None:
    """The album of destinations, then one message with the 👍 and More ▶ buttons (albums cannot carry buttons)."""
    svc = services(context)
    chat, message = update.effective_chat, update.effective_message
    if chat is None or not reply.items:
        return
    first_rank = int(reply.extra.get("first_rank", 1))
    captions = text.group_caption if group else text.caption
    reply_to = message.message_id if message is not None and update.callback_query is None else None
    try:
        shown = await send_album(
            context.bot, chat.id, reply.items, svc.photos, captions, first_rank=first_rank, reply_to=reply_to
        )
    except TelegramError:
        logger.exception("sending the album to chat %s failed", chat.id)
        raise
    if not shown:
        await context.bot.send_message(chat.id, text.FAILED)
        return
    await context.bot.send_message(
        chat.id,
        text.after_album(reply, group=group),
        reply_markup=text.album_keyboard(
            str(reply.extra.get("page_id", "")), len(shown), first_rank=first_rank, more=reply.remaining > 0
        ),
    )


async def error_handler(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Logs the error first, then tells the user something useful if there is a user to tell."""
    logger.error("exception while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(
                update.effective_chat.id, "Sorry, something went wrong on my side. Please try again."
            )
        except TelegramError:
            logger.warning("could not tell chat %s about the error", update.effective_chat.id)
