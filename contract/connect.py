"""The one way the bot and the worker connect to Redis."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

RETRIES = 3
# Every command either side sends takes milliseconds, and the blocking reads wait a second at most
# (`worker.loop.READ_BLOCK_MS`, `contract.client.LISTEN_BLOCK_S`). A command unanswered for this long has met a
# Redis that hangs (stopped, or cut off without a reset), and without a limit it would wait for TCP's keepalive:
# hours, with the user's request, or the worker, hanging on it. (redis-py 8 has this default too; 5 and older had
# none.)
COMMAND_TIMEOUT_S = 5.0


def connect(url: str, **options: object) -> Redis:
    """An async client that retries a command a few times, quickly, on a dropped connection, and gives up on one
    that gets no answer within ``COMMAND_TIMEOUT_S``.

    After a Redis restart the first command on every pooled connection fails ("Connection closed by server");
    without these retries that one failure would reach a job (answered late, by the claim) or end a loop. A
    command that timed out is not retried: a hanging server would only make every command wait four times as
    long. Longer outages are the callers' to wait out (``contract.backoff``, ``contract.outage``). Retrying is safe
    here: the scripts that write are idempotent by job id.
    """
    limits: dict[str, object] = {"socket_timeout": COMMAND_TIMEOUT_S, "socket_connect_timeout": COMMAND_TIMEOUT_S}
    return Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), RETRIES, supported_errors=(RedisConnectionError,)),
        retry_on_error=[RedisConnectionError],
        **(limits | options),  # type: ignore[arg-type]
    )
