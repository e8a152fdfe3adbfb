"""The one way jobs and replies become JSON and back: versioned, strict, and never trusting what it reads.

A job is a Redis stream entry (flat string fields, the request's own fields as one JSON object); a reply is one
JSON document on the bot instance's reply list. Decoding checks the version, the kind, every field's type and
that the outcome fits the kind; anything else raises ``ProtocolError`` naming what was wrong, which the worker
records in the dead-letter stream. Nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
from enum import StrEnum
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from contract import messages as m

SCHEMA_VERSION = 2
# Bounds on what a decoder accepts, so that a hostile or broken entry cannot make it allocate much.
MAX_JOB_BODY_BYTES = 4096
MAX_REPLY_BYTES = 1 << 20

_OUTCOME_TAGS: dict[type[m.Outcome], str] = {
    m.Album: "album",
    m.Liked: "liked",
    m.LikedPlaces: "liked_places",
    m.Forgotten: "forgotten",
    m.Located: "located",
    m.RegionFound: "region_found",
    m.Failure: "failure",
}
_OUTCOME_OF_TAG = {tag: cls for cls, tag in _OUTCOME_TAGS.items()}

T = TypeVar("T")


class ProtocolError(ValueError):
    """A record that does not follow this protocol (another version, a missing or mistyped field)."""


# --------------------------------------------------------------------------------------------- jobs


def job_fields(job: m.Job) -> dict[str, str]:
    """The stream entry's fields."""
    return {
        "v": str(SCHEMA_VERSION),
        "id": job.id,
        "kind": job.kind.value,
        "chat": str(job.chat_id),
        "user": str(job.user_id),
        "reply_to": job.reply_to,
        "created": repr(job.created),
        "deadline": repr(job.deadline),
        "body": _dumps(_plain(job.request)),
    }


def job_from_fields(fields: dict[bytes, bytes] | dict[str, str]) -> m.Job:
    """The job in a stream entry; raises ProtocolError when it is not one this version can serve."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    missing = sorted({"v", "id", "kind", "chat", "user", "reply_to", "created", "deadline", "body"} - set(text))
    if missing:
        raise ProtocolError(f"job lacks field(s) {', '.join(missing)}")
    if text["v"] != str(SCHEMA_VERSION):
        raise ProtocolError(f"unsupported job schema {text['v']!r} (this worker reads {SCHEMA_VERSION})")
    try:
        kind = m.JobKind(text["kind"])
    except ValueError:
        raise ProtocolError(f"unknown job kind {text['kind']!r}") from None
    if len(text["body"]) > MAX_JOB_BODY_BYTES:
        raise ProtocolError(f"job body over {MAX_JOB_BODY_BYTES} bytes")
    try:
        chat_id, user_id = int(text["chat"]), int(text["user"])
        created, deadline = float(text["created"]), float(text["deadline"])
    except ValueError as error:
        raise ProtocolError(f"job envelope: {error}") from None
    if not text["id"] or not text["reply_to"]:
        raise ProtocolError("job id and reply_to must not be empty")
    request = _decode(m.REQUEST_OF[kind], _loads(text["body"]), "body")
    return m.Job(text["id"], chat_id, user_id, text["reply_to"], created, deadline, request)


# --------------------------------------------------------------------------------------------- replies


def reply_json(reply: m.Reply) -> str:
    outcome = {"type": _OUTCOME_TAGS[type(reply.outcome)], **_plain(reply.outcome)}
    return _dumps({"v": SCHEMA_VERSION, "job_id": reply.job_id, "kind": reply.kind.value, "outcome": outcome})


def reply_from_json(raw: bytes | str) -> m.Reply:
    if len(raw) > MAX_REPLY_BYTES:
        raise ProtocolError(f"reply over {MAX_REPLY_BYTES} bytes")
    data = _loads(raw)
    if data.get("v") != SCHEMA_VERSION:
        raise ProtocolError(f"unsupported reply schema {data.get('v')!r} (this bot reads {SCHEMA_VERSION})")
    try:
        kind = m.JobKind(data.get("kind"))
    except ValueError:
        raise ProtocolError(f"unknown reply kind {data.get('kind')!r}") from None
    job_id = data.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise ProtocolError("reply.job_id must be a non-empty string")
    outcome_data = data.get("outcome")
    if not isinstance(outcome_data, dict):
        raise ProtocolError("reply.outcome must be an object")
    fields = dict(outcome_data)
    outcome_type = _OUTCOME_OF_TAG.get(fields.pop("type", None))
    if outcome_type is None:
        raise ProtocolError(f"unknown outcome {outcome_data.get('type')!r}")
    if outcome_type is not m.Failure and outcome_type not in m.OUTCOMES[kind]:
        raise ProtocolError(f"a {kind} job cannot have the outcome {outcome_data.get('type')!r}")
    return m.Reply(job_id, kind, _decode(outcome_type, fields, "outcome"))


# --------------------------------------------------------------------------------------------- stored values


def location_json(location: m.Location) -> str:
    """A person's shared location as stored in Redis (``keys.user_location``)."""
    return _dumps(_plain(location))


def location_from_json(raw: bytes | str) -> m.Location:
    return _decode(m.Location, _loads(raw), "location")


# --------------------------------------------------------------------------------------------- strict decoding


def _decode(cls: type[T], data: Any, path: str) -> T:
    """A dataclass from a JSON object, checking every field's type against the class's annotations."""
    if not isinstance(data, dict):
        raise ProtocolError(f"{path} must be an object, not {type(data).__name__}")
    hints = _field_types(cls)
    values = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in data:
            values[field.name] = _value(hints[field.name], data[field.name], f"{path}.{field.name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ProtocolError(f"{path}.{field.name} is missing")
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
    if unknown:
        raise ProtocolError(f"{path} has unknown field(s) {', '.join(unknown)}")
    return cls(**values)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """The class's annotations, resolved once: resolving them (they are strings here) costs more than decoding."""
    return get_type_hints(cls)


def _value(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _value(inner, value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ProtocolError(f"{path} must be a list")
        (inner, _) = get_args(tp)
        return tuple(_value(inner, v, f"{path}[{n}]") for n, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _decode(tp, value, path)  # type: ignore[arg-type]
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        try:
            return tp(value)
        except ValueError:
            raise ProtocolError(f"{path}: unknown value {value!r}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ProtocolError(f"{path} must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"{path} must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"{path} must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ProtocolError(f"{path} must be a string")
        return value
    raise TypeError(f"the codec cannot decode {tp!r} ({path})")  # a bug in messages.py, not bad input


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` for messages: the same JSON in about half the time (a worker writes one per photo).

    ``asdict`` deep-copies every leaf and rebuilds every tuple; a message holds only frozen dataclasses, tuples
    and immutable leaves, which can be used as they are (a tuple becomes a list, which JSON writes alike)."""
    names = _field_names(type(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    return tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _loads(raw: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ProtocolError("must be a JSON object")
    return data


def _text(value: bytes | str) -> str:
    try:
        return value.decode() if isinstance(value, bytes) else value
    except UnicodeDecodeError:
        raise ProtocolError("a field is not UTF-8") from None
