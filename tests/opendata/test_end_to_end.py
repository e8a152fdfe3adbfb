"""From open data to an answer: build a catalog from the stand-in, index it with the real model, query it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.opendata.standin import StandIn, scene
from wanderlens.cli import main

pytestmark = pytest.mark.slow


def test_a_built_catalog_indexes_and_answers_with_destination_names(standin: StandIn, tmp_path: Path, capsys) -> None:
    catalog, index = tmp_path / "catalog", tmp_path / "index"
    common = ["--width", "500", "--no-progress", "--pace", "0", "--contact", "tests@example.org"]
    endpoints = ["--endpoint-sparql", standin.sparql_url, "--endpoint-commons", standin.commons_url]
    assert main(["catalog", "build", "--out", str(catalog), *common, *endpoints]) == 0
    assert main(["index", str(catalog), "--out", str(index), "--no-progress"]) == 0
    assert "12 destinations" in capsys.readouterr().out

    target = standin.places[7]  # the Acropolis: its own scene, drawn again at another size, is the query
    query = tmp_path / "query.jpg"
    scene(target.file.seed, 720, 540).save(query, quality=80)
    assert main(["query", str(query), "--index", str(index), "-k", "3"]) == 0
    ranking = [line for line in capsys.readouterr().out.splitlines() if re.match(r"^\s*\d+\. ", line)]
    assert len(ranking) == 3
    assert target.labels["en"] in ranking[0] and "Italy" in ranking[0]
    names = {p.labels["en"] for p in standin.places}
    for line in ranking:  # every line names a destination, never a file or a Q-id
        assert any(name in line for name in names), line
        assert not re.search(r"\bQ\d+\b|\.jpg", line), line


async def test_a_built_catalog_serves_an_album_through_the_bot(
    standin: StandIn, tmp_path: Path, redis, redis_server, default_extractor
) -> None:
    from recommender.catalog import load_catalog
    from recommender.index_build import build_index
    from tests.system import running_system

    catalog, index = tmp_path / "catalog", tmp_path / "index"
    common = ["--width", "500", "--no-progress", "--pace", "0", "--contact", "tests@example.org"]
    endpoints = ["--endpoint-sparql", standin.sparql_url, "--endpoint-commons", standin.commons_url]
    assert main(["catalog", "build", "--out", str(catalog), *common, *endpoints]) == 0
    build_index(load_catalog(catalog), default_extractor, index, progress=False)
    target = standin.places[7]
    query = tmp_path / "query.jpg"
    scene(target.file.seed, 720, 540).save(query, quality=80)
    async with running_system(
        redis=redis, redis_server=redis_server, catalog=catalog, index_dir=index, extractor=default_extractor
    ) as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        system.stand_in.set_language(alice, "de")
        album, _ = await system.photo(chat, alice, query.read_bytes())
        assert album.kind == "media_group"
        first = album.captions[0] or ""
        # The German label from Wikidata, the country as German writes it, and the photo's author and licence.
        assert first.startswith(f"1. {target.labels['de']}") and "Italien" in first, first
        assert "📷 " in first and "CC" in first, first
