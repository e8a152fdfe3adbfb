"""The bot's handlers: each one turns an update into a job for the worker and the worker's reply into messages.

They reach the worker only through Redis (``contract.client.JobClient``, kept in ``bot_data`` by ``bot.main``),
and never import TensorFlow.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from redis.asyncio import Redis
from telegram import Document, Message, PhotoSize, Update, User
from telegram.constants import ChatAction, ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import messages as text
from bot.album import CatalogPhotos, send_album
from bot.ratelimit import PhotoRateLimit
from bot.settings import BotSettings
from contract import messages as m
from contract.client import ChatBusy, JobClient, QueueFull

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
    number = 1
    if context.args:
        try:
            number = int(context.args[0])
        except ValueError:
            await update.effective_message.reply_text(text.LIKE_USAGE)  # type: ignore[union-attr]
            return
    await _like(update, context, m.LikeNumber(number, user_name=display_name(update.effective_user)))


async def more_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/more: the next page of the chat's latest results."""
    await _more(update, context)


async def likes_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/likes: lists what this user liked in this chat."""
    outcome = await _ask(update, context, m.Likes())
    if isinstance(outcome, m.LikedPlaces):
        await update.effective_message.reply_text(text.likes_list(outcome.items, outcome.total))  # type: ignore[union-attr]
    elif isinstance(outcome, m.Failure):
        await _fail(update, outcome)


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
    await _show(update, context, await _ask(update, context, m.GroupSuggest(services(context).settings.album_size)))


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
        _, page_id, position = data.split(":", 2)
        if not position.isdigit():
            await query.answer()
            return
        request = m.Like(page_id, int(position), user_name=display_name(update.effective_user))
        await _like(update, context, request)
    elif data == "more":
        await query.answer()
        await _more(update, context)
    elif data == "forget:yes":
        outcome = await _ask(update, context, m.Forget())
        await query.answer()
        if isinstance(outcome, m.Forgotten):
            await query.edit_message_text(text.forgotten(outcome.likes_deleted))
        elif isinstance(outcome, m.Failure):
            await _fail(update, outcome)
    elif data == "forget:no":
        await query.answer()
        await query.edit_message_text(text.FORGET_CANCELLED)
    else:
        await query.answer()


# --------------------------------------------------------------------------------------------- the work


def _image_document(message: Message) -> bool:
    document = message.document
    return bool(document and (document.mime_type or "").startswith("image/"))


async def _like(update: Update, context: ContextTypes.DEFAULT_TYPE, request: m.Like | m.LikeNumber) -> None:
    """Both ways to like: a 👍 button (answered with a pop-up too) and /like N."""
    outcome = await _ask(update, context, request)
    query, message = update.callback_query, update.effective_message
    if isinstance(outcome, m.Liked):
        if query is not None:
            await query.answer(f"❤️ {outcome.item.name}")
        who = display_name(update.effective_user) if is_group(update) else None
        await message.reply_text(text.liked(outcome.item, outcome.total, who=who))  # type: ignore[union-attr]
    elif isinstance(outcome, m.Failure):
        if query is not None:
            await query.answer(text.error_text(outcome))
        else:
            await message.reply_text(text.error_text(outcome))  # type: ignore[union-attr]


async def _more(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _show(update, context, await _ask(update, context, m.More(services(context).settings.album_size)))


async def _recommend(update: Update, context: ContextTypes.DEFAULT_TYPE, source: Message) -> None:
    svc = services(context)
    chat, user = update.effective_chat, update.effective_user
    message = update.effective_message
    if chat is None or user is None or message is None:
        return
    if not await svc.rate_limit.allow(user.id):
        await message.reply_text(text.RATE_LIMITED)
        return
    media: PhotoSize | Document | None = source.photo[-1] if source.photo else source.document
    if media is None:
        await message.reply_text(text.ASK_FOR_PHOTO)
        return
    if (media.file_size or 0) > BOT_API_DOWNLOAD_LIMIT:
        await message.reply_text(text.TOO_BIG)
        return
    await context.bot.send_chat_action(chat.id, ChatAction.UPLOAD_PHOTO)
    request = m.Recommend(svc.settings.album_size, file_unique_id=media.file_unique_id)
    photo_bytes: bytes | None = None
    if not await svc.jobs.has_cached_photo(media.file_unique_id):
        photo_bytes = bytes(await (await media.get_file()).download_as_bytearray())
    outcome = await _ask(update, context, request, photo_bytes)
    if isinstance(outcome, m.Failure) and outcome.code is m.ErrorCode.PHOTO_GONE:
        # The cached fingerprint expired between our check and the worker: send the photo after all.
        photo_bytes = bytes(await (await media.get_file()).download_as_bytearray())
        outcome = await _ask(update, context, request, photo_bytes)
    await _show(update, context, outcome)


async def _ask(
    update: Update, context: ContextTypes.DEFAULT_TYPE, request: m.Request, photo_bytes: bytes | None = None
) -> m.Outcome | None:
    """Send one job and wait for its outcome; None when there is none, and the user was told why already."""
    svc = services(context)
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    if chat is None or user is None:
        return None
    job = m.Job.new(
        request, chat_id=chat.id, user_id=user.id, reply_to=svc.jobs.instance, timeout=svc.settings.reply_timeout_s
    )
    try:
        # A little longer than the job's deadline, so that the worker's own "too late" reply can arrive.
        reply = await svc.jobs.request(job, photo_bytes, timeout=svc.settings.reply_timeout_s + 2)
        return reply.outcome
    except QueueFull:
        problem = text.BUSY
    except ChatBusy:
        problem = text.STILL_WORKING
    except TimeoutError:
        logger.warning("job %s (%s) for chat %s: no reply in time", job.id, job.kind, chat.id)
        problem = text.TIMED_OUT
    if update.callback_query is not None:
        await update.callback_query.answer(problem, show_alert=True)
    elif message is not None:
        await message.reply_text(problem)
    return None


async def _fail(update: Update, failure: m.Failure) -> None:
    """Tell the user why a job has no result, under the message that asked for it."""
    if update.effective_message is not None:
        await update.effective_message.reply_text(text.error_text(failure))


async def _show(update: Update, context: ContextTypes.DEFAULT_TYPE, outcome: m.Outcome | None) -> None:
    """The album of destinations, then one message with the 👍 and More ▶ buttons (albums cannot carry buttons)."""
    if isinstance(outcome, m.Failure):
        await _fail(update, outcome)
        return
    svc = services(context)
    chat, message = update.effective_chat, update.effective_message
    if not isinstance(outcome, m.Album) or chat is None or not outcome.items:
        return
    captions = text.group_caption if outcome.group else text.caption
    reply_to = message.message_id if message is not None and update.callback_query is None else None
    try:
        shown = await send_album(
            context.bot, chat.id, outcome.items, svc.photos, captions, first_rank=outcome.first_rank, reply_to=reply_to
        )
    except TelegramError:
        logger.exception("sending the album to chat %s failed", chat.id)
        raise
    if not shown:
        await context.bot.send_message(chat.id, text.FAILED)
        return
    await context.bot.send_message(
        chat.id,
        text.after_album(outcome),
        reply_markup=text.album_keyboard(
            outcome.page_id, len(shown), first_rank=outcome.first_rank, more=outcome.remaining > 0
        ),
    )


async def error_handler(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Logs the error first, then tells the user something useful if there is a user to tell."""
    logger.error("exception while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(update.effective_chat.id, text.SOMETHING_WENT_WRONG)
        except TelegramError:
            logger.warning("could not tell chat %s about the error", update.effective_chat.id)
