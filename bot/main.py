"""`wanderlens bot`: the Telegram front end. Builds the Application, registers every handler, runs it.

The bot talks to the worker only through Redis and never imports TensorFlow. Under Telegram's default privacy
mode in groups it sees commands, replies to it and mentions — which is all it needs.
"""

from __future__ import annotations

import logging
import secrets

from telegram import Bot, Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot import handlers, texts
from bot.album import CatalogPhotos
from bot.i18n import Translator
from bot.ratelimit import PhotoRateLimit
from bot.settings import BotSettings
from contract.client import ClientLimits, JobClient
from contract.connect import connect
from contract.outage import OutageLimits, RedisOutage
from recommender.errors import UserError

logger = logging.getLogger(__name__)


class ConfigurationError(UserError, ValueError):
    """A setting the bot cannot start without; the message says what to do."""


class RedactToken(logging.Filter):
    """Belt and braces: whatever logs a request URL or an error that quotes one, the token never reaches logs."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token and self.token in record.getMessage():
            record.msg = record.getMessage().replace(self.token, "<token>")
            record.args = None
        return True


def redact_token_in_logs(token: str) -> None:
    """One RedactToken per log handler: building the application again (tests, restarts) adds no second one."""
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactToken)]:
            handler.removeFilter(old)
        handler.addFilter(RedactToken(token))


async def set_commands(bot: Bot, translator: Translator) -> None:
    """The "/" menu in every language, for Telegram apps set to it, and in English for everyone else."""
    await bot.set_my_commands(texts.bot_commands(translator.default))
    for lang in translator:
        await bot.set_my_commands(texts.bot_commands(lang), language_code=lang.telegram_code)


def build_application(settings: BotSettings) -> Application:
    """The Application with every handler registered: read this to see everything the bot does."""
    if settings.telegram_token is None:
        raise ConfigurationError(
            "TELEGRAM_TOKEN is not set: talk to @BotFather on Telegram, create a bot, and put its token in .env "
            "(or run `wanderlens up` without a token to try the local playground)"
        )
    if not settings.catalog_dir.is_dir():
        raise ConfigurationError(
            f"catalog folder {settings.catalog_dir} not found: set WANDERLENS_CATALOG_DIR to the folder of "
            "destination photos (the same one the index was built from)"
        )
    token = settings.telegram_token.get_secret_value()
    redact_token_in_logs(token)

    instance = f"{settings.bot_instance}-{secrets.token_hex(3)}"

    async def post_init(application: Application) -> None:
        translator = Translator.load()  # once per process: every handler shares it through Services
        redis = connect(settings.redis_url)
        jobs = JobClient(
            redis,
            instance=instance,
            limits=ClientLimits(max_queue=settings.max_queue, photo_ttl_s=settings.photo_ttl_s),
        )
        await jobs.start()
        application.bot_data["services"] = handlers.Services(
            settings=settings,
            redis=redis,
            jobs=jobs,
            photos=CatalogPhotos(settings.catalog_dir, redis),
            rate_limit=PhotoRateLimit(redis, per_minute=settings.photos_per_minute),
            translator=translator,
            outage=RedisOutage(
                redis,
                OutageLimits(
                    max_waiting=settings.outage_max_waiting,
                    max_bytes=settings.outage_max_mb * 1024 * 1024,
                    wait_s=settings.outage_wait_s,
                ),
            ),
        )
        await set_commands(application.bot, translator)
        logger.info("bot @%s ready (reply list %s)", application.bot.username, instance)

    async def post_stop(application: Application) -> None:
        services = application.bot_data.get("services")
        if services is not None:
            await services.jobs.close()
            await services.outage.close()

    async def post_shutdown(application: Application) -> None:
        services = application.bot_data.get("services")
        if services is not None:
            await services.redis.aclose()

    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_file_url)
        .rate_limiter(AIORateLimiter(max_retries=3))
        .concurrent_updates(64)
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
        .build()
    )
    private = filters.ChatType.PRIVATE
    groups = filters.ChatType.GROUPS
    image_document = filters.Document.IMAGE
    application.add_handler(CommandHandler("start", handlers.start))
    application.add_handler(CommandHandler("help", handlers.help_command))
    application.add_handler(CommandHandler("like", handlers.like_command))
    application.add_handler(CommandHandler("more", handlers.more_command))
    application.add_handler(CommandHandler("likes", handlers.likes_command))
    application.add_handler(CommandHandler("forget", handlers.forget_command))
    application.add_handler(CommandHandler("suggest", handlers.suggest_command))
    application.add_handler(CommandHandler("language", handlers.language_command))
    application.add_handler(CommandHandler("nearby", handlers.nearby_command))
    application.add_handler(CommandHandler("where", handlers.where_command))
    application.add_handler(MessageHandler(filters.LOCATION, handlers.location))
    application.add_handler(MessageHandler(private & (filters.PHOTO | image_document), handlers.photo))
    application.add_handler(MessageHandler(groups & (filters.PHOTO | image_document), handlers.group_photo))
    application.add_handler(MessageHandler(private & filters.Document.ALL, handlers.not_an_image))
    application.add_handler(MessageHandler(private & filters.Sticker.ALL, handlers.sticker))
    application.add_handler(MessageHandler(private & ~filters.COMMAND, handlers.plain_text))
    application.add_handler(CallbackQueryHandler(handlers.button))
    application.add_error_handler(handlers.error_handler)
    return application


def run_bot(settings: BotSettings) -> None:
    """Poll Telegram until Ctrl-C or SIGTERM; the shutdown order is python-telegram-bot's own."""
    build_application(settings).run_polling(allowed_updates=Update.ALL_TYPES, drop_pending_updates=False)
