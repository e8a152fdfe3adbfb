"""The bot's handlers: each one turns an update into a job for the worker and the worker's reply into messages.

They reach the worker only through Redis (``contract.client.JobClient``, kept in ``bot_data`` by ``bot.main``),
and never import TensorFlow. Every handler first picks the user's language (``user_lang``) and says everything through
it: the sentences are gettext messages in ``bot.texts``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from telegram import (
    CallbackQuery,
    Document,
    KeyboardButton,
    Message,
    PhotoSize,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
    User,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import texts
from bot.album import CatalogPhotos, send_album
from bot.i18n import SUPPORTED_LANGUAGES, Lang, Translator
from bot.ratelimit import PhotoRateLimit
from bot.settings import BotSettings
from contract import codec, keys
from contract import messages as m
from contract.client import ChatBusy, JobClient, QueueFull
from contract.outage import REDIS_DOWN, RedisOutage
from recommender.geo import parse_region, valid_location

logger = logging.getLogger(__name__)

MAX_REGION_TEXT = 100  # what /where keeps of what was typed
BOT_API_DOWNLOAD_LIMIT = texts.BOT_DOWNLOAD_LIMIT
SUGGEST = re.compile(r"^/suggest(@\w+)?(\s|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Services:
    """What the handlers share, created in ``post_init`` and kept in ``application.bot_data``."""

    settings: BotSettings
    redis: Redis
    jobs: JobClient
    photos: CatalogPhotos
    rate_limit: PhotoRateLimit
    translator: Translator
    outage: RedisOutage


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.bot_data["services"]  # type: ignore[no-any-return]


def display_name(user: User | None, lang: Lang) -> str:
    if user is None:
        return lang.gettext(texts.SOMEONE)
    return user.first_name or (f"@{user.username}" if user.username else f"user {user.id}")


def is_group(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


# --------------------------------------------------------------------------------------------- languages


async def user_lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Lang:
    """The user's /language choice if there is one, else their Telegram app's language, else English."""
    svc = services(context)
    user = update.effective_user
    if user is None:
        return svc.translator.default
    stored = None
    try:
        if not svc.outage.down:
            stored = await svc.redis.get(keys.user_language(user.id))
    except RedisError as error:
        # A setting, not the request: /help or a photo should not fail because Redis blinked.
        logger.warning("could not read user %s's language (%s); using their app's", user.id, error)
        if isinstance(error, REDIS_DOWN):
            svc.outage.noticed()
    if stored:
        return svc.translator.for_language(stored.decode() if isinstance(stored, bytes) else str(stored))
    return svc.translator.for_language(user.language_code)


def app_lang(update: object, translator: Translator) -> Lang:
    """The language of the user's Telegram app, without Redis: for when something already went wrong."""
    user = update.effective_user if isinstance(update, Update) else None
    return translator.for_language(user.language_code if user is not None else None)


def find_language(translator: Translator, wanted: str) -> str | None:
    """The tag to store for what a user typed after /language: a code ("fr", "de-AT", "pt_BR") or a name ("Deutsch").

    A code is kept as typed (normalised), so that "de-CH" still writes numbers the Swiss way; None if no catalog
    speaks it (for_language would quietly fall back to English, which is not what the user asked for).
    """
    tag = wanted.strip().replace("_", "-")
    by_name = {lang.name.casefold(): lang.code for lang in translator}
    if tag.casefold() in by_name:
        return by_name[tag.casefold()]
    language = tag.split("-")[0].lower()
    if any(lang.telegram_code == language for lang in translator):
        return tag
    return None


# --------------------------------------------------------------------------------------------- commands


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Says what the bot does, how to use it, and what it stores."""
    lang = await user_lang(update, context)
    await update.effective_message.reply_text(lang.gettext(texts.START))  # type: ignore[union-attr]


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Lists the commands."""
    lang = await user_lang(update, context)
    await update.effective_message.reply_text(lang.gettext(texts.HELP))  # type: ignore[union-attr]


async def like_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/like [n]: likes result n of the chat's last album (the first when no number is given)."""
    lang = await user_lang(update, context)
    number = 1
    if context.args:
        try:
            number = int(context.args[0])
        except ValueError:
            await update.effective_message.reply_text(lang.gettext(texts.LIKE_USAGE))  # type: ignore[union-attr]
            return
    await _like(update, context, lang, m.LikeNumber(number, user_name=display_name(update.effective_user, lang)))


async def more_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/more: the next page of the chat's latest results."""
    await _more(update, context, await user_lang(update, context))


async def likes_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/likes: lists what this user liked in this chat."""
    lang = await user_lang(update, context)
    outcome = await _ask(update, context, lang, m.Likes())
    if isinstance(outcome, m.LikedPlaces):
        await update.effective_message.reply_text(texts.likes_list(lang, outcome.items, outcome.total))  # type: ignore[union-attr]
    elif isinstance(outcome, m.Failure):
        await _fail(update, lang, outcome)


async def forget_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: asks for confirmation before deleting the user's data."""
    lang = await user_lang(update, context)
    await update.effective_message.reply_text(  # type: ignore[union-attr]
        lang.gettext(texts.FORGET_CONFIRM), reply_markup=texts.forget_keyboard(lang)
    )


async def suggest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/suggest: as a reply to a photo, recommendations for that photo; alone, places for the whole group."""
    lang = await user_lang(update, context)
    message = update.effective_message
    replied = message.reply_to_message if message else None
    if replied is not None and (replied.photo or _image_document(replied)):
        await _recommend(update, context, lang, replied)
        return
    if not is_group(update):
        await message.reply_text(lang.gettext(texts.ASK_FOR_PHOTO))  # type: ignore[union-attr]
        return
    svc = services(context)
    _, region = await _scope(svc, None, update.effective_chat.id)  # type: ignore[union-attr]
    request = m.GroupSuggest(svc.settings.album_size, region=region)
    await _show(update, context, lang, await _ask(update, context, lang, request))


async def language_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/language: a keyboard of languages; /language fr (or de-AT, or Deutsch) sets it at once."""
    svc = services(context)
    lang = await user_lang(update, context)
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    if not context.args:
        keyboard = texts.language_keyboard(lang, svc.translator)
        await message.reply_text(lang.gettext(texts.LANGUAGE_PROMPT), reply_markup=keyboard)
        return
    wanted = " ".join(context.args)
    if wanted.casefold() in ("auto", "automatic", "off"):
        await message.reply_text(await _follow_telegram(svc, user))
        return
    tag = find_language(svc.translator, wanted)
    if tag is None:
        await message.reply_text(texts.language_unknown(lang, wanted, svc.translator))
        return
    await message.reply_text(await _set_language(svc, user, tag))


async def _set_language(svc: Services, user: User, tag: str) -> str:
    """Stores the choice (no expiry: it is a setting, and /forget deletes it) and confirms in the new language."""
    await svc.redis.set(keys.user_language(user.id), tag)
    chosen = svc.translator.for_language(tag)
    return chosen.gettext(texts.LANGUAGE_SET, language=chosen.name)


async def _follow_telegram(svc: Services, user: User) -> str:
    await svc.redis.delete(keys.user_language(user.id))
    return svc.translator.for_language(user.language_code).gettext(texts.LANGUAGE_AUTO)


# --------------------------------------------------------------------------------------------- places


async def location(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A shared location: later rankings favour places near it, until /nearby off (or /forget)."""
    svc, lang = services(context), await user_lang(update, context)
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.location is None:
        return
    at = message.location
    done = ReplyKeyboardRemove() if not is_group(update) else None
    if not valid_location(at.latitude, at.longitude):
        await message.reply_text(lang.gettext(texts.BAD_LOCATION), reply_markup=done)
        return
    stored = codec.location_json(m.Location(at.latitude, at.longitude))
    await svc.redis.set(keys.user_location(user.id), stored)
    await message.reply_text(lang.gettext(texts.LOCATION_SAVED), reply_markup=done)


async def nearby_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/nearby: favour places near the user's shared location (asks for it first); /nearby off: not any more."""
    svc, lang = services(context), await user_lang(update, context)
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    if context.args and context.args[0].lower() in ("off", "stop", "no"):
        await svc.redis.delete(keys.user_location(user.id))
        await message.reply_text(lang.gettext(texts.DISTANCE_OFF))
        return
    if await svc.redis.exists(keys.user_location(user.id)):
        await message.reply_text(lang.gettext(texts.LOCATION_SAVED))
        return
    # In a private chat a button can ask Telegram for the location; groups get the sentence alone.
    ask = None
    if not is_group(update):
        button = KeyboardButton(lang.gettext(texts.SHARE_LOCATION_BUTTON), request_location=True)
        ask = ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)
    await message.reply_text(lang.gettext(texts.NEARBY_NEEDS_LOCATION), reply_markup=ask)


async def where_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/where Italy (a country, a continent, "within 300 km"): only places there, until /where off."""
    svc, lang = services(context), await user_lang(update, context)
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    if message is None or chat is None or user is None:
        return
    typed = " ".join(context.args or ()).strip()
    if not typed:
        await message.reply_text(lang.gettext(texts.WHERE_USAGE))
        return
    if typed.lower() in ("off", "everywhere", "anywhere"):
        await svc.redis.delete(keys.chat_region(chat.id))
        await message.reply_text(lang.gettext(texts.WHERE_OFF))
        return
    near, _ = await _scope(svc, user.id, None)
    outcome = await _ask(update, context, lang, m.CheckRegion(typed[:MAX_REGION_TEXT], near=near))
    if isinstance(outcome, m.RegionFound):
        await svc.redis.set(keys.chat_region(chat.id), typed[:MAX_REGION_TEXT])
        await message.reply_text(texts.region_set(lang, outcome.label, parse_region(typed)))
    elif isinstance(outcome, m.Failure):
        await message.reply_text(texts.region_failure(lang, outcome.code, typed, parse_region(typed)))


async def _scope(svc: Services, user_id: int | None, chat_id: int | None) -> tuple[m.Location | None, str]:
    """The user's shared location and the chat's /where region, as stored; a Redis blink means neither."""
    if svc.outage.down:
        return None, ""
    try:
        raw_location = await svc.redis.get(keys.user_location(user_id)) if user_id is not None else None
        raw_region = await svc.redis.get(keys.chat_region(chat_id)) if chat_id is not None else None
        near = codec.location_from_json(raw_location) if raw_location else None
    except (RedisError, codec.ProtocolError) as error:
        logger.warning("could not read the location or region (%s); ranking without them", error)
        if isinstance(error, REDIS_DOWN):
            svc.outage.noticed()
        return None, ""
    return near, raw_region.decode() if isinstance(raw_region, bytes) else (raw_region or "")


async def _show_on_map(
    update: Update, context: ContextTypes.DEFAULT_TYPE, lang: Lang, query: CallbackQuery, page_id: str, position: str
) -> None:
    """A 📍 button: the place as a venue (a pin Telegram opens in its map), or why it cannot be one."""
    chat = update.effective_chat
    if not position.isdigit() or chat is None:
        await query.answer()
        return
    outcome = await _ask(update, context, lang, m.Locate(page_id, int(position)))
    if isinstance(outcome, m.Failure):
        await query.answer(texts.error_text(lang, outcome))
        return
    if not isinstance(outcome, m.Located):
        return
    item = outcome.item
    if item.lat is None or item.lon is None:
        await query.answer(lang.gettext(texts.NO_COORDINATES, name=texts.local_name(lang, item)))
        return
    await query.answer()
    name = texts.local_name(lang, item)
    await context.bot.send_venue(chat.id, item.lat, item.lon, title=name, address=texts.place(item, lang) or name)


# --------------------------------------------------------------------------------------------- photos


async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo or an image file: destinations that look like it."""
    await _recommend(update, context, await user_lang(update, context), update.effective_message)  # type: ignore[arg-type]


async def group_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In a group, only photos captioned /suggest or mentioning the bot are for us."""
    message = update.effective_message
    if message is None:
        return
    caption = message.caption or ""
    mentioned = f"@{context.bot.username}".lower() in caption.lower()
    if SUGGEST.match(caption) or mentioned:
        await _recommend(update, context, await user_lang(update, context), message)


async def not_an_image(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A document that is not an image."""
    lang = await user_lang(update, context)
    await update.effective_message.reply_text(lang.gettext(texts.NOT_AN_IMAGE))  # type: ignore[union-attr]


async def sticker(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers are pictures, but not photos of places."""
    lang = await user_lang(update, context)
    await update.effective_message.reply_text(lang.gettext(texts.STICKER))  # type: ignore[union-attr]


async def plain_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything else in a private chat: remind what the bot needs."""
    lang = await user_lang(update, context)
    await update.effective_message.reply_text(lang.gettext(texts.ASK_FOR_PHOTO))  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------- buttons


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """👍n, More ▶, the /forget confirmation and the /language choice."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    lang = await user_lang(update, context)
    data = query.data
    if data.startswith("like:"):
        _, page_id, position = data.split(":", 2)
        if not position.isdigit():
            await query.answer()
            return
        request = m.Like(page_id, int(position), user_name=display_name(update.effective_user, lang))
        await _like(update, context, lang, request)
    elif data == "more":
        await query.answer()
        await _more(update, context, lang)
    elif data == "forget:yes":
        await _forget(update, context, lang, query)
    elif data == "forget:no":
        await query.answer()
        await query.edit_message_text(lang.gettext(texts.FORGET_CANCELLED))
    elif data.startswith("map:"):
        _, page_id, position = data.split(":", 2)
        await _show_on_map(update, context, lang, query, page_id, position)
    elif data.startswith("lang:"):
        await _language_button(update, context, query, data.removeprefix("lang:"))
    else:
        await query.answer()


async def _forget(update: Update, context: ContextTypes.DEFAULT_TYPE, lang: Lang, query: CallbackQuery) -> None:
    """The worker deletes likes and results; the language choice is the bot's own key, so the bot deletes it."""
    outcome = await _ask(update, context, lang, m.Forget())
    await query.answer()
    if isinstance(outcome, m.Forgotten):
        if update.effective_user is not None:
            await services(context).redis.delete(keys.user_language(update.effective_user.id))
        # Said in the language the user asked in, even though the choice itself is gone now.
        await query.edit_message_text(texts.forgotten(lang, outcome.likes_deleted))
    elif isinstance(outcome, m.Failure):
        await _fail(update, lang, outcome)


async def _language_button(update: Update, context: ContextTypes.DEFAULT_TYPE, query: CallbackQuery, code: str) -> None:
    svc, user = services(context), update.effective_user
    await query.answer()
    if user is None:
        return
    if code == "auto":
        await query.edit_message_text(await _follow_telegram(svc, user))
    elif code in SUPPORTED_LANGUAGES:
        await query.edit_message_text(await _set_language(svc, user, code))


# --------------------------------------------------------------------------------------------- the work


def _image_document(message: Message) -> bool:
    document = message.document
    return bool(document and (document.mime_type or "").startswith("image/"))


async def _like(update: Update, context: ContextTypes.DEFAULT_TYPE, lang: Lang, request: m.Like | m.LikeNumber) -> None:
    """Both ways to like: a 👍 button (answered with a pop-up too) and /like N."""
    outcome = await _ask(update, context, lang, request)
    query, message = update.callback_query, update.effective_message
    if isinstance(outcome, m.Liked):
        if query is not None:
            await query.answer(f"❤️ {outcome.item.name}")
        who = display_name(update.effective_user, lang) if is_group(update) else None
        await message.reply_text(texts.liked(lang, outcome.item, outcome.total, who=who))  # type: ignore[union-attr]
    elif isinstance(outcome, m.Failure):
        if query is not None:
            await query.answer(texts.error_text(lang, outcome))
        else:
            await message.reply_text(texts.error_text(lang, outcome))  # type: ignore[union-attr]


async def _more(update: Update, context: ContextTypes.DEFAULT_TYPE, lang: Lang) -> None:
    request = m.More(services(context).settings.album_size)
    await _show(update, context, lang, await _ask(update, context, lang, request))


async def _recommend(update: Update, context: ContextTypes.DEFAULT_TYPE, lang: Lang, source: Message) -> None:
    svc = services(context)
    chat, user = update.effective_chat, update.effective_user
    message = update.effective_message
    if chat is None or user is None or message is None:
        return
    if not await _within_rate_limit(svc, user.id):
        await message.reply_text(lang.gettext(texts.RATE_LIMITED))
        return
    media: PhotoSize | Document | None = source.photo[-1] if source.photo else source.document
    if media is None:
        await message.reply_text(lang.gettext(texts.ASK_FOR_PHOTO))
        return
    if (media.file_size or 0) > BOT_API_DOWNLOAD_LIMIT:
        await message.reply_text(texts.too_big(lang))
        return
    await context.bot.send_chat_action(chat.id, ChatAction.UPLOAD_PHOTO)
    near, region = await _scope(svc, user.id, chat.id)
    request = m.Recommend(svc.settings.album_size, file_unique_id=media.file_unique_id, near=near, region=region)
    photo_bytes: bytes | None = None
    if not await _worker_has_photo(svc, media.file_unique_id):
        photo_bytes = bytes(await (await media.get_file()).download_as_bytearray())
    outcome = await _ask(update, context, lang, request, photo_bytes)
    if isinstance(outcome, m.Failure) and outcome.code is m.ErrorCode.PHOTO_GONE:
        # The cached fingerprint expired between our check and the worker: send the photo after all.
        photo_bytes = bytes(await (await media.get_file()).download_as_bytearray())
        outcome = await _ask(update, context, lang, request, photo_bytes)
    await _show(update, context, lang, outcome)


async def _within_rate_limit(svc: Services, user_id: int) -> bool:
    """The user's photo budget; with Redis down nothing can be counted, and the photo waits for Redis anyway
    (``_ask``, within ``RedisOutage``'s limits), so it is let through rather than refused for the outage."""
    try:
        return svc.outage.down or await svc.rate_limit.allow(user_id)
    except REDIS_DOWN as error:
        logger.warning("could not count user %s's photos (%s); letting this one through", user_id, error)
        svc.outage.noticed()
        return True


async def _worker_has_photo(svc: Services, file_unique_id: str) -> bool:
    """Whether the photo need not be downloaded and sent; when Redis cannot say, it is sent."""
    try:
        return not svc.outage.down and await svc.jobs.has_cached_photo(file_unique_id)
    except REDIS_DOWN:
        svc.outage.noticed()
        return False


RESENDS_AFTER_OUTAGE = 3  # a Redis that keeps going away again is down, not restarting


async def _ask(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    lang: Lang,
    request: m.Request,
    photo_bytes: bytes | None = None,
) -> m.Outcome | None:
    """Send one job and wait for its outcome; None when there is none, and the user was told why already.

    When Redis cannot be reached the job waits for it (``RedisOutage``: bounded in number, bytes and time) and is
    sent again, as the same job, once Redis answers.
    """
    svc = services(context)
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    if chat is None or user is None:
        return None
    timeout = svc.settings.reply_timeout_s
    job = m.Job.new(request, chat_id=chat.id, user_id=user.id, reply_to=svc.jobs.instance, timeout=timeout)
    told_to_wait = False

    async def tell_to_wait() -> None:
        nonlocal told_to_wait
        if not told_to_wait and message is not None:
            told_to_wait = True
            await message.reply_text(lang.gettext(texts.WAITING_FOR_BACKEND))

    problem = texts.BACKEND_DOWN
    for _ in range(RESENDS_AFTER_OUTAGE + 1):
        if svc.outage.down:
            if not await svc.outage.wait_until_back(len(photo_bytes or b""), on_still_down=tell_to_wait):
                break
            job = job.resent(timeout)
        try:
            # A little longer than the job's deadline, so that the worker's own "too late" reply can arrive.
            reply = await svc.jobs.request(job, photo_bytes, timeout=timeout + 2)
            return reply.outcome
        except QueueFull:
            problem = texts.BUSY
        except ChatBusy:
            problem = texts.STILL_WORKING
        except TimeoutError:
            logger.warning("job %s (%s) for chat %s: no reply in time", job.id, job.kind, chat.id)
            problem = texts.TIMED_OUT
        except REDIS_DOWN as error:
            logger.warning("job %s (%s) for chat %s: redis unreachable (%s)", job.id, job.kind, chat.id, error)
            svc.outage.noticed()
            continue
        break
    if update.callback_query is not None:
        await update.callback_query.answer(lang.gettext(problem), show_alert=True)
    elif message is not None:
        await message.reply_text(lang.gettext(problem))
    return None


async def _fail(update: Update, lang: Lang, failure: m.Failure) -> None:
    """Tell the user why a job has no result, under the message that asked for it."""
    if update.effective_message is not None:
        await update.effective_message.reply_text(texts.error_text(lang, failure))


async def _show(update: Update, context: ContextTypes.DEFAULT_TYPE, lang: Lang, outcome: m.Outcome | None) -> None:
    """The album of destinations, then one message with the 👍 and More ▶ buttons (albums cannot carry buttons)."""
    if isinstance(outcome, m.Failure):
        await _fail(update, lang, outcome)
        return
    svc = services(context)
    chat, message = update.effective_chat, update.effective_message
    if not isinstance(outcome, m.Album) or chat is None or not outcome.items:
        return

    def captions(rank: int, item: m.Item) -> str:
        if outcome.group:
            return texts.group_caption(lang, rank, item)
        return texts.caption(lang, rank, item, distance_km=item.distance_km)

    reply_to = message.message_id if message is not None and update.callback_query is None else None
    try:
        shown = await send_album(
            context.bot, chat.id, outcome.items, svc.photos, captions, first_rank=outcome.first_rank, reply_to=reply_to
        )
    except TelegramError:
        logger.exception("sending the album to chat %s failed", chat.id)
        raise
    if not shown:
        await context.bot.send_message(chat.id, lang.gettext(texts.FAILED))
        return
    # The 👍 and 📍 buttons name positions on the worker's page, which counts every item, shown or not.
    on_map = [outcome.items.index(item) + 1 for item in shown if item.lat is not None and item.lon is not None]
    closest = None
    if outcome.group and outcome.near:
        closest = min((i for i in shown if i.distance_km is not None), key=lambda i: i.distance_km, default=None)
    await context.bot.send_message(
        chat.id,
        texts.after_album(
            lang,
            hints=outcome.hints,
            members=outcome.members,
            remaining=outcome.remaining,
            closest=closest,
            closest_km=closest.distance_km if closest is not None else None,
        ),
        reply_markup=texts.album_keyboard(
            lang,
            outcome.page_id,
            len(shown),
            first_rank=outcome.first_rank,
            more=outcome.remaining > 0,
            on_map=on_map,
        ),
    )


async def error_handler(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Logs the error first, then tells the user something useful if there is a user to tell."""
    svc: Services | None = context.bot_data.get("services")
    redis_down = isinstance(context.error, REDIS_DOWN)
    if redis_down:
        # Not a bug: Redis is down or hanging (contract.outage says when it is back), and what failed was a command
        # that only stores a setting (/language, /nearby, /where). Those do not wait: the user can say it again.
        logger.warning("redis unreachable while handling an update: %s", context.error)
        if svc is not None:
            svc.outage.noticed()
    else:
        logger.error("exception while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        problem = texts.BACKEND_DOWN if redis_down else texts.INTERNAL_ERROR
        # Not user_lang: Redis may be what failed. The app's language is right for nearly everyone; before
        # post_init there is no translator, and the msgid is the English sentence.
        sorry = app_lang(update, svc.translator).gettext(problem) if svc else problem
        try:
            await context.bot.send_message(update.effective_chat.id, sorry)
        except TelegramError:
            logger.warning("could not tell chat %s about the error", update.effective_chat.id)
