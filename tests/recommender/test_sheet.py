"""Tests for recommender.tools.sheet: the contact sheet's size, where each photo lands, and captions that fit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from recommender.tools.sheet import (
    BACKGROUND,
    CAPTION_HEIGHT,
    MARGIN,
    TILE,
    SheetItem,
    _fit,
    _font,
    contact_sheet,
)

COLOURS = [(200, 30, 30), (30, 160, 40), (20, 40, 210), (230, 200, 20), (120, 20, 140), (20, 190, 190), (90, 90, 90)]
LETTERBOX = (230, 228, 224)
CELL_W, CELL_H = TILE + MARGIN, TILE + CAPTION_HEIGHT + MARGIN


def jpeg(rgb: tuple[int, int, int], size: tuple[int, int] = (400, 300)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def tile_origin(n: int | None, columns: int = 5) -> tuple[int, int]:
    """Top-left corner of the query's tile (None) or of result n."""
    if n is None:
        return MARGIN, MARGIN
    row, column = divmod(n, columns)
    return MARGIN + (column + 1) * CELL_W + MARGIN, MARGIN + row * CELL_H


def assert_colour(pixels: np.ndarray, xy: tuple[int, int], rgb: tuple[int, int, int], tolerance: int = 8) -> None:
    x, y = xy
    assert np.abs(pixels[y, x].astype(int) - rgb).max() <= tolerance, (xy, pixels[y, x], rgb)


def has_ink(pixels: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    x0, y0, x1, y1 = box
    return bool((np.abs(pixels[y0:y1, x0:x1].astype(int) - BACKGROUND).max(axis=-1) > 60).any())


def test_five_results(tmp_path):
    query = SheetItem(jpeg((250, 250, 250)), "Your photo", "")
    paths = []
    for n, rgb in enumerate(COLOURS[:5]):
        paths.append(tmp_path / f"r{n}.jpg")
        paths[-1].write_bytes(jpeg(rgb))
    results = [SheetItem(path, f"Place {n}", f"City {n}, Country · 0.9{n}") for n, path in enumerate(paths)]

    sheet = contact_sheet(query, results)

    assert sheet.mode == "RGB"
    assert sheet.size == (MARGIN + 6 * CELL_W + MARGIN, MARGIN + CELL_H)
    pixels = np.asarray(sheet)
    x, y = tile_origin(None)
    assert_colour(pixels, (x + TILE // 2, y + TILE // 2), (250, 250, 250))
    for n, rgb in enumerate(COLOURS[:5]):
        x, y = tile_origin(n)
        assert_colour(pixels, (x + TILE // 2, y + TILE // 2), rgb)
        # 400x300 fits as 260x195, centred: letterbox above and below, the photo on both side edges.
        assert_colour(pixels, (x + TILE // 2, y + 5), LETTERBOX, tolerance=0)
        assert_colour(pixels, (x + 2, y + TILE // 2), rgb)
        assert has_ink(pixels, (x, y + TILE + 4, x + TILE, y + TILE + 26)), f"no title under result {n}"
        assert has_ink(pixels, (x, y + TILE + 26, x + TILE, y + TILE + CAPTION_HEIGHT)), f"no subtitle under {n}"
    assert_colour(pixels, (sheet.width - 3, sheet.height - 3), BACKGROUND, tolerance=0)


@pytest.mark.parametrize(("count", "rows"), [(0, 1), (1, 1), (6, 2), (7, 2), (10, 2), (11, 3)])
def test_rows_grow_with_the_results(count, rows):
    results = [SheetItem(jpeg(COLOURS[n % 7], (64, 64)), f"P{n}") for n in range(count)]
    sheet = contact_sheet(SheetItem(jpeg((0, 0, 0), (64, 64)), "q"), results)
    assert sheet.size == (MARGIN + 6 * CELL_W + MARGIN, MARGIN + rows * CELL_H)
    if count:
        x, y = tile_origin(count - 1)
        assert_colour(np.asarray(sheet), (x + TILE // 2, y + TILE // 2), COLOURS[(count - 1) % 7])


def test_other_column_counts():
    results = [SheetItem(jpeg(rgb, (80, 80)), "x") for rgb in COLOURS[:4]]
    sheet = contact_sheet(SheetItem(jpeg((0, 0, 0), (80, 80)), "q"), results, columns=2)
    assert sheet.size == (MARGIN + 3 * CELL_W + MARGIN, MARGIN + 2 * CELL_H)
    x, y = tile_origin(3, columns=2)
    assert_colour(np.asarray(sheet), (x + TILE // 2, y + TILE // 2), COLOURS[3])


def test_missing_and_very_long_captions():
    long = "Santa Maria della Salute seen from the Punta della Dogana at dusk, " * 5
    results = [
        SheetItem(jpeg(COLOURS[0]), "", ""),
        SheetItem(jpeg(COLOURS[1]), long, long),
        SheetItem(jpeg(COLOURS[2]), "Ok"),
    ]
    sheet = contact_sheet(SheetItem(jpeg((255, 255, 255)), long), results)
    pixels = np.asarray(sheet)

    x, y = tile_origin(0)
    assert not has_ink(pixels, (x, y + TILE + 1, x + TILE, y + TILE + CAPTION_HEIGHT))  # no caption, no ink
    x, y = tile_origin(1)
    assert has_ink(pixels, (x, y + TILE + 4, x + TILE, y + TILE + CAPTION_HEIGHT))
    # The long caption is cut to its tile: the gap before the next photo stays empty.
    assert not has_ink(pixels, (x + TILE + 1, y + TILE, x + CELL_W, y + TILE + CAPTION_HEIGHT))
    x, y = tile_origin(None)
    assert not has_ink(pixels, (x + TILE + 1, y + TILE, x + CELL_W - MARGIN // 2 - 2, y + TILE + CAPTION_HEIGHT))
    x, y = tile_origin(2)
    assert not has_ink(pixels, (x, y + TILE + 28, x + TILE, y + TILE + CAPTION_HEIGHT))  # no subtitle


def test_fit():
    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    font = _font(16)
    assert _fit(draw, "Rome", font, TILE) == "Rome"
    assert _fit(draw, "", font, TILE) == ""
    long = "Lake " * 100
    fitted = _fit(draw, long, font, TILE)
    assert fitted.endswith("…") and long.startswith(fitted[:-1])
    assert draw.textlength(fitted, font=font) <= TILE
    assert draw.textlength(fitted[:-1] + long[len(fitted) - 1] + "…", font=font) > TILE  # as long as it can be


def test_from_bytes_and_paths_alike(tmp_path):
    data = jpeg((40, 120, 200), (300, 500))  # portrait: letterboxed left and right
    path: Path = tmp_path / "portrait.jpg"
    path.write_bytes(data)

    from_bytes = contact_sheet(SheetItem(data, "q"), [SheetItem(data, "r")])
    from_path = contact_sheet(SheetItem(path, "q"), [SheetItem(path, "r")])

    assert np.array_equal(np.asarray(from_bytes), np.asarray(from_path))
    pixels = np.asarray(from_path)
    x, y = tile_origin(0)
    assert_colour(pixels, (x + 3, y + TILE // 2), LETTERBOX, tolerance=0)
    assert_colour(pixels, (x + TILE // 2, y + 3), (40, 120, 200))
