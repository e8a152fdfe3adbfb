"""What every process reads to connect and to log: the shared base of ``bot.settings`` and ``worker.settings``.

Each process reads its own settings class once in its ``main`` and passes the values down; nothing else reads
the environment. ``.env.example`` documents every field with its default (``wanderlens settings`` prints it).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SETTINGS_CONFIG = SettingsConfigDict(
    env_prefix="WANDERLENS_",
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    frozen=True,
    populate_by_name=True,
)


class LogSettings(BaseSettings):
    """Logging, for every command."""

    model_config = SETTINGS_CONFIG

    log_format: Literal["text", "json"] = Field(
        "text", description="'text' for people, 'json' for one JSON object per line (job ids as fields)."
    )


class RedisSettings(BaseSettings):
    """Where the job queue lives; both the bot and the worker connect to it."""

    model_config = SETTINGS_CONFIG

    redis_url: str = Field(
        default="redis://localhost:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "WANDERLENS_REDIS_URL"),
        description="Redis connection URL (redis://, rediss:// or unix://). `wanderlens up` starts its own when unset.",
    )

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("redis", "rediss", "unix") or (parsed.scheme != "unix" and not parsed.hostname):
            raise ValueError("must look like redis://host:6379/0, rediss://… or unix:///path/redis.sock")
        return value


def settings_error_line(error: ValidationError) -> str:
    """One readable line per bad setting, for a clean exit at start-up."""
    parts = []
    for problem in error.errors():
        name = ".".join(str(p) for p in problem["loc"]) or "settings"
        parts.append(f"{name.upper()}: {problem['msg']}")
    return "invalid configuration: " + "; ".join(parts)
