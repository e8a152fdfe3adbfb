"""Tests for recommender.images: every corpus file, every kind of source, limits, and mutation fuzzing."""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.i18n import Lang, Translator
from bot.texts import bad_image
from recommender.images import (
    DEFAULT_MAX_PIXELS,
    ImageLimits,
    ImageProblem,
    UnsupportedImage,
    content_hash,
    load_for_model,
    load_image,
    to_model_input,
)
from tests.recommender.badimages import (
    QUADRANT_PROBES,
    BadImageCase,
    ColourProbe,
    corpus_names,
    write_corpus,
)
from worker.loop import image_rejection

REASONS = {
    "empty",
    "too_large_bytes",
    "not_an_image",
    "unsupported_format",
    "corrupt",
    "too_many_pixels",
    "too_small",
    "bad_aspect",
}


@functools.cache
def english() -> Lang:
    return Translator.load().default


def worded(error: UnsupportedImage) -> str:
    """What the user is told about this photo (in English): the bot's sentence for the worker's rejection."""
    return bad_image(english(), image_rejection(error))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BadImageCase]:
    return {case.name: case for case in write_corpus(tmp_path_factory.mktemp("corpus"))}


def _limits(case: BadImageCase) -> ImageLimits:
    return ImageLimits(max_bytes=case.max_bytes) if case.max_bytes is not None else ImageLimits()


def _pixel(pixels: np.ndarray, probe: ColourProbe) -> np.ndarray:
    height, width = pixels.shape[:2]
    return pixels[min(int(probe.y * height), height - 1), min(int(probe.x * width), width - 1)].astype(int)


def _assert_probes(pixels: np.ndarray, case: BadImageCase, tolerance: int | None = None) -> None:
    tolerance = case.tolerance if tolerance is None else tolerance
    for probe in case.probes:
        got = _pixel(pixels, probe)
        assert np.abs(got - probe.rgb).max() <= tolerance, f"{case.name}: at {probe} got {tuple(got)}"


def _sources(case: BadImageCase) -> dict[str, object]:
    data = case.path.read_bytes()
    return {"path": case.path, "str": str(case.path), "bytes": data, "bytearray": bytearray(data)}


def test_corpus_is_big_and_varied(corpus: dict[str, BadImageCase]) -> None:
    assert len(corpus) >= 18
    assert list(corpus) == corpus_names()
    expectations = {case.expect for case in corpus.values()}
    assert expectations >= REASONS | {"ok"}
    assert {case.expect for case in corpus.values()} <= REASONS | {"ok"}
    assert len({case.path for case in corpus.values()}) == len(corpus), "two cases share a file"


@pytest.mark.parametrize("source_kind", ["path", "str", "bytes", "bytearray"])
@pytest.mark.parametrize("name", corpus_names())
def test_corpus_case_loads_or_fails_as_expected(corpus: dict[str, BadImageCase], name: str, source_kind: str) -> None:
    case = corpus[name]
    source = _sources(case)[source_kind]
    if case.ok:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # odd files must not spray warnings into the worker's logs
            image = load_image(source, limits=_limits(case))
        assert image.mode == "RGB"
        if case.size is not None:
            assert image.size == case.size
        _assert_probes(np.asarray(image), case)
        return

    with pytest.raises(UnsupportedImage) as caught:
        load_image(source, limits=_limits(case))
    error = caught.value
    assert error.reason == case.expect, str(error)
    words = worded(error)
    assert words.strip()
    assert words.endswith((".", "!", ")")), words
    for leak in (str(case.path), case.path.name, str(case.path.parent), "Error", "Received"):
        assert leak not in words
    message = str(error)
    assert "Received: " in message
    received = message.rsplit("Received: ", 1)[1]
    assert received.strip() and "\n" not in received, message
    if source_kind in ("path", "str"):
        assert str(case.path) in message, "logs should name the file"


@pytest.mark.parametrize("name", [n for n in corpus_names() if n.startswith("exif_orientation_")])
def test_rotated_jpeg_is_upright_when_drafted_too(corpus: dict[str, BadImageCase], name: str) -> None:
    case = corpus[name]
    image = load_image(case.path, size=32)
    width, height = image.size
    assert width > height, "the upright picture is landscape"
    assert min(width, height) >= 32
    _assert_probes(np.asarray(image), case)


@pytest.mark.parametrize("name", corpus_names())
def test_model_input_keeps_the_picture(corpus: dict[str, BadImageCase], name: str) -> None:
    case = corpus[name]
    if not case.ok:
        with pytest.raises(UnsupportedImage):
            load_for_model(case.path, 24, limits=_limits(case))
        return
    pixels = load_for_model(case.path.read_bytes(), 24, limits=_limits(case))
    assert pixels.shape == (24, 24, 3)
    assert pixels.dtype == np.uint8
    assert pixels.flags.writeable
    _assert_probes(pixels, case, tolerance=case.tolerance + 12)  # resizing blends a little across edges


def test_bad_aspect_reported_with_size_and_format(corpus: dict[str, BadImageCase]) -> None:
    with pytest.raises(UnsupportedImage) as caught:
        load_image(corpus["strip_1x20000"].path.read_bytes())
    assert str(caught.value).endswith("Received: 1x20000 px PNG")
    assert "shape" in worded(caught.value)


def test_empty_and_not_an_image_messages(corpus: dict[str, BadImageCase]) -> None:
    with pytest.raises(UnsupportedImage) as caught:
        load_image(b"")
    assert str(caught.value).endswith("Received: 0 bytes")
    assert worded(caught.value) == "That file is empty — please send a photo."
    with pytest.raises(UnsupportedImage) as caught:
        load_image(corpus["svg"].path)
    assert "JPEG or PNG" in worded(caught.value)
    assert "SVG" in worded(caught.value)


def test_over_byte_limit_message_names_the_limit() -> None:
    with pytest.raises(UnsupportedImage) as caught:
        load_image(bytes(21 * 1024 * 1024))
    assert caught.value.reason == "too_large_bytes"
    assert worded(caught.value) == "That photo is too large (over 20 MB). Please send a smaller one."


def test_byte_limit_checked_from_file_size_before_reading(tmp_path: Path) -> None:
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as f:
        f.truncate(5 * 1024**3)  # sparse: 5 GB that would take seconds to read and crash a small box
    with pytest.raises(UnsupportedImage) as caught:
        load_image(huge)
    assert caught.value.reason == "too_large_bytes"
    assert str(caught.value).endswith(f"Received: {5 * 1024**3} bytes")


def test_pixel_limits_are_configurable(corpus: dict[str, BadImageCase]) -> None:
    path = corpus["bmp"].path  # 128x96
    with pytest.raises(UnsupportedImage) as caught:
        load_image(path, limits=ImageLimits(max_pixels=128 * 96 - 1))
    assert caught.value.reason == "too_many_pixels"
    assert load_image(path, limits=ImageLimits(max_pixels=128 * 96)).size == (128, 96)
    with pytest.raises(UnsupportedImage) as caught:
        load_image(path, limits=ImageLimits(min_side=97))
    assert caught.value.reason == "too_small"
    with pytest.raises(UnsupportedImage) as caught:
        load_image(path, limits=ImageLimits(max_aspect=1.3))
    assert caught.value.reason == "bad_aspect"


def test_bombs_leave_pillow_settings_and_warning_filters_alone(corpus: dict[str, BadImageCase]) -> None:
    before_max, before_filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for name in ("bomb_over_our_limit", "bomb_pillow_warning", "bomb_pillow_error"):
            with pytest.raises(UnsupportedImage) as caught:
                load_image(corpus[name].path)
            assert caught.value.reason == "too_many_pixels"
            assert "megapixels" in worded(caught.value)
    assert not seen, [str(w.message) for w in seen]
    assert before_max == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == before_filters
    assert DEFAULT_MAX_PIXELS < Image.MAX_IMAGE_PIXELS  # our check is the one that normally fires


def test_concurrent_loads_leave_warning_filters_alone(corpus: dict[str, BadImageCase]) -> None:
    # The worker decodes in threads; unserialised catch_warnings would leave our filters installed for good.
    before = list(warnings.filters)
    paths = [case.path for case in corpus.values() if case.ok] * 6
    with ThreadPoolExecutor(4) as pool:
        shapes = {pixels.shape for pixels in pool.map(lambda path: load_for_model(path, 24), paths)}
    assert shapes == {(24, 24, 3)}
    assert warnings.filters == before


def test_all_source_types_give_the_same_pixels(corpus: dict[str, BadImageCase]) -> None:
    case = corpus["exif_orientation_6"]
    data = case.path.read_bytes()
    sources = [case.path, str(case.path), data, bytearray(data), memoryview(data)]
    results = [load_for_model(source, 32) for source in sources]
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


def test_jpeg_draft_decodes_small_but_never_below_size(tmp_path: Path) -> None:
    photo = Image.effect_noise((1280, 960), 40).convert("RGB")
    jpeg, png = io.BytesIO(), io.BytesIO()
    photo.save(jpeg, "JPEG", quality=90)
    photo.save(png, "PNG")
    assert load_image(jpeg.getvalue()).size == (1280, 960)
    assert load_image(jpeg.getvalue(), size=224).size == (320, 240)  # DCT scale 1/4: 240 >= 224
    assert load_image(jpeg.getvalue(), size=100).size == (160, 120)  # 1/8 is the smallest DCT scale
    assert load_image(jpeg.getvalue(), size=1000).size == (1280, 960)
    assert load_image(png.getvalue(), size=224).size == (320, 240)  # integer box reduction by 4
    assert load_image(png.getvalue(), size=300).size == (427, 320)  # by 3, rounded up


def test_to_model_input_shapes_and_modes() -> None:
    half = np.zeros((40, 60, 4), np.uint8)
    half[:, :30] = (255, 0, 0, 255)  # opaque red left, transparent black right
    rgba = Image.fromarray(half, "RGBA")
    for size in (1, 7, 224, 300):  # 300: upscaling works too
        pixels = to_model_input(rgba, size)
        assert pixels.shape == (size, size, 3)
        assert pixels.dtype == np.uint8
    pixels = to_model_input(rgba, 20)
    assert tuple(pixels[10, 2]) == (255, 0, 0)
    assert tuple(pixels[10, 17]) == (255, 255, 255), "transparent must come out white"
    wide = Image.new("RGB", (400, 100), (10, 20, 30))
    np.testing.assert_array_equal(to_model_input(wide, 16), np.full((16, 16, 3), (10, 20, 30), np.uint8))
    for bad in (0, -3, 2.5, None):
        with pytest.raises(ValueError, match="Received: size="):
            to_model_input(wide, bad)  # type: ignore[arg-type]


def test_argument_errors_are_not_unsupported_image(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="Received: int"):
        load_image(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Received: size=0") as caught:
        load_image(b"\xff\xd8\xff", size=0)
    assert not isinstance(caught.value, UnsupportedImage)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.jpg")  # a wrong path is the caller's problem, not the user's


def test_unsupported_image_survives_pickling() -> None:
    error = UnsupportedImage("technical. Received: 1 bytes", ImageProblem.TOO_SMALL, limits=ImageLimits(min_side=40))
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.reason, copy.format, copy.limits) == (str(error), error.reason, error.format, error.limits)
    assert isinstance(copy, ValueError)


def test_content_hash_is_stable() -> None:
    assert content_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    data = bytes(range(256)) * 10
    assert content_hash(data) == content_hash(bytearray(data)) == content_hash(memoryview(data))
    assert content_hash(data) == hashlib.sha256(data).hexdigest()
    assert content_hash(data) != content_hash(data + b"\x00")


def _mutations(data: bytes, count: int, seed: int) -> list[bytes]:
    """Truncations, byte flips (mostly in the headers, where parsers branch) and spliced-in junk."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            out.append(data[: int(rng.integers(1, len(data)))])
            continue
        mutated = bytearray(data)
        if kind in (1, 2):
            span = min(len(data), 700) if kind == 1 else len(data)
            for position in rng.integers(0, span, int(rng.integers(1, 12))):
                mutated[position] = int(rng.integers(0, 256))
        else:
            start = int(rng.integers(0, len(data)))
            junk = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
            mutated[start:start] = junk
        out.append(bytes(mutated))
    return out


def _load_mutants(mutants: list[bytes]) -> tuple[int, set[str]]:
    """Load each mutant; anything but a picture or UnsupportedImage fails the test right here."""
    loaded, reasons = 0, set()
    for mutant in mutants:
        try:
            pixels = load_for_model(mutant, 32)
        except UnsupportedImage as error:
            assert error.reason in REASONS
            assert worded(error)
            assert "Received: " in str(error)
            reasons.add(error.reason)
        else:
            assert pixels.shape == (32, 32, 3)
            loaded += 1
    return loaded, reasons


def test_mutated_jpeg_never_raises_anything_else() -> None:
    original = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.effect_noise((160, 120), 30).convert("RGB").save(original, "JPEG", quality=85, exif=exif.tobytes())
    loaded, reasons = _load_mutants(_mutations(original.getvalue(), 200, seed=2024))
    assert "corrupt" in reasons  # the mutations really do break files...
    assert loaded > 0  # ...and some survive, as byte flips in pixel data often do


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "WEBP", "TIFF", "BMP"])
def test_mutated_other_formats_never_raise_anything_else(fmt: str) -> None:
    original = io.BytesIO()
    Image.effect_noise((64, 48), 30).convert("RGB").save(original, fmt)
    _, reasons = _load_mutants(_mutations(original.getvalue(), 60, seed=sum(fmt.encode())))
    assert reasons, "no mutation was refused: the mutations are too gentle to test anything"


def test_quadrant_probes_catch_a_missing_rotation(corpus: dict[str, BadImageCase]) -> None:
    # Guards the corpus itself: the stored pixels of a rotated case must NOT already look upright.
    case = corpus["exif_orientation_6"]
    with Image.open(case.path) as raw:
        stored = np.asarray(raw.convert("RGB"))
    assert stored.shape[:2] == (128, 96)
    assert any(np.abs(_pixel(stored, p) - p.rgb).max() > 100 for p in QUADRANT_PROBES)
