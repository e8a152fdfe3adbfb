"""The imageinfo request and its formatversion=2 answer: batches of 50, renamed and missing titles, licence, author."""

from __future__ import annotations

import pytest

from opendata.commons import fetch_file_infos, parse_imageinfo, request_params, strip_html
from opendata.errors import ResponseError
from tests.opendata.standin import FakeFile, FakePlace, StandIn


def test_request_asks_for_what_the_catalog_needs() -> None:
    params = request_params(["Lake Bled.jpg", "Colosseo.jpg"], 960)
    assert params["titles"] == "File:Lake Bled.jpg|File:Colosseo.jpg"
    assert params["iiprop"] == "url|extmetadata|mime|size"
    assert params["iiurlwidth"] == "960"
    assert set(params["iiextmetadatafilter"].split("|")) >= {"Artist", "LicenseShortName", "LicenseUrl", "NonFree"}
    assert (params["format"], params["formatversion"], params["maxlag"]) == ("json", "2", "5")


@pytest.mark.parametrize(("names", "width"), [([], 960), (["x.jpg"] * 51, 960), (["x.jpg"], 800)])
def test_request_limits(names: list[str], width: int) -> None:
    with pytest.raises(ValueError, match="Received:"):
        request_params(names, width)


def test_parse_a_real_shaped_answer() -> None:
    data = {
        "batchcomplete": True,
        "query": {
            "normalized": [{"fromencoded": False, "from": "File:lake_bled.jpg", "to": "File:Lake bled.jpg"}],
            "pages": [
                {"ns": 6, "title": "File:Gone.jpg", "missing": True, "known": False},
                {
                    "pageid": 7,
                    "ns": 6,
                    "title": "File:Lake bled.jpg",
                    "imagerepository": "local",
                    "imageinfo": [
                        {
                            "size": 2_000_000,
                            "width": 4000,
                            "height": 3000,
                            "thumburl": "https://upload.wikimedia.org/wikipedia/commons/thumb/a/ab/Lake_bled.jpg/960px-Lake_bled.jpg",
                            "thumbwidth": 960,
                            "thumbheight": 720,
                            "url": "https://upload.wikimedia.org/wikipedia/commons/a/ab/Lake_bled.jpg",
                            "descriptionurl": "https://commons.wikimedia.org/wiki/File:Lake_bled.jpg",
                            "extmetadata": {
                                "Artist": {
                                    "value": '<a href="//commons.wikimedia.org/wiki/User:JD" title="User:JD">'
                                    "Jane&nbsp;Doe</a>\n&amp; friends",
                                    "source": "commons-desc-page",
                                },
                                "LicenseShortName": {"value": "CC BY-SA 4.0", "hidden": ""},
                                "LicenseUrl": {"value": "//creativecommons.org/licenses/by-sa/4.0"},
                            },
                            "mime": "image/jpeg",
                        }
                    ],
                },
            ],
        },
    }
    infos = parse_imageinfo(data, ["lake_bled.jpg", "Gone.jpg", "Never asked about.jpg"])
    bled = infos["lake_bled.jpg"]  # found under the name Commons normalised it to
    assert not bled.missing
    assert bled.artist == "Jane Doe & friends"
    assert bled.licence == "CC BY-SA 4.0" and bled.licence_url == "https://creativecommons.org/licenses/by-sa/4.0"
    assert (bled.thumb_width, bled.thumb_height, bled.mime) == (960, 720, "image/jpeg")
    assert bled.thumb_url.endswith("960px-Lake_bled.jpg")
    assert bled.page_url == "https://commons.wikimedia.org/wiki/File:Lake_bled.jpg"
    assert not bled.non_free
    assert infos["Gone.jpg"].missing and infos["Never asked about.jpg"].missing


def test_an_api_error_is_reported() -> None:
    with pytest.raises(ResponseError, match="badtitle"):
        parse_imageinfo({"error": {"code": "badtitle", "info": "Bad title"}}, ["x.jpg"])


def test_html_is_stripped_to_text() -> None:
    assert strip_html("<span>Photo by <b>Anna</b><br>Müller</span><style>.x{}</style>") == "Photo by Anna Müller"


@pytest.fixture
def places() -> list[FakePlace]:
    return [
        FakePlace(qid=f"Q{n}", labels={"en": f"P{n}"}, lat=0, lon=0, file=FakeFile(f"File number {n}.jpg", seed=n))
        for n in range(1, 61)
    ]


def test_sixty_files_take_two_requests_of_at_most_fifty(standin: StandIn, client) -> None:
    names = [p.file.name for p in standin.places] + ["Not there.jpg"]
    infos = fetch_file_infos(client, standin.commons_url, names, 500)
    requests = standin.requests("commons")
    assert [len(r.params["titles"].split("|")) for r in requests] == [50, 11]
    assert all(r.params["maxlag"] == "5" for r in requests)
    assert infos["Not there.jpg"].missing
    assert infos["File number 7.jpg"].artist == "Jane Doe" and infos["File number 7.jpg"].thumb_width == 500
