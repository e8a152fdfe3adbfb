"""The polite client against the stand-in: who it says it is, how it retries and waits (recorded, never spent)."""

from __future__ import annotations

import email.utils
import re
import time

import httpx
import pytest

from opendata.errors import HttpError, RateLimited
from opendata.http import ClientOptions, PoliteClient, RetryPolicy, _retry_after, user_agent
from tests.opendata.standin import FakePlace, Fault, StandIn

GOOD = {"head": {"vars": ["item", "coord", "image", "country", "iso", "links", "city"]}, "results": {"bindings": []}}


@pytest.fixture
def places() -> list[FakePlace]:
    return []  # these tests are about the exchange, not the content: an empty answer is easy to compare


def test_user_agent_names_the_product_the_contact_and_the_library(standin: StandIn, client) -> None:
    client.get_json(standin.sparql_url, {"query": "SELECT"})
    agent = standin.requests("sparql")[0].user_agent
    assert re.fullmatch(r"Wanderlens/\S+ \(tests@example\.org\) httpx/\S+", agent), agent
    assert agent == user_agent("tests@example.org")


def test_a_contact_is_required() -> None:
    with pytest.raises(ValueError, match="contact"):
        ClientOptions(contact="  ")


def test_429_with_retry_after_is_waited_out_then_succeeds(standin: StandIn, client, sleeps) -> None:
    standin.fail("sparql", Fault(status=429, retry_after="7"), Fault(status=429, retry_after="3"))
    assert client.get_json(standin.sparql_url, {"query": "SELECT"}) == GOOD
    assert sleeps == [7.0, 3.0]  # what the server asked for, not the client's own back-off
    assert len(standin.requests("sparql")) == 3


def test_503_backs_off_exponentially(standin: StandIn, client, sleeps) -> None:
    standin.fail("commons", Fault(status=503), Fault(status=503), Fault(status=502))
    client.get_json(standin.commons_url, {"action": "query"})
    assert sleeps == [1.0, 2.0, 4.0]


def test_a_slow_answer_times_out_and_is_retried(standin: StandIn, make_client, sleeps) -> None:
    client = make_client(timeout=0.3)
    standin.fail("sparql", Fault(delay=5.0))
    assert client.get_json(standin.sparql_url, {"query": "SELECT"}) == GOOD
    assert sleeps == [1.0] and len(standin.requests("sparql")) == 2


def test_malformed_json_is_retried(standin: StandIn, client, sleeps) -> None:
    standin.fail("sparql", Fault(body=b'{"head": {"vars": []}, "results": {"bind'))
    assert client.get_json(standin.sparql_url, {"query": "SELECT"}) == GOOD
    assert sleeps == [1.0]


def test_maxlag_is_waited_out_for_as_long_as_the_api_says(standin: StandIn, client, sleeps) -> None:
    lagging = b'{"error": {"code": "maxlag", "info": "Waiting for db1: 6 seconds lagged", "lag": 6}}'
    standin.fail("commons", Fault(body=lagging))
    client.get_json(standin.commons_url, {"action": "query"})
    assert sleeps == [6.0]


def test_the_tries_are_bounded_and_the_error_says_what_to_do(standin: StandIn, make_client, sleeps) -> None:
    client = make_client(tries=3)
    standin.fail("sparql", *[Fault(body=b"<html>oops</html>")] * 5)
    with pytest.raises(HttpError, match="still failing after 3 tries") as caught:
        client.get_json(standin.sparql_url, {"query": "SELECT"})
    assert "run the same command later" in str(caught.value)
    assert len(standin.requests("sparql")) == 3 and sleeps == [1.0, 2.0]


def test_endless_429_is_a_rate_limit_error(standin: StandIn, make_client, sleeps) -> None:
    client = make_client(tries=3)
    standin.fail("sparql", *[Fault(status=429, retry_after="2")] * 5)
    with pytest.raises(RateLimited):
        client.get_json(standin.sparql_url, {"query": "SELECT"})
    assert sleeps == [2.0, 2.0]


def test_a_retry_after_beyond_the_waiting_budget_stops_at_once(standin: StandIn, make_client, sleeps) -> None:
    client = make_client(max_total_wait=60.0)
    standin.fail("sparql", Fault(status=429, retry_after="3600"))
    with pytest.raises(RateLimited, match="asked to wait 3600s"):
        client.get_json(standin.sparql_url, {"query": "SELECT"})
    assert sleeps == []  # never sleeps an hour, never asks again early
    assert len(standin.requests("sparql")) == 1


def test_a_client_error_is_not_retried(standin: StandIn, client, sleeps) -> None:
    with pytest.raises(HttpError) as caught:
        client.get_bytes(f"{standin.base}/thumb/Nothing.jpg/500px-Nothing.jpg")
    assert caught.value.status == 404
    assert sleeps == [] and len(standin.requests("thumb")) == 1


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert _retry_after(httpx.Headers({"Retry-After": later})) == pytest.approx(120, abs=2)
    assert _retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert _retry_after(httpx.Headers({})) is None


def test_retry_policy_backoff_is_capped() -> None:
    policy = RetryPolicy(tries=10, base_delay=2.0, max_delay=10.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    with pytest.raises(ValueError, match="Received:"):
        RetryPolicy(tries=0)


def test_requests_are_paced_by_the_clock(standin: StandIn) -> None:
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    options = ClientOptions(contact="tests@example.org", min_interval=0.5)
    with PoliteClient(options, sleep=sleep, clock=lambda: now[0]) as client:
        client.get_json(standin.sparql_url, {"query": "SELECT"})
        now[0] += 0.2  # the caller spent 0.2 s between two requests: only the rest of the gap is waited
        client.get_json(standin.sparql_url, {"query": "SELECT"})
        client.get_json(standin.sparql_url, {"query": "SELECT"})
    assert waits == pytest.approx([0.3, 0.5])
