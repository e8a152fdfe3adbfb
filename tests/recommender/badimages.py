"""Generate a corpus of bad and odd image files, with what `recommender.images` should make of each.

Nothing binary is checked in: every file is written at test time with Pillow, numpy and a small PNG writer.
Used by the image-loading tests and by the worker and bot end-to-end tests, so no pytest imports here.
"""

from __future__ import annotations

import io
import itertools
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, features

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
MID_GREY = (128, 128, 128)

ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class ColourProbe:
    """The colour expected at a point of the upright image, given as fractions of its width and height."""

    x: float
    y: float
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class BadImageCase:
    """One generated file and what loading it should give.

    `expect` is "ok" or the UnsupportedImage reason code. For "ok" cases `size` is the upright (width, height)
    before any resize, when it matters, and `probes` are colours the decoded picture must show (within
    `tolerance` per channel; lossy formats need more). `max_bytes` is the byte limit a case is meant for
    (None: the defaults); the over-limit case uses a small one so the corpus stays small.
    """

    name: str
    path: Path
    expect: str
    size: tuple[int, int] | None = None
    probes: tuple[ColourProbe, ...] = ()
    tolerance: int = 6
    max_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.expect == "ok"


_Builder = Callable[[Path], BadImageCase]
_BUILDERS: dict[str, _Builder] = {}


def _case(name: str) -> Callable[[_Builder], _Builder]:
    def register(builder: _Builder) -> _Builder:
        if name in _BUILDERS:
            raise ValueError(f"Duplicate corpus case name. Received: {name!r}")
        _BUILDERS[name] = builder
        return builder

    return register


def corpus_names() -> list[str]:
    """The case names `write_corpus` produces, in order, without writing anything (for parametrisation)."""
    return list(_BUILDERS)


def write_corpus(folder: Path) -> list[BadImageCase]:
    """Write every corpus file into `folder` (created if needed) and return the cases, in a stable order."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = [build(folder) for build in _BUILDERS.values()]
    assert [c.name for c in cases] == corpus_names(), "a builder returned a case under another name"
    return cases


# --- picture helpers -----------------------------------------------------------------------------------


def _quadrants(width: int, height: int, colours=(RED, GREEN, BLUE, YELLOW)) -> Image.Image:
    """Top-left, top-right, bottom-left, bottom-right in four colours: any rotation or flip is visible."""
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 2] = colours[0]
    pixels[: height // 2, width // 2 :] = colours[1]
    pixels[height // 2 :, : width // 2] = colours[2]
    pixels[height // 2 :, width // 2 :] = colours[3]
    return Image.fromarray(pixels)


QUADRANT_PROBES = (
    ColourProbe(0.25, 0.25, RED),
    ColourProbe(0.75, 0.25, GREEN),
    ColourProbe(0.25, 0.75, BLUE),
    ColourProbe(0.75, 0.75, YELLOW),
)


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus mild noise: compresses and decodes like a photo, unlike flat colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin(x / 37.0) * np.cos(y / 53.0)
    g = 255 * y / max(height - 1, 1)
    b = 255 * x / max(width - 1, 1)
    pixels = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _bands(width: int, height: int, values: Iterable, dtype=np.uint8) -> np.ndarray:
    """Vertical bands of equal width, one per value (a scalar or a channel tuple)."""
    values = list(values)
    first = np.asarray(values[0])
    pixels = np.empty((height, width, *first.shape), dtype)
    edges = np.linspace(0, width, len(values) + 1).astype(int)
    for value, start, stop in zip(values, edges[:-1], edges[1:], strict=True):
        pixels[:, start:stop] = value
    return pixels


def _band_probes(colours: Iterable[tuple[int, int, int]]) -> tuple[ColourProbe, ...]:
    colours = list(colours)
    return tuple(ColourProbe((i + 0.5) / len(colours), 0.5, c) for i, c in enumerate(colours))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, bit_depth: int, colour_type: int, rows: Iterable[bytes]) -> bytes:
    """A PNG written by hand, for what Pillow will not save (16-bit RGB, bombs, broken checksums).

    Rows are compressed as they come, so a 20000x20000 bomb never exists uncompressed in memory.
    """
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(b"\x00" + row) for row in rows]  # filter type 0 on every row
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def _bilevel_bomb(width: int, height: int) -> bytes:
    # 1 bit per pixel, all zero: the smallest file for the most pixels.
    return _png(width, height, 1, 0, itertools.repeat(bytes((width + 7) // 8), height))


def _jpeg_bytes(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def _write(folder: Path, filename: str, data: bytes) -> Path:
    path = folder / filename
    path.write_bytes(data)
    return path


def _save(folder: Path, filename: str, image: Image.Image, fmt: str, **options) -> Path:
    path = folder / filename
    image.save(path, fmt, **options)
    return path


# --- the cases: what must be refused -------------------------------------------------------------------


@_case("empty")
def _empty(folder: Path) -> BadImageCase:
    return BadImageCase("empty", _write(folder, "empty.jpg", b""), "empty")


@_case("over_byte_limit")
def _over_byte_limit(folder: Path) -> BadImageCase:
    data = _jpeg_bytes(_photo(160, 120), quality=90)
    assert len(data) > 2048
    return BadImageCase("over_byte_limit", _write(folder, "over_limit.jpg", data), "too_large_bytes", max_bytes=2048)


@_case("truncated_jpeg")
def _truncated_jpeg(folder: Path) -> BadImageCase:
    data = _jpeg_bytes(_photo(256, 192), quality=90)
    return BadImageCase("truncated_jpeg", _write(folder, "truncated.jpg", data[: len(data) // 2]), "corrupt")


@_case("truncated_png")
def _truncated_png(folder: Path) -> BadImageCase:
    out = io.BytesIO()
    _photo(128, 96).save(out, "PNG")
    data = out.getvalue()
    return BadImageCase("truncated_png", _write(folder, "truncated.png", data[: len(data) // 2]), "corrupt")


@_case("png_bad_header_crc")
def _png_bad_header_crc(folder: Path) -> BadImageCase:
    data = bytearray(_png(32, 32, 8, 0, itertools.repeat(bytes(32), 32)))
    data[29] ^= 0xFF  # inside the IHDR checksum: a PNG by its magic number, unreadable by its header
    return BadImageCase("png_bad_header_crc", _write(folder, "bad_crc.png", bytes(data)), "corrupt")


@_case("text_named_jpg")
def _text_named_jpg(folder: Path) -> BadImageCase:
    text = b"Dear travel bot,\nplease find attached my holiday photo.\n" * 4
    return BadImageCase("text_named_jpg", _write(folder, "letter.jpg", text), "not_an_image")


@_case("html_named_png")
def _html_named_png(folder: Path) -> BadImageCase:
    html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not found</body></html>\n"
    return BadImageCase("html_named_png", _write(folder, "page.png", html), "not_an_image")


@_case("pdf_named_jpg")
def _pdf_named_jpg(folder: Path) -> BadImageCase:
    pdf = (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    return BadImageCase("pdf_named_jpg", _write(folder, "ticket.jpg", pdf), "not_an_image")


@_case("zip_named_jpg")
def _zip_named_jpg(folder: Path) -> BadImageCase:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", _jpeg_bytes(_photo(64, 48)))
    return BadImageCase("zip_named_jpg", _write(folder, "photos.jpg", out.getvalue()), "not_an_image")


@_case("svg")
def _svg(folder: Path) -> BadImageCase:
    svg = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">'
        b'<rect width="200" height="100" fill="red"/></svg>\n'
    )
    return BadImageCase("svg", _write(folder, "drawing.svg", svg), "not_an_image")


@_case("random_garbage")
def _random_garbage(folder: Path) -> BadImageCase:
    data = np.random.default_rng(1234).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return BadImageCase("random_garbage", _write(folder, "garbage.jpg", data), "not_an_image")


@_case("heic")
def _heic(folder: Path) -> BadImageCase:
    # Only the ISO-BMFF header of an iPhone HEIC: enough to be recognised, and refused, before decoding.
    ftyp = struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return BadImageCase("heic", _write(folder, "IMG_0001.HEIC", ftyp + bytes(512)), "unsupported_format")


@_case("strip_1x20000")
def _strip(folder: Path) -> BadImageCase:
    return BadImageCase(
        "strip_1x20000", _save(folder, "strip.png", Image.new("L", (1, 20000), 90), "PNG"), "bad_aspect"
    )


@_case("wide_banner")
def _wide_banner(folder: Path) -> BadImageCase:
    return BadImageCase("wide_banner", _save(folder, "banner.jpg", _photo(2000, 40), "JPEG"), "bad_aspect")


@_case("tiny_8x8")
def _tiny(folder: Path) -> BadImageCase:
    return BadImageCase("tiny_8x8", _save(folder, "tiny.png", Image.new("RGB", (8, 8), RED), "PNG"), "too_small")


@_case("bomb_over_our_limit")
def _bomb_ours(folder: Path) -> BadImageCase:
    # 64 megapixels: over DEFAULT_MAX_PIXELS, below the point where Pillow itself warns.
    data = _bilevel_bomb(8000, 8000)
    return BadImageCase("bomb_over_our_limit", _write(folder, "bomb_8000.png", data), "too_many_pixels")


@_case("bomb_pillow_warning")
def _bomb_warning(folder: Path) -> BadImageCase:
    # 100 megapixels: Pillow warns (DecompressionBombWarning) while opening it.
    data = _bilevel_bomb(10000, 10000)
    return BadImageCase("bomb_pillow_warning", _write(folder, "bomb_10000.png", data), "too_many_pixels")


@_case("bomb_pillow_error")
def _bomb_error(folder: Path) -> BadImageCase:
    # 400 megapixels in a few tens of KB: Pillow raises DecompressionBombError while opening it.
    data = _bilevel_bomb(20000, 20000)
    return BadImageCase("bomb_pillow_error", _write(folder, "bomb_20000.png", data), "too_many_pixels")


# --- the cases: odd but fine ---------------------------------------------------------------------------

_UPRIGHT = (128, 96)  # quadrant sides are multiples of 16, so JPEG chroma blocks do not straddle colours

# How each EXIF orientation is stored: the upright picture transformed by the inverse of what the loader
# must apply (exif_transpose's table), so only a correct un-rotation gives the quadrants back.
_STORE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # displayed after a 90° clockwise turn, so stored turned anticlockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _exif_case(orientation: int) -> _Builder:
    name = f"exif_orientation_{orientation}"

    def build(folder: Path) -> BadImageCase:
        stored = _quadrants(*_UPRIGHT).transpose(_STORE_FOR_ORIENTATION[orientation])
        exif = Image.Exif()
        exif[ORIENTATION_TAG] = orientation
        path = _save(folder, f"{name}.jpg", stored, "JPEG", quality=95, exif=exif.tobytes())
        return BadImageCase(name, path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES, tolerance=40)

    return build


for _orientation in sorted(_STORE_FOR_ORIENTATION):
    _case(f"exif_orientation_{_orientation}")(_exif_case(_orientation))


@_case("exif_orientation_6_png")
def _exif_png(folder: Path) -> BadImageCase:
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    stored = _quadrants(*_UPRIGHT).transpose(Image.Transpose.ROTATE_90)
    path = _save(folder, "exif6.png", stored, "PNG", exif=exif.tobytes())
    return BadImageCase("exif_orientation_6_png", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES)


@_case("exif_garbage")
def _exif_garbage(folder: Path) -> BadImageCase:
    junk = np.random.default_rng(7).integers(0, 256, 200, dtype=np.uint8).tobytes()
    path = _save(folder, "exif_garbage.jpg", _quadrants(*_UPRIGHT), "JPEG", quality=95, exif=b"Exif\x00\x00" + junk)
    return BadImageCase("exif_garbage", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES, tolerance=40)


@_case("exif_bad_offset")
def _exif_bad_offset(folder: Path) -> BadImageCase:
    # A valid TIFF header whose first IFD lies far past the end of the block.
    exif = b"Exif\x00\x00MM\x00*\x7f\xff\xff\xf0" + bytes(16)
    path = _save(folder, "exif_bad_offset.jpg", _quadrants(*_UPRIGHT), "JPEG", quality=95, exif=exif)
    return BadImageCase("exif_bad_offset", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES, tolerance=40)


@_case("exif_bad_orientation_value")
def _exif_bad_value(folder: Path) -> BadImageCase:
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 42  # no such orientation: leave the picture as stored
    path = _save(folder, "exif_42.jpg", _quadrants(*_UPRIGHT), "JPEG", quality=95, exif=exif.tobytes())
    return BadImageCase("exif_bad_orientation_value", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES, tolerance=40)


@_case("cmyk_jpeg")
def _cmyk_jpeg(folder: Path) -> BadImageCase:
    # Pillow writes CMYK JPEGs the Adobe way (inverted, with an Adobe APP14 marker), as Photoshop does.
    cmyk = _quadrants(*_UPRIGHT).convert("CMYK")
    path = _save(folder, "cmyk.jpg", cmyk, "JPEG", quality=95)
    return BadImageCase("cmyk_jpeg", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES, tolerance=40)


@_case("cmyk_tiff")
def _cmyk_tiff(folder: Path) -> BadImageCase:
    path = _save(folder, "cmyk.tiff", _quadrants(*_UPRIGHT).convert("CMYK"), "TIFF", compression="tiff_lzw")
    return BadImageCase("cmyk_tiff", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES)


@_case("grey16_png")
def _grey16_png(folder: Path) -> BadImageCase:
    # 0, 128*257 and 65535: mid-grey must stay mid-grey (clipping would make it white).
    pixels = _bands(96, 48, [0, 128 * 257, 65535], np.uint16)
    path = _save(folder, "grey16.png", Image.fromarray(pixels), "PNG")
    return BadImageCase("grey16_png", path, "ok", size=(96, 48), probes=_band_probes([BLACK, MID_GREY, WHITE]))


@_case("grey16_tiff")
def _grey16_tiff(folder: Path) -> BadImageCase:
    pixels = _bands(96, 48, [0, 128 * 257, 65535], np.uint16)
    path = _save(folder, "grey16.tiff", Image.fromarray(pixels), "TIFF")
    return BadImageCase("grey16_tiff", path, "ok", size=(96, 48), probes=_band_probes([BLACK, MID_GREY, WHITE]))


@_case("grey16_transparency_png")
def _grey16_trns_png(folder: Path) -> BadImageCase:
    # 128*257 is transparent, 128*257+1 right next to it is not: both are 128 once scaled to 8 bits.
    pixels = _bands(96, 48, [0, 128 * 257, 128 * 257 + 1], np.uint16)
    path = _save(folder, "grey16_trns.png", Image.fromarray(pixels), "PNG", transparency=128 * 257)
    probes = _band_probes([BLACK, WHITE, MID_GREY])
    return BadImageCase("grey16_transparency_png", path, "ok", size=(96, 48), probes=probes)


@_case("grey_int32_tiff")
def _grey_int32_tiff(folder: Path) -> BadImageCase:
    # Pillow's 32-bit "I" mode; values in the 16-bit range, as 16-bit decoders produce them.
    pixels = _bands(96, 48, [0, 128 * 257, 65535], np.int32)
    path = _save(folder, "grey_int32.tiff", Image.fromarray(pixels), "TIFF")
    probes = _band_probes([BLACK, MID_GREY, WHITE])
    return BadImageCase("grey_int32_tiff", path, "ok", size=(96, 48), probes=probes)


@_case("rgb16_png")
def _rgb16_png(folder: Path) -> BadImageCase:
    pixels = _bands(96, 48, [(65535, 0, 0), (128 * 257,) * 3, (0, 0, 65535)], np.dtype(">u2"))
    data = _png(96, 48, 16, 2, (row.tobytes() for row in pixels))
    path = _write(folder, "rgb16.png", data)
    return BadImageCase("rgb16_png", path, "ok", size=(96, 48), probes=_band_probes([RED, MID_GREY, BLUE]))


@_case("palette_transparency_png")
def _palette_png(folder: Path) -> BadImageCase:
    paletted = Image.frombytes("P", (96, 48), _bands(96, 48, [0, 1, 2]).tobytes())
    paletted.putpalette([*RED, *BLACK, *BLUE])
    path = _save(folder, "palette_trns.png", paletted, "PNG", transparency=1)  # black index → transparent
    return BadImageCase("palette_transparency_png", path, "ok", size=(96, 48), probes=_band_probes([RED, WHITE, BLUE]))


@_case("rgba_png")
def _rgba_png(folder: Path) -> BadImageCase:
    # Opaque red, fully transparent black, half-transparent black: white must show through, not black.
    pixels = _bands(96, 48, [(255, 0, 0, 255), (0, 0, 0, 0), (0, 0, 0, 128)])
    path = _save(folder, "rgba.png", Image.fromarray(pixels, "RGBA"), "PNG")
    return BadImageCase(
        "rgba_png", path, "ok", size=(96, 48), probes=_band_probes([RED, WHITE, (127, 127, 127)]), tolerance=2
    )


@_case("rgb_colour_key_png")
def _rgb_colour_key_png(folder: Path) -> BadImageCase:
    # An RGB PNG whose tRNS chunk makes one exact colour (here black) transparent.
    pixels = _bands(96, 48, [RED, BLACK, BLUE])
    path = _save(folder, "colour_key.png", Image.fromarray(pixels), "PNG", transparency=BLACK)
    return BadImageCase("rgb_colour_key_png", path, "ok", size=(96, 48), probes=_band_probes([RED, WHITE, BLUE]))


@_case("la_png")
def _la_png(folder: Path) -> BadImageCase:
    pixels = _bands(96, 48, [(0, 255), (0, 0)])
    path = _save(folder, "la.png", Image.fromarray(pixels, "LA"), "PNG")
    return BadImageCase("la_png", path, "ok", size=(96, 48), probes=_band_probes([BLACK, WHITE]))


@_case("grey_transparency_png")
def _grey_trns_png(folder: Path) -> BadImageCase:
    pixels = _bands(96, 48, [0, 100])
    path = _save(folder, "grey_trns.png", Image.fromarray(pixels, "L"), "PNG", transparency=0)
    return BadImageCase(
        "grey_transparency_png", path, "ok", size=(96, 48), probes=_band_probes([WHITE, (100, 100, 100)])
    )


@_case("bilevel_png")
def _bilevel_png(folder: Path) -> BadImageCase:
    image = Image.fromarray(_bands(96, 48, [0, 255])).convert("1")
    path = _save(folder, "bilevel.png", image, "PNG")
    return BadImageCase("bilevel_png", path, "ok", size=(96, 48), probes=_band_probes([BLACK, WHITE]))


@_case("grey_jpeg")
def _grey_jpeg(folder: Path) -> BadImageCase:
    image = Image.fromarray(_bands(96, 48, [30, 200]))
    path = _save(folder, "grey.jpg", image, "JPEG", quality=95)
    return BadImageCase(
        "grey_jpeg", path, "ok", size=(96, 48), probes=_band_probes([(30,) * 3, (200,) * 3]), tolerance=10
    )


@_case("progressive_jpeg")
def _progressive_jpeg(folder: Path) -> BadImageCase:
    path = _save(folder, "progressive.jpg", _quadrants(*_UPRIGHT), "JPEG", quality=95, progressive=True)
    return BadImageCase("progressive_jpeg", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES, tolerance=40)


@_case("jpeg_named_png")
def _jpeg_named_png(folder: Path) -> BadImageCase:
    path = _write(folder, "actually_a_jpeg.png", _jpeg_bytes(_quadrants(*_UPRIGHT), quality=95))
    return BadImageCase("jpeg_named_png", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES, tolerance=40)


@_case("mpo")
def _mpo(folder: Path) -> BadImageCase:
    # Two pictures in one JPEG-like file, as some cameras write: the first one counts.
    first, second = _quadrants(*_UPRIGHT), Image.new("RGB", _UPRIGHT, WHITE)
    path = _save(folder, "stereo.mpo", first, "MPO", save_all=True, append_images=[second], quality=95)
    return BadImageCase("mpo", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES, tolerance=40)


def _frames() -> list[Image.Image]:
    return [Image.new("RGB", (64, 48), colour) for colour in (RED, GREEN, BLUE)]


_FIRST_FRAME_PROBES = (ColourProbe(0.5, 0.5, RED), ColourProbe(0.1, 0.9, RED))


@_case("animated_gif")
def _animated_gif(folder: Path) -> BadImageCase:
    first, *rest = _frames()
    path = _save(folder, "anim.gif", first, "GIF", save_all=True, append_images=rest, duration=100, loop=0)
    return BadImageCase("animated_gif", path, "ok", size=(64, 48), probes=_FIRST_FRAME_PROBES)


@_case("single_frame_gif")
def _single_gif(folder: Path) -> BadImageCase:
    path = _save(folder, "single.gif", _quadrants(*_UPRIGHT), "GIF")
    return BadImageCase("single_frame_gif", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES)


@_case("animated_png")
def _apng(folder: Path) -> BadImageCase:
    first, *rest = _frames()
    path = _save(folder, "anim.png", first, "PNG", save_all=True, append_images=rest, duration=100)
    return BadImageCase("animated_png", path, "ok", size=(64, 48), probes=_FIRST_FRAME_PROBES)


@_case("bmp")
def _bmp(folder: Path) -> BadImageCase:
    path = _save(folder, "picture.bmp", _quadrants(*_UPRIGHT), "BMP")
    return BadImageCase("bmp", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES)


if features.check("webp"):

    @_case("webp")
    def _webp(folder: Path) -> BadImageCase:
        path = _save(folder, "photo.webp", _quadrants(*_UPRIGHT), "WEBP", quality=95)
        return BadImageCase("webp", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES, tolerance=40)

    @_case("webp_alpha")
    def _webp_alpha(folder: Path) -> BadImageCase:
        pixels = _bands(96, 48, [(255, 0, 0, 255), (0, 0, 0, 0)])
        path = _save(folder, "alpha.webp", Image.fromarray(pixels, "RGBA"), "WEBP", lossless=True)
        return BadImageCase("webp_alpha", path, "ok", size=(96, 48), probes=_band_probes([RED, WHITE]))

    @_case("animated_webp")
    def _animated_webp(folder: Path) -> BadImageCase:
        first, *rest = _frames()
        path = _save(folder, "anim.webp", first, "WEBP", save_all=True, append_images=rest, duration=100, lossless=True)
        return BadImageCase("animated_webp", path, "ok", size=(64, 48), probes=_FIRST_FRAME_PROBES)


if features.check("avif"):

    @_case("avif")
    def _avif(folder: Path) -> BadImageCase:
        path = _save(folder, "photo.avif", _quadrants(*_UPRIGHT), "AVIF", quality=90)
        return BadImageCase("avif", path, "ok", size=_UPRIGHT, probes=QUADRANT_PROBES, tolerance=40)
