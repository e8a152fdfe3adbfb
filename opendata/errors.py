"""The errors of a catalog build: one tree, by cause, each message saying what to do."""

from __future__ import annotations


class OpenDataError(Exception):
    """A catalog build cannot go on; the message says why and what to do. Photos already written are kept."""


class HttpError(OpenDataError):
    """A request failed for good: refused (4xx), or still failing after every try."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class RateLimited(HttpError):
    """Still answered 429 (or asked for a longer wait than allowed) after every try: stop, don't push on."""


class ResponseError(OpenDataError):
    """A service answered, but not in the shape it documents (or with an API error)."""
