"""Reading Bot API parameters the way Telegram does: from the query string, a JSON body, a URL-encoded
form or multipart/form-data.

python-telegram-bot sends a URL-encoded form (every non-string value JSON-encoded) and switches to
multipart when it uploads files; ``reply_markup``, ``media`` and the like then arrive as JSON strings.
``ApiParams`` hides those differences behind typed getters that fail with Telegram's 400s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from playground.wire import JSON

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class ApiError(Exception):
    """A Bot API error response: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(message: str) -> ApiError:
    return ApiError(400, f"Bad Request: {message}")


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request."""

    field_name: str
    filename: str | None
    content_type: str | None
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class ApiParams:
    """A request's parameters: plain values (strings, or typed values from a JSON body) and file parts."""

    values: Mapping[str, Any]
    files: Mapping[str, UploadedFile] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.values or name in self.files

    def get_str(self, name: str, *, required: bool = False) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request("message text is empty" if name == "text" else f"{name} is empty")
            return None if value is None else ""
        return value if isinstance(value, str) else str(value)

    def get_int(self, name: str, *, required: bool = False, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified: {value!r}") from None

    def get_float(self, name: str, *, default: float) -> float:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified: {value!r}") from None

    def get_bool(self, name: str, *, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise bad_request(f"invalid {name} specified: {value!r}")

    def get_json(self, name: str) -> Any:
        """A structured parameter: already parsed in a JSON body, a JSON string in forms."""
        value = self.values.get(name)
        if not isinstance(value, str):
            return value
        if value == "":
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise bad_request(f"can't parse {name} JSON object") from None

    def file_or_str(self, name: str) -> UploadedFile | str | None:
        """An InputFile parameter: a file part under ``name``, or a string (file_id, URL, attach://)."""
        if name in self.files:
            return self.files[name]
        value = self.get_str(name)
        return self.attachment(value) if value and value.startswith("attach://") else value

    def attachment(self, reference: str) -> UploadedFile | str:
        """Resolves ``attach://<name>`` to its file part; other strings pass through."""
        if not reference.startswith("attach://"):
            return reference
        part = self.files.get(reference.removeprefix("attach://"))
        if part is None:
            raise bad_request(f"wrong file identifier/HTTP URL specified: no part for {reference}")
        return part


async def read_params(request: web.Request) -> ApiParams:
    """Collects a Bot API request's parameters from wherever the client put them."""
    values: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("JSON object expected")
            values.update(body)
        else:
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    files[name] = UploadedFile(name, value.filename, value.content_type, value.file.read())
                else:
                    values[name] = value
    return ApiParams(values, files)
