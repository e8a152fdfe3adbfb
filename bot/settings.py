"""The bot's settings: token, catalog photos, replies and limits (read once in ``wanderlens bot``)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator

from contract.settings import RedisSettings


class BotSettings(RedisSettings):
    """The Telegram front end: token, catalog photos, replies and limits."""

    telegram_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("TELEGRAM_TOKEN", "WANDERLENS_TELEGRAM_TOKEN"),
        description="The bot token from @BotFather. Without it `wanderlens up` starts the local playground.",
    )
    catalog_dir: Path = Field(Path("catalog"), description="The catalog folder (the bot sends its photos).")
    telegram_base_url: str = Field(
        "https://api.telegram.org/bot", description="Bot API address (the playground points it at itself)."
    )
    telegram_base_file_url: str = Field("https://api.telegram.org/file/bot", description="Bot API file address.")
    album_size: int = Field(5, ge=2, le=10, description="Destinations per album (Telegram allows 2-10).")
    reply_timeout_s: float = Field(30.0, gt=1, le=600, description="How long a user waits for the worker.")
    max_queue: int = Field(200, ge=1, description="Queued jobs beyond which users are told the bot is busy.")
    photos_per_minute: int = Field(10, ge=1, le=600, description="Photos one user may send per minute.")
    photo_ttl_s: int = Field(300, ge=10, description="How long a submitted photo waits in Redis for a worker.")
    outage_wait_s: float = Field(
        60.0, ge=0, le=600, description="How long a request waits for Redis to come back when it is down (0: not)."
    )
    outage_max_waiting: int = Field(32, ge=0, description="Requests that may wait for Redis at once.")
    outage_max_mb: int = Field(64, ge=0, description="Photo megabytes the requests waiting for Redis may hold.")
    bot_instance: str = Field(
        default_factory=lambda: f"{socket.gethostname()}", description="Name of this bot process's reply list."
    )

    @field_validator("telegram_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
