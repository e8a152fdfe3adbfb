"""A contact sheet: the query photo beside its results, each captioned — for the CLI, the README and people."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from recommender.images import load_image

TILE = 260
CAPTION_HEIGHT = 54
MARGIN = 12
BACKGROUND = (250, 249, 246)
INK = (34, 34, 34)
MUTED = (110, 110, 110)


@dataclass(frozen=True)
class SheetItem:
    image: Path | bytes
    title: str
    subtitle: str = ""


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType has only the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _tile(source: Path | bytes) -> Image.Image:
    image = load_image(source, size=TILE)
    image.thumbnail((TILE, TILE))
    tile = Image.new("RGB", (TILE, TILE), (230, 228, 224))
    tile.paste(image, ((TILE - image.width) // 2, (TILE - image.height) // 2))
    return tile


def contact_sheet(query: SheetItem, results: Sequence[SheetItem], *, columns: int = 5) -> Image.Image:
    """The query in the first column, then the results in rows of ``columns``, each with a two-line caption."""
    rows = max(1, -(-len(results) // columns))
    cell_w, cell_h = TILE + MARGIN, TILE + CAPTION_HEIGHT + MARGIN
    width = MARGIN + (columns + 1) * cell_w + MARGIN
    height = MARGIN + rows * cell_h
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title_font, small_font = _font(16), _font(13)

    def place(item: SheetItem, x: int, y: int) -> None:
        sheet.paste(_tile(item.image), (x, y))
        draw.text((x, y + TILE + 6), _fit(draw, item.title, title_font, TILE), fill=INK, font=title_font)
        draw.text((x, y + TILE + 28), _fit(draw, item.subtitle, small_font, TILE), fill=MUTED, font=small_font)

    place(query, MARGIN, MARGIN)
    divider_x = MARGIN + cell_w - MARGIN // 2
    draw.line([(divider_x, MARGIN), (divider_x, height - MARGIN)], fill=(200, 198, 194), width=2)
    for n, item in enumerate(results):
        row, column = divmod(n, columns)
        place(item, MARGIN + (column + 1) * cell_w + MARGIN, MARGIN + row * cell_h)
    return sheet
