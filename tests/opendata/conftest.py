"""Fixtures for the catalog builder: the stand-in services, a client whose waits are recorded, build options."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opendata.build import BuildOptions
from opendata.http import ClientOptions, PoliteClient, RetryPolicy
from opendata.wikidata import PlaceQuery
from tests.opendata.standin import FakePlace, StandIn, serve, standard_places

CONTACT = "tests@example.org"
# Short enough that a deliberately slow answer times out at once, long enough for a loaded 2-core machine.
TEST_TIMEOUT = 2.0


@pytest.fixture
def places() -> list[FakePlace]:
    """Twelve places with free photos; a test changes some of them before the stand-in starts serving."""
    return standard_places(12)


@pytest.fixture
def standin(places: list[FakePlace]) -> Iterator[StandIn]:
    with serve(places) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    """Every wait the client asked for, in order, instead of spent."""
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., PoliteClient]]:
    made: list[PoliteClient] = []

    def make(*, tries: int = 4, timeout: float = TEST_TIMEOUT, max_total_wait: float = 300.0) -> PoliteClient:
        retry = RetryPolicy(tries=tries, base_delay=1.0, max_delay=30.0, max_total_wait=max_total_wait)
        client = PoliteClient(ClientOptions(contact=CONTACT, timeout=timeout, retry=retry), sleep=sleeps.append)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., PoliteClient]) -> PoliteClient:
    return make_client()


@pytest.fixture
def options(standin: StandIn, tmp_path: Path) -> BuildOptions:
    return BuildOptions(
        out=tmp_path / "catalog",
        query=PlaceQuery(limit=100, languages=("en", "de", "fr")),
        width=500,  # the smallest standard width whose 4:3 thumbnails pass the 256 px check: quick to draw
        sparql_endpoint=standin.sparql_url,
        commons_endpoint=standin.commons_url,
        progress=False,
    )
