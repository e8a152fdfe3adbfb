"""Every setting of every process, in one place: read once from the environment (or a .env file) at start-up.

Each process reads its own class once in its ``main`` and passes the values down; nothing else reads the
environment. ``.env.example`` documents every field with its default (``wanderlens settings`` prints it).
No TensorFlow here: the bot imports this module.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_CONFIG = SettingsConfigDict(
    env_prefix="WANDERLENS_",
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    frozen=True,
    populate_by_name=True,
)


class LogSettings(BaseSettings):
    """Logging, for every command."""

    model_config = _CONFIG

    log_format: Literal["text", "json"] = Field(
        "text", description="'text' for people, 'json' for one JSON object per line (job ids as fields)."
    )


class _RedisClient(BaseSettings):
    model_config = _CONFIG

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


class WorkerSettings(_RedisClient):
    """The worker: model, index, batching and queue limits."""

    index_dir: Path = Field(Path("data/index"), description="Folder of the catalog index (`wanderlens index --out`).")
    backbone: str = Field("efficientnet-lite0", description="Feature extractor; must match the index's.")
    weights: str = Field("default", description="'default' (the backbone's release) or a local weights file.")
    weights_cache: Path = Field(
        Path.home() / ".cache" / "wanderlens" / "weights", description="Where downloaded weights are kept."
    )
    batch_size: int = Field(32, ge=1, le=256, description="Most photos in one forward pass.")
    batch_wait_ms: float = Field(
        2.0, ge=0, le=1000, description="How long a partial batch waits for more photos (0: never)."
    )
    max_deliveries: int = Field(3, ge=1, le=20, description="Deliveries before a job goes to the dead-letter stream.")
    claim_idle_ms: int = Field(
        30_000, ge=1000, description="A job unacknowledged this long is taken over from a dead worker."
    )
    result_list_size: int = Field(50, ge=5, le=500, description="Ranked results kept per chat for /more.")
    result_ttl_s: int = Field(7 * 24 * 3600, ge=60, description="How long result lists and shown sets are kept.")
    query_cache_ttl_s: int = Field(7 * 24 * 3600, ge=0, description="How long query fingerprints are cached.")
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus metrics port (0: off).")
    heartbeat_s: float = Field(5.0, gt=0, le=60, description="Heartbeat interval for `wanderlens worker --health`.")
    reload_poll_s: float = Field(5.0, gt=0, le=3600, description="How often the worker looks for a new index version.")
    consumer: str = Field(
        default_factory=lambda: socket.gethostname(), description="This worker's name in the consumer group."
    )


class BotSettings(_RedisClient):
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

    @field_validator("telegram_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    bot_instance: str = Field(
        default_factory=lambda: f"{socket.gethostname()}", description="Name of this bot process's reply list."
    )


def settings_error_line(error: ValidationError) -> str:
    """One readable line per bad setting, for a clean exit at start-up."""
    parts = []
    for problem in error.errors():
        name = ".".join(str(p) for p in problem["loc"]) or "settings"
        parts.append(f"{name.upper()}: {problem['msg']}")
    return "invalid configuration: " + "; ".join(parts)


def env_example() -> str:
    """The text of `.env.example`: every setting, commented out at its default, with what it does."""
    lines = [
        "# Wanderlens configuration: copy to .env, then uncomment and edit what you need.",
        "# Real environment variables win over this file. Regenerate it with `wanderlens settings`.",
        "",
    ]
    seen: set[str] = set()
    for settings_class in (BotSettings, WorkerSettings, LogSettings):
        lines.append(f"# --- {settings_class.__doc__}")
        for name, info in settings_class.model_fields.items():
            alias = info.validation_alias
            env_name = alias.choices[0] if isinstance(alias, AliasChoices) else f"WANDERLENS_{name.upper()}"
            if env_name in seen:
                continue
            seen.add(env_name)
            if info.default_factory is not None:
                shown = "(this machine's host name)" if name in ("consumer", "bot_instance") else ""
            else:
                shown = "" if info.default is None else str(info.default)
            if name == "weights_cache":
                shown = "~/.cache/wanderlens/weights"
            lines.append(f"# {info.description}")
            lines.append(f"# {env_name}={shown}")
        lines.append("")
    return "\n".join(lines)
