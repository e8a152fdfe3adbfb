"""Every Redis key Wanderlens uses, in one place (both sides and the tests name keys only through here).

Values are JSON or raw little-endian float32 bytes; nothing read from Redis is ever unpickled.
"""

from __future__ import annotations

PREFIX = "wl:"
JOBS_STREAM = f"{PREFIX}jobs"
WORKERS_GROUP = "wl-workers"
DEAD_LETTER_STREAM = f"{PREFIX}jobs:dead"
DEAD_LETTER_MAXLEN = 10_000
HEALTH_PATTERN = f"{PREFIX}health:*"
QUERY_VECTOR_PATTERN = f"{PREFIX}qvec:*"


# ---- one job's keys


def photo(job_id: str) -> str:
    return f"{PREFIX}photo:{job_id}"


def replies(instance: str) -> str:
    return f"{PREFIX}replies:{instance}"


def done(job_id: str) -> str:
    return f"{PREFIX}done:{job_id}"


def inflight(chat_id: int) -> str:
    return f"{PREFIX}inflight:{chat_id}"


# ---- a chat's results and pages (the worker's state)


def results(chat_id: int) -> str:
    return f"{PREFIX}results:{chat_id}"


def shown(chat_id: int, list_id: str) -> str:
    return f"{PREFIX}shown:{chat_id}:{list_id}"


def pages(chat_id: int) -> str:
    return f"{PREFIX}pages:{chat_id}"


def last_page(chat_id: int) -> str:
    return f"{PREFIX}lastpage:{chat_id}"


# ---- likes


def likes(chat_id: int, user_id: int) -> str:
    return f"{PREFIX}likes:{chat_id}:{user_id}"


def likers(chat_id: int) -> str:
    return f"{PREFIX}likers:{chat_id}"


def member_names(chat_id: int) -> str:
    return f"{PREFIX}names:{chat_id}"


def user_chats(user_id: int) -> str:
    return f"{PREFIX}userchats:{user_id}"


def user_location(user_id: int) -> str:
    """Where a person said they are (a shared location), until they turn it off or /forget."""
    return f"{PREFIX}location:{user_id}"


def chat_region(chat_id: int) -> str:
    """The region a chat narrowed its results to with /where, until /where off."""
    return f"{PREFIX}region:{chat_id}"


# ---- the user's settings (the bot's own: no TTL, deleted by /forget)


def user_language(user_id: int) -> str:
    """The language the user chose with /language (a language tag such as "de" or "pt_BR")."""
    return f"{PREFIX}lang:{user_id}"


# ---- caches


def query_vector(fingerprint: str, content_hash: str) -> str:
    return f"{PREFIX}qvec:{fingerprint}:{content_hash}"


def file_unique(file_unique_id: str) -> str:
    return f"{PREFIX}fuid:{file_unique_id}"


def telegram_file(destination_id: str, content_hash: str) -> str:
    return f"{PREFIX}tgfile:{destination_id}:{content_hash}"


# ---- the bot's limits and the workers' heartbeats


def photo_rate(user_id: int, window: int) -> str:
    return f"{PREFIX}rate:{user_id}:{window}"


def health(consumer: str) -> str:
    return f"{PREFIX}health:{consumer}"
