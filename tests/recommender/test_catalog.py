"""Tests for recommender.catalog: catalog.csv (every column, aliases, every row problem) and bare folders."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from PIL import Image

from recommender.catalog import (
    CATALOG_CSV,
    Catalog,
    CatalogError,
    CatalogProblem,
    Destination,
    id_from_path,
    load_catalog,
    name_from_filename,
    parse_columns,
)
from tests.conftest import shared_dataset


def photo(path: Path, colour: tuple[int, int, int] = (10, 120, 200)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def write_csv(folder: Path, rows: list[list[str]], *, text: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if text is None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        text = buffer.getvalue()
    (folder / CATALOG_CSV).write_text(text, encoding="utf-8")
    return folder


def problems_by_line(catalog: Catalog) -> dict[int | None, str]:
    return {p.line: p.message for p in catalog.problems}


def test_every_column(tmp_path):
    photo(tmp_path / "photos" / "bled.jpg")
    photo(tmp_path / "kyoto.png")
    write_csv(
        tmp_path,
        [
            ["id", "image", "name", "city", "country", "lat", "lon", "description", "tags", "credit", "licence"],
            ["bled", "photos/bled.jpg", "Lake Bled", "Bled", "Slovenia", "46.3625", "14.0936", "An island church.",
             "lake; church |alps,", "A. Photographer", "CC BY 2.0"],
            ["kyoto-1", "kyoto.png", "Fushimi Inari", "Kyoto", "Japan", "-34.9", "-180", "", "", "", ""],
        ],
    )  # fmt: skip

    catalog = load_catalog(tmp_path)

    assert catalog.problems == ()
    assert catalog.root == tmp_path
    assert len(catalog) == 2
    bled, kyoto = catalog.destinations
    assert bled == Destination(
        id="bled",
        image="photos/bled.jpg",
        name="Lake Bled",
        city="Bled",
        country="Slovenia",
        lat=46.3625,
        lon=14.0936,
        description="An island church.",
        tags=("lake", "church", "alps"),
        credit="A. Photographer",
        licence="CC BY 2.0",
    )
    assert bled.place == "Bled, Slovenia"
    assert (kyoto.lat, kyoto.lon, kyoto.tags, kyoto.credit) == (-34.9, -180.0, (), "")
    assert catalog.image_path(bled) == tmp_path / "photos" / "bled.jpg"
    assert catalog.lines == {"bled": 2, "kyoto-1": 3}
    assert catalog.problem(kyoto, "unreadable") == CatalogProblem(3, "kyoto-1", "unreadable")
    assert str(catalog.problem(kyoto, "unreadable")) == "catalog.csv line 3: kyoto-1: unreadable"
    assert Destination.from_dict(bled.to_dict()) == bled
    assert Destination.from_dict(kyoto.to_dict()) == kyoto


def test_only_the_image_column(tmp_path):
    photo(tmp_path / "old town" / "Dubrovnik_walls-2.jpg")
    write_csv(tmp_path, [["image"], ["old town/Dubrovnik_walls-2.jpg"], ["old town\\Dubrovnik_walls-2.jpg"]])

    catalog = load_catalog(tmp_path)

    (only,) = catalog.destinations
    assert only.id == "old-town-Dubrovnik_walls-2"
    assert only.name == "Dubrovnik walls 2"
    assert only.image == "old town/Dubrovnik_walls-2.jpg"
    assert (only.lat, only.lon, only.place) == (None, None, "")
    # The Windows spelling of the same path is the same id, so a duplicate.
    assert problems_by_line(catalog) == {3: "duplicate id (first used on line 2)"}


def test_header_aliases_in_any_order_and_case(tmp_path):
    photo(tmp_path / "a.jpg")
    write_csv(
        tmp_path,
        [
            [" Creator", "LONGITUDE", "Latitude ", "path", "Title", "Place", "License", "country"],
            ["Jo", "2.35", "48.85", "a.jpg", "Paris", "Paris", "CC0", "France"],
        ],
    )
    (paris,) = load_catalog(tmp_path).destinations
    assert (paris.credit, paris.lon, paris.lat, paris.image, paris.name, paris.city, paris.licence) == (
        "Jo", 2.35, 48.85, "a.jpg", "Paris", "Paris", "CC0",
    )  # fmt: skip


@pytest.mark.parametrize("image_column", ["file", "photo"])
def test_more_image_aliases_and_a_byte_order_mark(tmp_path, image_column):
    photo(tmp_path / "a.jpg")
    write_csv(tmp_path, [], text=f"\ufeff{image_column},lng\na.jpg,-0.5\n")
    (only,) = load_catalog(tmp_path).destinations
    assert (only.image, only.lon) == ("a.jpg", -0.5)


def test_bare_folder(tmp_path):
    photo(tmp_path / "lake_bled.jpg")
    photo(tmp_path / "Asia" / "Japan" / "mount-fuji.JPEG")
    photo(tmp_path / "zurich.png")
    photo(tmp_path / ".hidden.jpg")
    photo(tmp_path / ".thumbnails" / "lake_bled.jpg")
    photo(tmp_path / "Asia" / ".cache" / "x.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "folder.jpg").mkdir()  # a folder with a photo's name

    catalog = load_catalog(tmp_path)

    assert [d.image for d in catalog.destinations] == ["Asia/Japan/mount-fuji.JPEG", "lake_bled.jpg", "zurich.png"]
    assert [d.id for d in catalog.destinations] == ["Asia-Japan-mount-fuji", "lake_bled", "zurich"]
    assert [d.name for d in catalog.destinations] == ["Mount fuji", "Lake bled", "Zurich"]
    assert catalog.problems == ()
    assert catalog.lines == {}
    assert str(catalog.problem(catalog.destinations[0], "x")) == "folder: Asia-Japan-mount-fuji: x"


def test_bare_folder_with_two_photos_of_one_id(tmp_path):
    photo(tmp_path / "rome.jpg")
    photo(tmp_path / "rome.png")

    catalog = load_catalog(tmp_path)

    assert [d.image for d in catalog.destinations] == ["rome.jpg"]
    assert catalog.problems == (CatalogProblem(None, "rome", "duplicate id"),)


def test_every_row_problem_is_reported_with_its_line(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        photo(tmp_path / "cat" / name)
    photo(tmp_path / "outside.jpg")
    rows = [
        ["id", "image", "name", "lat", "lon"],  # line 1
        ["a", "a.jpg", "A", "10", "20"],  # 2: fine
        ["gone", "missing.jpg", "Gone", "", ""],  # 3
        ["a", "b.jpg", "Another A", "", ""],  # 4: duplicate of line 2
        ["c", "c.jpg", "C", "ninety", ""],  # 5
        ["c2", "c.jpg", "C", "", "180.5"],  # 6
        ["c3", "c.jpg", "C", "-90.01", ""],  # 7
        ["esc", "../outside.jpg", "Escape", "", ""],  # 8
        ["abs", str(tmp_path / "outside.jpg"), "Absolute", "", ""],  # 9
        ["few", "d.jpg"],  # 10: two columns of five
        ["many", "d.jpg", "D", "1", "2", "extra"],  # 11
        ["empty", "  ", "Empty", "", ""],  # 12
        ["bad id!", "d.jpg", "D", "", ""],  # 13
        ["d", "d.jpg", "D", "nan", ""],  # 14
        ["a", "d.jpg", "Third A", "", ""],  # 15: duplicate of line 2 again
        ["sneaky", "sub/../../outside.jpg", "Sneaky", "", ""],  # 16
        ["ok", "d.jpg", "D", "-90", "-180"],  # 17: fine, on the limits
    ]
    write_csv(tmp_path / "cat", rows)

    catalog = load_catalog(tmp_path / "cat")

    assert [d.id for d in catalog.destinations] == ["a", "ok"]
    assert catalog.destinations[0].name == "A"  # the first row of an id is kept
    assert problems_by_line(catalog) == {
        3: "image file not found: missing.jpg",
        4: "duplicate id (first used on line 2)",
        5: "lat is not a number: 'ninety'",
        6: "lon must be between -180 and 180: 180.5",
        7: "lat must be between -90 and 90: -90.01",
        8: "the image path leaves the catalog folder",
        9: "the image path leaves the catalog folder",
        10: "expected 5 columns, found 2",
        11: "expected 5 columns, found 6",
        12: "the image column is empty",
        13: "id must be 1-128 letters, digits, '_', '.', ':' or '-'",
        14: "lat must be between -90 and 90: nan",
        15: "duplicate id (first used on line 2)",
        16: "the image path leaves the catalog folder",
    }
    assert [p.line for p in catalog.problems] == sorted(p.line for p in catalog.problems)
    assert {p.line: p.item for p in catalog.problems}[3] == "gone"
    assert {p.line: p.item for p in catalog.problems}[12] == "empty"
    assert catalog.lines == {"a": 2, "ok": 17}
    assert str(catalog.problems[0]) == "catalog.csv line 3: gone: image file not found: missing.jpg"


def test_blank_lines_are_skipped_and_do_not_shift_line_numbers(tmp_path):
    photo(tmp_path / "a.jpg")
    write_csv(tmp_path, [], text="id,image\n\n  ,  \na,a.jpg\n\nb,nope.jpg\n")

    catalog = load_catalog(tmp_path)

    assert [d.id for d in catalog.destinations] == ["a"]
    assert catalog.lines == {"a": 4}
    assert problems_by_line(catalog) == {6: "image file not found: nope.jpg"}


def test_a_symlinked_photo_counts_as_inside(tmp_path):
    outside = photo(tmp_path / "elsewhere" / "real.jpg")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "linked.jpg").symlink_to(outside)
    write_csv(tmp_path / "cat", [["image"], ["linked.jpg"]])

    (only,) = load_catalog(tmp_path / "cat").destinations
    assert only.image == "linked.jpg"


def test_unusable_catalogs_raise(tmp_path):
    with pytest.raises(CatalogError, match="catalog folder not found"):
        load_catalog(tmp_path / "nope")

    photo(tmp_path / "a.jpg")
    with pytest.raises(CatalogError, match=r"needs an 'image' column.*Received: columns=\['id', 'name'\]"):
        load_catalog(write_csv(tmp_path, [["id", "name"], ["a", "A"]]))

    with pytest.raises(CatalogError, match=r"catalog\.csv is empty"):
        load_catalog(write_csv(tmp_path, [], text=""))

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no photos here")
    with pytest.raises(CatalogError, match=r"no usable destinations \(no photos found\)"):
        load_catalog(empty)


def test_an_all_bad_catalog_raises_with_its_problems(tmp_path):
    write_csv(tmp_path, [["id", "image"], ["a", "a.jpg"], ["b", "../b.jpg"]])
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    message = str(caught.value)
    assert "catalog.csv line 2: a: image file not found: a.jpg" in message
    assert "catalog.csv line 3: b: the image path leaves the catalog folder" in message
    assert message.endswith(f"Received: {tmp_path}")


@pytest.mark.parametrize(
    ("path", "name", "identifier"),
    [
        ("lake_bled.jpg", "Lake bled", "lake_bled"),
        ("a/b c/Île-de-Ré.png", "Île de Ré", "a-b-c-le-de-R"),
        ("x.tar.gz", "X.tar", "x.tar"),
    ],
)
def test_names_and_ids_from_file_names(path, name, identifier):
    assert name_from_filename(path) == name
    assert id_from_path(path) == identifier


def test_a_manifest_with_other_column_names_is_read_as_it_is(tmp_path):
    photo(tmp_path / "images" / "1.jpg")
    (tmp_path / "manifest.csv").write_text(
        "path,label,name,city,country,latitude,longitude,creator\n"
        'images/1.jpg,"Calgary, Canada",Peace Bridge,Calgary,Canada,51.0486,-114.0708,Denisse Leon\n'
    )
    (bridge,) = load_catalog(tmp_path).destinations
    assert (bridge.name, bridge.city, bridge.lat, bridge.lon, bridge.credit) == (
        "Peace Bridge",
        "Calgary",
        51.0486,
        -114.0708,
        "Denisse Leon",
    )


def test_any_csv_with_a_column_mapping(tmp_path):
    for n in range(3):
        photo(tmp_path / f"{n}.jpg")
    (tmp_path / "export.csv").write_text(
        "file,title,photographer,spot,name:de\n"
        "0.jpg,Santorini at noon,Ann,santorini,Santorin\n"
        "1.jpg,Santorini at sunset,Bo,santorini,Santorin\n"
        "2.jpg,Oia,Cy,oia,Oia\n"
    )
    catalog = load_catalog(tmp_path, metadata="export.csv", columns=parse_columns("destination=spot"))
    assert [d.name for d in catalog.destinations] == ["Santorini at noon", "Santorini at sunset", "Oia"]
    assert [d.place_key for d in catalog.destinations] == ["santorini", "santorini", "oia"]
    assert [d.credit for d in catalog.destinations] == ["Ann", "Bo", "Cy"]
    assert [d.names for d in catalog.destinations][1:] == [(("de", "Santorin"),), (("de", "Oia"),)]
    assert not catalog.problems


def test_bad_column_mappings_and_metadata_files_are_refused(tmp_path):
    photo(tmp_path / "a.jpg")
    with pytest.raises(CatalogError, match="OURS=THEIRS"):
        parse_columns("name")
    with pytest.raises(CatalogError, match="unknown column"):
        load_catalog(tmp_path, columns={"colour": "tint"})
    with pytest.raises(CatalogError, match="metadata file not found"):
        load_catalog(tmp_path, metadata="missing.csv")
    (tmp_path / "export.csv").write_text("picture,title\na.jpg,A\n")
    with pytest.raises(CatalogError, match="--columns image=YOURS"):
        load_catalog(tmp_path, metadata="export.csv")
    (only,) = load_catalog(tmp_path, metadata="export.csv", columns={"image": "picture"}).destinations
    assert only.name == "A"


def test_the_shared_travel_photos_come_out_named():
    folder = shared_dataset("travel-photos")
    catalog = load_catalog(folder)
    assert len(catalog.destinations) == 148 and not catalog.problems
    assert all(d.name and not d.name[0].isdigit() for d in catalog.destinations)
    assert all(d.lat is not None and d.lon is not None for d in catalog.destinations)


def test_rows_the_index_stored_read_back_as_the_same_destinations():
    import json

    from recommender.catalog import destination_from_stored

    full = Destination(
        "a", "x.jpg", "A", "Rome", "Italy", 41.9, 12.5, "d", ("t",), "Ann", "CC0", "rome", (("de", "Rom"),)
    )
    row = json.loads(json.dumps({**full.to_dict(), "content_hash": "h"}))
    assert destination_from_stored(row) == full
    assert hash(destination_from_stored(row)) == hash(full)
    old = {"id": "b", "image": "b.jpg", "name": "B", "content_hash": "h"}  # written before the newer columns
    assert destination_from_stored(old) == Destination("b", "b.jpg", "B")
