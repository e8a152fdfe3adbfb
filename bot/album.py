"""Sending destination photos as an album, uploading each catalog photo to Telegram only once.

Telegram answers an upload with a ``file_id`` that can be sent again without uploading; it is kept in Redis per
destination and photo content, so a changed catalog photo is uploaded afresh.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from redis.asyncio import Redis
from redis.exceptions import RedisError
from telegram import Bot, InputMediaPhoto, Message
from telegram.error import BadRequest

from contract import keys
from contract import messages as m
from recommender.catalog import is_inside

logger = logging.getLogger(__name__)

# Telegram recompresses photos to at most 1280 px anyway; sending a smaller file uploads faster.
UPLOAD_MAX_SIDE = 1600
UPLOAD_MAX_BYTES = 5 * 1024 * 1024
FILE_ID_TTL_S = 90 * 24 * 3600


@dataclass(frozen=True)
class CatalogPhotos:
    """Where the bot finds catalog photos, and where it remembers their Telegram file ids."""

    root: Path
    redis: Redis

    def path(self, item: m.Item) -> Path | None:
        if not is_inside(item.image):
            return None  # never read outside the catalog, whatever a reply says
        path = self.root / item.image
        return path if path.is_file() else None

    async def file_ids(self, items: Sequence[m.Item]) -> list[str | None]:
        if not items:
            return []
        names = [keys.telegram_file(item.id, item.image_hash) for item in items]
        return [value.decode() if value else None for value in await self.redis.mget(names)]

    async def remember(self, item: m.Item, file_id: str) -> None:
        await self.redis.set(keys.telegram_file(item.id, item.image_hash), file_id, ex=FILE_ID_TTL_S)

    async def forget(self, items: Sequence[m.Item]) -> None:
        await self.redis.delete(*[keys.telegram_file(item.id, item.image_hash) for item in items])


def upload_bytes(path: Path) -> bytes:
    """The catalog photo, shrunk and re-encoded only when it is bigger than Telegram needs."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        if len(data) <= UPLOAD_MAX_BYTES and max(image.size) <= UPLOAD_MAX_SIDE and image.format == "JPEG":
            return data
        image.draft("RGB", (UPLOAD_MAX_SIDE, UPLOAD_MAX_SIDE))
        picture = image.convert("RGB")
        picture.thumbnail((UPLOAD_MAX_SIDE, UPLOAD_MAX_SIDE))
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=88)
        return out.getvalue()


async def send_album(
    bot: Bot,
    chat_id: int,
    items: Sequence[m.Item],
    photos: CatalogPhotos,
    captions: Callable[[int, m.Item], str],
    *,
    first_rank: int = 1,
    reply_to: int | None = None,
) -> list[m.Item]:
    """Send ``items`` as one album (one photo when there is only one); returns the items actually shown."""
    available = [item for item in items if photos.path(item) is not None]
    for missing in set(items) - set(available):
        logger.warning("catalog photo missing for %s: %s", missing.id, missing.image)
    if not available:
        return []
    try:
        messages = await _send(bot, chat_id, available, photos, captions, first_rank, reply_to, use_cache=True)
    except BadRequest as error:
        # A cached file_id can go stale (another bot token, or Telegram forgot it): upload once more.
        logger.info("sending by file_id failed (%s); uploading the photos again", error)
        await photos.forget(available)
        messages = await _send(bot, chat_id, available, photos, captions, first_rank, reply_to, use_cache=False)
    try:
        for item, message in zip(available, messages, strict=False):
            if message.photo:
                await photos.remember(item, message.photo[-1].file_id)
    except RedisError as error:
        # Only a cache, and the album is already out: an error here would add "something went wrong" to it.
        logger.warning("could not remember the album's file ids (%s); they are uploaded again next time", error)
    return available


async def _send(
    bot: Bot,
    chat_id: int,
    items: Sequence[m.Item],
    photos: CatalogPhotos,
    captions: Callable[[int, m.Item], str],
    first_rank: int,
    reply_to: int | None,
    *,
    use_cache: bool,
) -> Sequence[Message]:
    cached = await photos.file_ids(items) if use_cache else [None] * len(items)
    media = []
    for n, (item, file_id) in enumerate(zip(items, cached, strict=True)):
        source: str | bytes = file_id or upload_bytes(photos.path(item))  # type: ignore[arg-type]
        media.append(InputMediaPhoto(source, caption=captions(first_rank + n, item)))
    if len(media) == 1:
        only = media[0]
        message = await bot.send_photo(chat_id, only.media, caption=only.caption, reply_to_message_id=reply_to)
        return [message]
    return await bot.send_media_group(chat_id, media, reply_to_message_id=reply_to)
