"""What the worker keeps in Redis between jobs: result lists and pages for /more, likes, cached query vectors.

Result lists, pages and cached vectors expire; likes do not (until the user sends /forget). Values are JSON or
raw little-endian float32 bytes: nothing is unpickled.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from contract import codec, keys
from contract import messages as m


@dataclass(frozen=True)
class ResultList:
    """A chat's latest ranking, computed once and paged through with /more."""

    list_id: str
    ids: tuple[str, ...]
    scores: tuple[float, ...]
    index_version: str
    fits: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group suggestions: id -> member names
    hints: tuple[str, ...] = ()
    distances: dict[str, float] = field(default_factory=dict)  # id -> km, when ranked near someone
    region: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "list_id": self.list_id,
                "ids": list(self.ids),
                "scores": [round(s, 5) for s in self.scores],
                "index_version": self.index_version,
                "fits": {k: list(v) for k, v in self.fits.items()},
                "hints": list(self.hints),
                "distances": {k: round(v, 1) for k, v in self.distances.items()},
                "region": self.region,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> ResultList:
        data = json.loads(raw)
        return cls(
            list_id=str(data["list_id"]),
            ids=tuple(data["ids"]),
            scores=tuple(float(s) for s in data["scores"]),
            index_version=str(data.get("index_version", "")),
            fits={k: tuple(v) for k, v in data.get("fits", {}).items()},
            hints=tuple(data.get("hints", ())),
            distances={k: float(v) for k, v in data.get("distances", {}).items()},
            region=str(data.get("region", "")),
        )


class WorkerState:
    """Typed access to the worker's Redis keys; one instance per worker, around its client."""

    def __init__(self, redis: Redis, *, ttl_s: int, vector_ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.vector_ttl_s = vector_ttl_s

    # ---- result lists and pages

    def queue_new_list(self, pipe: Pipeline, chat_id: int, results: ResultList, page: list[str]) -> str:
        """Queue the writes that make ``results`` the chat's latest list, with ``page`` as its first page.

        Returns the page's id. Nothing is sent: the caller executes ``pipe`` (``save_new_list`` does, alone).
        """
        pipe.set(keys.results(chat_id), results.to_json(), ex=self.ttl_s)
        pipe.delete(keys.shown(chat_id, results.list_id))  # a list recomputed for a retried job starts unseen
        return self.queue_page(pipe, chat_id, results.list_id, page)

    async def save_new_list(self, chat_id: int, results: ResultList, page: list[str]) -> str:
        """``queue_new_list`` in a transaction of its own, so nobody sees the new list without its first page."""
        async with self.redis.pipeline(transaction=True) as pipe:
            page_id = self.queue_new_list(pipe, chat_id, results, page)
            await pipe.execute()
        return page_id

    async def load_results(self, chat_id: int) -> ResultList | None:
        raw = await self.redis.get(keys.results(chat_id))
        return ResultList.from_json(raw) if raw else None

    async def shown(self, chat_id: int, list_id: str) -> set[str]:
        return {m.decode() for m in await self.redis.smembers(keys.shown(chat_id, list_id))}

    def queue_page(self, pipe: Pipeline, chat_id: int, list_id: str, ids: list[str], *, first_rank: int = 1) -> str:
        """Queue marking ids as shown and remembering the page, so that 👍 buttons and /like N can name its items.

        Returns the page's id (chosen here, so it is known before the writes are sent)."""
        page_id = secrets.token_hex(4)
        if ids:
            pipe.sadd(keys.shown(chat_id, list_id), *ids)
            pipe.expire(keys.shown(chat_id, list_id), self.ttl_s)
        pipe.hset(keys.pages(chat_id), page_id, json.dumps({"ids": ids, "first_rank": first_rank}))
        pipe.expire(keys.pages(chat_id), self.ttl_s)
        pipe.set(keys.last_page(chat_id), page_id, ex=self.ttl_s)
        return page_id

    async def record_page(self, chat_id: int, list_id: str, ids: list[str], *, first_rank: int = 1) -> str:
        """``queue_page`` in a transaction of its own; returns the page's id."""
        async with self.redis.pipeline(transaction=True) as pipe:
            page_id = self.queue_page(pipe, chat_id, list_id, ids, first_rank=first_rank)
            await pipe.execute()
        return page_id

    async def _page(self, chat_id: int, page_id: str) -> tuple[list[str], int] | None:
        raw = await self.redis.hget(keys.pages(chat_id), page_id)
        if raw is None:
            return None
        page = json.loads(raw)
        return [str(i) for i in page["ids"]], int(page["first_rank"])

    async def page_item(self, chat_id: int, page_id: str, position: int) -> str | None:
        """The id at 1-based ``position`` on a page (a 👍 button names its page and position)."""
        page = await self._page(chat_id, page_id)
        if page is None:
            return None
        ids, _ = page
        return ids[position - 1] if 1 <= position <= len(ids) else None

    async def numbered_item(self, chat_id: int, number: int) -> str | None:
        """The id printed as ``number`` in the chat's latest album (/like 7 after /more), else at that position."""
        raw_page = await self.redis.get(keys.last_page(chat_id))
        page = await self._page(chat_id, raw_page.decode()) if raw_page is not None else None
        if page is None:
            return None
        ids, first_rank = page
        position = number - first_rank + 1 if first_rank <= number < first_rank + len(ids) else number
        return ids[position - 1] if 1 <= position <= len(ids) else None

    # ---- likes

    async def like(self, chat_id: int, user_id: int, user_name: str, destination_id: str) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.likes(chat_id, user_id), destination_id, repr(time.time()))
            pipe.sadd(keys.likers(chat_id), user_id)
            if user_name:
                pipe.hset(keys.member_names(chat_id), str(user_id), user_name[:64])
            pipe.sadd(keys.user_chats(user_id), chat_id)
            pipe.hlen(keys.likes(chat_id, user_id))
            results = await pipe.execute()
        return int(results[-1])

    async def liked_ids_many(self, people: Sequence[tuple[int, int]]) -> list[list[str]]:
        """``liked_ids`` for several (chat, user) pairs in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for chat_id, user_id in people:
                pipe.hgetall(keys.likes(chat_id, user_id))
            found = await pipe.execute()
        return [_most_recent_first(raw) for raw in found]

    async def liked_ids(self, chat_id: int, user_id: int) -> list[str]:
        """Most recent first."""
        return _most_recent_first(await self.redis.hgetall(keys.likes(chat_id, user_id)))

    async def locations(self, user_ids: list[int]) -> list[m.Location]:
        """The shared locations of these people (those who shared one)."""
        if not user_ids:
            return []
        raw = await self.redis.mget([keys.user_location(u) for u in user_ids])
        return [codec.location_from_json(value) for value in raw if value]

    async def likers(self, chat_id: int) -> list[int]:
        return sorted(int(m) for m in await self.redis.smembers(keys.likers(chat_id)))

    async def group_likes(self, chat_id: int) -> dict[str, list[str]]:
        """Member display name -> liked ids, for everyone who liked something in this chat."""
        members = [int(m) for m in await self.redis.smembers(keys.likers(chat_id))]
        names = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(keys.member_names(chat_id))).items()}
        likes: dict[str, list[str]] = {}
        for member in sorted(members):
            ids = await self.liked_ids(chat_id, member)
            if ids:
                likes[names.get(str(member), f"member {member}")] = ids
        return likes

    async def forget(self, user_id: int) -> int:
        """Delete everything stored about a user; returns how many likes were removed."""
        chats = [int(c) for c in await self.redis.smembers(keys.user_chats(user_id))]
        removed = 0
        for chat_id in chats:
            removed += await self.redis.hlen(keys.likes(chat_id, user_id))
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.likes(chat_id, user_id))
                pipe.srem(keys.likers(chat_id), user_id)
                pipe.hdel(keys.member_names(chat_id), str(user_id))
                await pipe.execute()
        # The private chat's id is the user's id: its result list, pages and region are the user's too.
        await self.redis.delete(
            keys.user_chats(user_id),
            keys.results(user_id),
            keys.pages(user_id),
            keys.last_page(user_id),
            keys.user_location(user_id),
            keys.chat_region(user_id),
        )
        return removed

    # ---- query vector cache

    async def cached_vectors(
        self, fingerprint: str, content_hashes: Sequence[str | None], dim: int
    ) -> list[np.ndarray | None]:
        """The cached fingerprint of each photo (None: not cached, or no hash), in one round trip."""
        wanted = [h for h in content_hashes if h]
        found = iter(await self.redis.mget([keys.query_vector(fingerprint, h) for h in wanted]) if wanted else [])
        return [_vector(next(found), dim) if h else None for h in content_hashes]

    def queue_vector(
        self, pipe: Pipeline, fingerprint: str, content_hash: str, vector: np.ndarray, file_unique_id: str | None
    ) -> None:
        """Queue caching a photo's fingerprint (and which Telegram file it came from); nothing when the cache is off."""
        if self.vector_ttl_s <= 0:
            return
        pipe.set(
            keys.query_vector(fingerprint, content_hash),
            np.asarray(vector, dtype="<f4").tobytes(),
            ex=self.vector_ttl_s,
        )
        if file_unique_id:
            pipe.set(keys.file_unique(file_unique_id), content_hash, ex=self.vector_ttl_s)

    async def hashes_for_files(self, file_unique_ids: Sequence[str]) -> list[str | None]:
        """The content hash each Telegram file was cached under (None: not cached), in one round trip."""
        if not file_unique_ids:
            return []
        return [
            raw.decode() if raw else None
            for raw in await self.redis.mget([keys.file_unique(f) for f in file_unique_ids])
        ]


def _vector(raw: bytes | None, dim: int) -> np.ndarray | None:
    if raw is None or len(raw) != dim * 4:
        return None
    return np.frombuffer(raw, dtype="<f4").copy()


def _most_recent_first(likes: dict[bytes, bytes]) -> list[str]:
    """Liked ids, newest first (each like's value is the time it was made)."""
    ordered = sorted(likes.items(), key=lambda item: float(item[1]), reverse=True)
    return [key.decode() for key, _ in ordered]
