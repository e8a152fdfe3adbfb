"""The bot <-> worker protocol over Redis: key names, job and reply records, and the two atomic scripts.

Standard library only (plus the caller's redis client): the bot imports this module and must stay free of
TensorFlow. Everything on the wire is JSON; nothing read from Redis is ever unpickled.

Flow: the bot stores the photo under ``photo_key(job_id)`` with a TTL and adds a small job entry to the
``JOBS_STREAM`` (refused when the queue is full). A worker of the ``WORKERS_GROUP`` consumer group reads it,
answers by pushing a ``Reply`` onto the submitting bot instance's reply list, and acknowledges and deletes the
entry in the same script, guarded by an idempotency key so that a job delivered twice is answered once.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1
PREFIX = "wl:"
JOBS_STREAM = f"{PREFIX}jobs"
WORKERS_GROUP = "wl-workers"
DEAD_LETTER_STREAM = f"{PREFIX}jobs:dead"
DEAD_LETTER_MAXLEN = 10_000

# Job kinds.
RECOMMEND = "recommend"
MORE = "more"
LIKE = "like"
UNLIKE = "unlike"
LIKES = "likes"
GROUP_SUGGEST = "group_suggest"
FORGET = "forget"
KINDS = (RECOMMEND, MORE, LIKE, UNLIKE, LIKES, GROUP_SUGGEST, FORGET)

# Error codes a reply can carry; the bot turns each into a sentence for the user.
BAD_IMAGE = "bad_image"
EXPIRED = "expired"
FAILED = "failed"
NOTHING_LEFT = "nothing_left"
NO_RESULTS_YET = "no_results_yet"
UNKNOWN_DESTINATION = "unknown_destination"
NO_GROUP_TASTE = "no_group_taste"
PHOTO_GONE = "photo_gone"


def photo_key(job_id: str) -> str:
    return f"{PREFIX}photo:{job_id}"


def reply_key(instance: str) -> str:
    return f"{PREFIX}replies:{instance}"


def done_key(job_id: str) -> str:
    return f"{PREFIX}done:{job_id}"


def results_key(chat_id: int) -> str:
    return f"{PREFIX}results:{chat_id}"


def shown_key(chat_id: int, list_id: str) -> str:
    return f"{PREFIX}shown:{chat_id}:{list_id}"


def likes_key(chat_id: int, user_id: int) -> str:
    return f"{PREFIX}likes:{chat_id}:{user_id}"


def likers_key(chat_id: int) -> str:
    return f"{PREFIX}likers:{chat_id}"


def member_names_key(chat_id: int) -> str:
    return f"{PREFIX}names:{chat_id}"


def user_chats_key(user_id: int) -> str:
    return f"{PREFIX}userchats:{user_id}"


def query_vector_key(fingerprint: str, content_hash: str) -> str:
    return f"{PREFIX}qvec:{fingerprint}:{content_hash}"


def file_unique_key(file_unique_id: str) -> str:
    return f"{PREFIX}fuid:{file_unique_id}"


def health_key(consumer: str) -> str:
    return f"{PREFIX}health:{consumer}"


HEALTH_PATTERN = f"{PREFIX}health:*"


def telegram_file_key(destination_id: str, content_hash: str) -> str:
    return f"{PREFIX}tgfile:{destination_id}:{content_hash}"


def inflight_key(chat_id: int) -> str:
    return f"{PREFIX}inflight:{chat_id}"


def new_job_id() -> str:
    return uuid.uuid4().hex


class ProtocolError(ValueError):
    """A record that does not follow this protocol (another version, or missing fields)."""


@dataclass(frozen=True)
class Job:
    """A request to the worker. ``body`` holds the kind's own small arguments (never the photo itself)."""

    id: str
    kind: str
    chat_id: int
    user_id: int
    reply_to: str  # the submitting bot instance's reply list
    created: float
    deadline: float
    body: dict[str, Any] = field(default_factory=dict)
    version: int = SCHEMA_VERSION

    @classmethod
    def new(
        cls,
        kind: str,
        *,
        chat_id: int,
        user_id: int,
        reply_to: str,
        timeout: float,
        body: dict[str, Any] | None = None,
    ) -> Job:
        if kind not in KINDS:
            raise ValueError(f"unknown job kind. Received: kind={kind!r}")
        now = time.time()
        return cls(new_job_id(), kind, chat_id, user_id, reply_to, now, now + timeout, body or {})

    def to_fields(self) -> dict[str, str]:
        return {
            "v": str(self.version),
            "id": self.id,
            "kind": self.kind,
            "chat": str(self.chat_id),
            "user": str(self.user_id),
            "reply_to": self.reply_to,
            "created": repr(self.created),
            "deadline": repr(self.deadline),
            "body": json.dumps(self.body, separators=(",", ":")),
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes | str, bytes | str]) -> Job:
        text = {_text(k): _text(v) for k, v in fields.items()}
        try:
            version = int(text["v"])
            if version != SCHEMA_VERSION:
                raise ProtocolError(f"unsupported job schema. Received: v={version}")
            body = json.loads(text["body"])
            if not isinstance(body, dict):
                raise ProtocolError("job body must be a JSON object")
            return cls(
                id=text["id"],
                kind=text["kind"],
                chat_id=int(text["chat"]),
                user_id=int(text["user"]),
                reply_to=text["reply_to"],
                created=float(text["created"]),
                deadline=float(text["deadline"]),
                body=body,
                version=version,
            )
        except (KeyError, ValueError) as error:
            if isinstance(error, ProtocolError):
                raise
            raise ProtocolError(f"malformed job. Received: {sorted(text)}: {error}") from error

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) > self.deadline


@dataclass(frozen=True)
class Item:
    """One destination in a reply, with everything the bot needs to show it."""

    id: str
    name: str
    city: str
    country: str
    score: float
    image: str  # relative to the catalog folder
    image_hash: str
    credit: str = ""
    fits: tuple[str, ...] = ()  # group suggestions: the members it suits

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Item:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            city=str(data.get("city", "")),
            country=str(data.get("country", "")),
            score=float(data["score"]),
            image=str(data["image"]),
            image_hash=str(data.get("image_hash", "")),
            credit=str(data.get("credit", "")),
            fits=tuple(str(f) for f in data.get("fits", ())),
        )


@dataclass(frozen=True)
class Reply:
    """The worker's answer to one job; ``error`` is one of the codes above, or None on success."""

    job_id: str
    kind: str
    items: tuple[Item, ...] = ()
    error: str | None = None
    message: str | None = None  # a sentence for the user, where the worker knows better than the bot
    hints: tuple[str, ...] = ()  # what the photo looks like, best first
    remaining: int = 0  # how many results are left to page through with /more
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> str:
        data = asdict(self)
        data["items"] = [asdict(item) for item in self.items]
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Reply:
        try:
            data = json.loads(raw)
            if data.get("version") != SCHEMA_VERSION:
                raise ProtocolError(f"unsupported reply schema. Received: version={data.get('version')}")
            return cls(
                job_id=str(data["job_id"]),
                kind=str(data["kind"]),
                items=tuple(Item.from_dict(item) for item in data.get("items", ())),
                error=data.get("error"),
                message=data.get("message"),
                hints=tuple(str(h) for h in data.get("hints", ())),
                remaining=int(data.get("remaining", 0)),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, ProtocolError):
                raise
            raise ProtocolError(f"malformed reply: {error}") from error


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# Enqueue only while the stream is shorter than the cap, in one step, so that concurrent bots cannot overshoot.
# KEYS: stream, photo key (or "" for none). ARGV: cap, photo ttl, photo bytes (or ""), then field/value pairs.
SUBMIT_SCRIPT = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
if KEYS[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[2]))
end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
return redis.call('XADD', KEYS[1], '*', unpack(fields))
"""

# Answer a job exactly once and retire its stream entry: reply only if the idempotency key was not set yet,
# then acknowledge, then delete (never delete before the acknowledgement, or the entry lingers as pending).
# KEYS: done key, reply list, stream, photo key. ARGV: group, entry id, reply json, done ttl, reply ttl.
FINISH_SCRIPT = """
local first = redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[4]))
if first then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
end
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[4])
if first then return 1 else return 0 end
"""
