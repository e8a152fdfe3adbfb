"""A polite HTTP client for Wikimedia: who we are, one request at a time, back off when asked.

Wikimedia's etiquette (User-Agent policy, API etiquette, the query service's limits): a descriptive User-Agent with a
way to reach the operator, requests one after another, ``maxlag`` on API batch jobs, and on 429 honour Retry-After
(ignoring it can earn a long ban). Tries and the total waiting are bounded, and the final error says so.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata

import httpx

from opendata.errors import HttpError, RateLimited, ResponseError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_DOWNLOAD_BYTES = 30 * 1024 * 1024  # a 1280 px thumbnail is well under 1 MB; anything this large is not one


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying: ``tries`` attempts in all, waits doubling from ``base_delay``."""

    tries: int = 5
    base_delay: float = 2.0
    max_delay: float = 60.0  # one back-off wait (a server's Retry-After may ask for more, within max_total_wait)
    max_total_wait: float = 300.0  # all waits of one request together

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise ValueError(f"RetryPolicy tries must be at least 1. Received: tries={self.tries}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_total_wait < 0:
            raise ValueError(f"RetryPolicy waits must not be negative. Received: {self}")

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based) when the server did not say how long."""
        return min(self.base_delay * 2 ** (attempt - 1), self.max_delay)


@dataclass(frozen=True)
class ClientOptions:
    contact: str  # an email address or URL: Wikimedia blocks anonymous clients and wants a way to reach you
    timeout: float = 60.0  # the query service itself stops a query at 60 s
    connect_timeout: float = 10.0
    min_interval: float = 0.0  # seconds between the starts of two requests (on top of one-at-a-time)
    retry: RetryPolicy = RetryPolicy()

    def __post_init__(self) -> None:
        if not self.contact.strip():
            raise ValueError(
                "a contact (email address or URL) is needed: Wikimedia asks every client to say who runs it. "
                "Received: contact=''"
            )


@dataclass(frozen=True)
class Reply:
    """A finished response: read whole, the connection already returned."""

    status: int
    headers: httpx.Headers
    content: bytes


def user_agent(contact: str) -> str:
    """``Wanderlens/0.1.0 (you@example.org) httpx/0.28.1``, the form Wikimedia's User-Agent policy asks for."""
    try:
        version = metadata.version("wanderlens")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        version = "0"
    return f"Wanderlens/{version} ({contact.strip()}) httpx/{httpx.__version__}"


class _Retry(Exception):
    """One attempt failed in a way worth trying again; ``wait`` is what the server asked for, if it said."""

    def __init__(self, reason: str, *, status: int | None = None, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.wait = wait


class PoliteClient:
    """GET JSON or bytes, sequentially, retrying 429/5xx/timeouts/garbled JSON with bounded back-off.

    ``sleep`` and ``clock`` are injectable so tests can see every wait without spending it.
    """

    def __init__(
        self,
        options: ClientOptions,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.options = options
        self._sleep = sleep
        self._clock = clock
        self._last_start: float | None = None
        self._http = httpx.Client(
            headers={"User-Agent": user_agent(options.contact)},
            timeout=httpx.Timeout(options.timeout, connect=options.connect_timeout),
            follow_redirects=True,
            transport=transport,
        )

    def __enter__(self) -> PoliteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get_json(
        self, url: str, params: Mapping[str, str] | None = None, *, accept: str = "application/json"
    ) -> object:
        """A JSON document; a MediaWiki ``maxlag`` answer is waited out like a 503."""

        def parse(reply: Reply) -> object:
            try:
                data = json.loads(reply.content)
            except ValueError as error:
                # Truncated bodies and HTML error pages from a proxy both land here, and both tend to pass.
                raise _Retry(f"malformed JSON ({error})") from None
            lag = _maxlag(data)
            if lag is not None:
                raise _Retry("the database is lagging (maxlag)", wait=_retry_after(reply.headers) or lag)
            return data

        return self._request(url, params, parse, accept=accept)

    def get_bytes(self, url: str, params: Mapping[str, str] | None = None) -> bytes:
        return self._request(url, params, lambda reply: reply.content, accept="image/*,*/*;q=0.8")

    def _request(
        self,
        url: str,
        params: Mapping[str, str] | None,
        parse: Callable[[Reply], object],
        *,
        accept: str,
    ) -> object:
        policy = self.options.retry
        waited = 0.0
        last = _Retry("no attempt made")
        for attempt in range(1, policy.tries + 1):
            try:
                return parse(self._once(url, params, accept))
            except _Retry as failure:
                last = failure
            if attempt == policy.tries:
                break
            wait = last.wait if last.wait is not None else policy.backoff(attempt)
            if waited + wait > policy.max_total_wait:
                asked = "the server asked to wait" if last.wait is not None else "the next back-off would be"
                raise RateLimited(
                    f"GET {url}: {last.reason}; {asked} {wait:g}s, more than the "
                    f"{policy.max_total_wait - waited:g}s of waiting left for this request. Stopped here: run the "
                    "same command later and it picks up where it stopped.",
                    url=url,
                    status=last.status,
                )
            self._sleep(wait)
            waited += wait
        error = RateLimited if last.status == 429 else HttpError
        raise error(
            f"GET {url}: still failing after {policy.tries} tries ({last.reason}). The service may be down or "
            "limiting this address: run the same command later and it picks up where it stopped.",
            url=url,
            status=last.status,
        )

    def _once(self, url: str, params: Mapping[str, str] | None, accept: str) -> Reply:
        self._pace()
        try:
            with self._http.stream("GET", url, params=params, headers={"Accept": accept}) as response:
                if response.status_code in RETRY_STATUSES:
                    raise _Retry(
                        f"HTTP {response.status_code}", status=response.status_code, wait=_retry_after(response.headers)
                    )
                if response.status_code >= 400:
                    raise HttpError(f"GET {url}: HTTP {response.status_code}", url=url, status=response.status_code)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_DOWNLOAD_BYTES:
                        raise ResponseError(f"GET {url}: more than {MAX_DOWNLOAD_BYTES} bytes; not a thumbnail")
                return Reply(response.status_code, response.headers, bytes(body))
        except httpx.TimeoutException as error:
            raise _Retry(f"timed out ({type(error).__name__})") from None
        except httpx.TransportError as error:
            raise _Retry(f"connection failed ({type(error).__name__}: {error})") from None

    def _pace(self) -> None:
        now = self._clock()
        if self._last_start is not None and self.options.min_interval > 0:
            gap = self.options.min_interval - (now - self._last_start)
            if gap > 0:
                self._sleep(gap)
                now = self._clock()
        self._last_start = now


def _retry_after(headers: httpx.Headers) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date (RFC 9110 §10.2.3)."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _maxlag(data: object) -> float | None:
    """MediaWiki answers ``{"error": {"code": "maxlag", "lag": 7, ...}}`` (HTTP 200) when replicas lag behind."""
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("code") == "maxlag":
            lag = error.get("lag")
            return float(lag) if isinstance(lag, int | float) else 5.0
    return None
