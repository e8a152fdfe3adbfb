"""The stand-in's file store: bytes by file_id, with Telegram-like photo sizes and file paths.

Decoding and thumbnailing (``prepare_photo``) is a pure function so the server can run it in a thread;
``FileStore`` itself is only touched from the event loop.
"""

from __future__ import annotations

import base64
import hashlib
import io
import mimetypes
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError

from playground.models import FileRef, PhotoSize

# Telegram keeps a few downscaled copies of every photo; these are its "s", "m" and "x" sizes.
THUMBNAIL_SIDES = (90, 320, 800)
THUMBNAIL_QUALITY = 85
# EXIF orientations that swap width and height once applied.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


class ImageDecodeError(ValueError):
    """Raised when uploaded photo bytes are not an image Pillow can read."""


@dataclass(frozen=True)
class StoredFile:
    """One file the stand-in holds; ``file_path`` is what getFile returns and the download route serves."""

    file_id: str
    file_unique_id: str
    file_path: str
    mime_type: str
    data: bytes = field(repr=False, compare=False)
    file_name: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def as_photo_size(self) -> PhotoSize:
        return PhotoSize(self.file_id, self.file_unique_id, self.width or 0, self.height or 0, self.size)

    def as_file_ref(self) -> FileRef:
        return FileRef(
            file_id=self.file_id,
            file_unique_id=self.file_unique_id,
            file_size=self.size,
            file_name=self.file_name,
            mime_type=self.mime_type,
            width=self.width,
            height=self.height,
        )


@dataclass(frozen=True)
class PreparedVariant:
    """One size of a decoded photo, before it has a file_id."""

    data: bytes = field(repr=False)
    width: int
    height: int
    mime_type: str


def prepare_photo(data: bytes) -> tuple[PreparedVariant, ...]:
    """Decodes a photo and makes its smaller sizes; the original bytes stay the largest size.

    Keeping the original (rather than re-encoding it as Telegram does) lets tests check that the bytes a
    bot downloads are the bytes the user sent.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
            if image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED_ORIENTATIONS:
                width, height = height, width
            mime_type = Image.MIME.get(image.format or "", "image/jpeg")
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"not a decodable image: {exc}") from exc

    variants = []
    for side in THUMBNAIL_SIDES:
        if max(width, height) <= side:
            break
        thumb = upright.copy()
        thumb.thumbnail((side, side))
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
        variants.append(PreparedVariant(buffer.getvalue(), thumb.width, thumb.height, "image/jpeg"))
    variants.append(PreparedVariant(data, width, height, mime_type))
    return tuple(variants)


def _unique_id(data: bytes) -> str:
    # Content-based, like Telegram's: the same bytes always get the same file_unique_id.
    digest = hashlib.sha256(data).digest()[:9]
    return "AQAD" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


class FileStore:
    """Files by file_id and by file_path; photos remember all their sizes."""

    def __init__(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        # Any size's file_id → the full size list, so re-sending a thumbnail's id sends the whole photo.
        self._photo_of: dict[str, tuple[PhotoSize, ...]] = {}
        self._counter = 0

    def _add(
        self,
        data: bytes,
        *,
        folder: str,
        mime_type: str,
        file_name: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> StoredFile:
        self._counter += 1
        unique = _unique_id(data)
        # Every stored copy gets a new file_id (as on Telegram); it stays valid for the store's lifetime.
        raw_id = f"{folder}:{self._counter}:{unique}".encode()
        file_id = "AgAC" + base64.urlsafe_b64encode(raw_id).decode().rstrip("=")
        extension = mimetypes.guess_extension(mime_type) or ".bin"
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=unique,
            file_path=f"{folder}/file_{self._counter}{extension}",
            mime_type=mime_type,
            data=data,
            file_name=file_name,
            width=width,
            height=height,
        )
        self._by_id[file_id] = stored
        self._by_path[stored.file_path] = stored
        return stored

    def add_photo(self, variants: tuple[PreparedVariant, ...]) -> tuple[PhotoSize, ...]:
        """Stores the output of ``prepare_photo``; returns the sizes, smallest first."""
        sizes = tuple(
            self._add(v.data, folder="photos", mime_type=v.mime_type, width=v.width, height=v.height).as_photo_size()
            for v in variants
        )
        for size in sizes:
            self._photo_of[size.file_id] = sizes
        return sizes

    def add_document(self, data: bytes, *, file_name: str, mime_type: str) -> FileRef:
        return self._add(data, folder="documents", mime_type=mime_type, file_name=file_name).as_file_ref()

    def add_sticker(self, data: bytes, *, width: int, height: int) -> FileRef:
        return self._add(data, folder="stickers", mime_type="image/webp", width=width, height=height).as_file_ref()

    def get(self, file_id: str) -> StoredFile | None:
        return self._by_id.get(file_id)

    def by_path(self, file_path: str) -> StoredFile | None:
        return self._by_path.get(file_path)

    def photo_sizes(self, file_id: str) -> tuple[PhotoSize, ...] | None:
        """The full size list of the photo that ``file_id`` (any of its sizes) belongs to."""
        return self._photo_of.get(file_id)
