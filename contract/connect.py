"""The one way the bot and the worker connect to Redis."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RETRIES = 3


def connect(url: str, **options: object) -> Redis:
    """An async client that retries a command a few times, quickly, on a dropped connection.

    After a Redis restart the first command on every pooled connection fails ("Connection closed by server");
    without these retries that one failure would reach a job (answered late, by the claim) or end a loop. Longer
    outages are the callers' to wait out (``contract.backoff``). Retrying is safe here: the scripts that write are
    idempotent by job id.
    """
    return Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **options,  # type: ignore[arg-type]
    )
