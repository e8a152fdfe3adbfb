"""What the worker keeps in Redis between jobs: result lists and pages for /more, likes, cached query vectors.

Result lists, pages and cached vectors expire; likes do not (until the user sends /forget). Values are JSON or
raw little-endian float32 bytes: nothing is unpickled.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

import numpy as np
from redis.asyncio import Redis

from worker import protocol as p


@dataclass(frozen=True)
class ResultList:
    """A chat's latest ranking, computed once and paged through with /more."""

    list_id: str
    ids: tuple[str, ...]
    scores: tuple[float, ...]
    index_version: str
    fits: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group suggestions: id -> member names
    hints: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "list_id": self.list_id,
                "ids": list(self.ids),
                "scores": [round(s, 5) for s in self.scores],
                "index_version": self.index_version,
                "fits": {k: list(v) for k, v in self.fits.items()},
                "hints": list(self.hints),
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
        )


def _pages_key(chat_id: int) -> str:
    return f"{p.PREFIX}pages:{chat_id}"


def _last_page_key(chat_id: int) -> str:
    return f"{p.PREFIX}lastpage:{chat_id}"


class WorkerState:
    """Typed access to the worker's Redis keys; one instance per worker, around its client."""

    def __init__(self, redis: Redis, *, ttl_s: int, vector_ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.vector_ttl_s = vector_ttl_s

    # ---- result lists and pages

    async def save_results(self, chat_id: int, results: ResultList) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(p.results_key(chat_id), results.to_json(), ex=self.ttl_s)
            pipe.delete(p.shown_key(chat_id, results.list_id))
            await pipe.execute()

    async def load_results(self, chat_id: int) -> ResultList | None:
        raw = await self.redis.get(p.results_key(chat_id))
        return ResultList.from_json(raw) if raw else None

    async def shown(self, chat_id: int, list_id: str) -> set[str]:
        return {m.decode() for m in await self.redis.smembers(p.shown_key(chat_id, list_id))}

    async def record_page(self, chat_id: int, list_id: str, ids: list[str], *, first_rank: int = 1) -> str:
        """Mark ids as shown and remember the page, so that 👍 buttons and /like N can name its items."""
        page_id = secrets.token_hex(4)
        async with self.redis.pipeline(transaction=True) as pipe:
            if ids:
                pipe.sadd(p.shown_key(chat_id, list_id), *ids)
                pipe.expire(p.shown_key(chat_id, list_id), self.ttl_s)
            pipe.hset(_pages_key(chat_id), page_id, json.dumps({"ids": ids, "first_rank": first_rank}))
            pipe.expire(_pages_key(chat_id), self.ttl_s)
            pipe.set(_last_page_key(chat_id), page_id, ex=self.ttl_s)
            await pipe.execute()
        return page_id

    async def page_item(self, chat_id: int, page_id: str | None, rank: int, *, as_numbered: bool = False) -> str | None:
        """The id shown at 1-based ``rank`` on a page (the chat's last page when ``page_id`` is None).

        ``as_numbered``: ``rank`` is the number printed in the caption (pages after /more continue the
        numbering); a number that is not on the page is read as a position on it instead ("/like 2").
        """
        if page_id is None:
            raw_page = await self.redis.get(_last_page_key(chat_id))
            if raw_page is None:
                return None
            page_id = raw_page.decode()
        raw = await self.redis.hget(_pages_key(chat_id), page_id)
        if raw is None:
            return None
        page = json.loads(raw)
        ids, first_rank = page["ids"], int(page["first_rank"])
        if as_numbered and first_rank <= rank < first_rank + len(ids):
            rank = rank - first_rank + 1
        return str(ids[rank - 1]) if 1 <= rank <= len(ids) else None

    # ---- likes

    async def like(self, chat_id: int, user_id: int, user_name: str, destination_id: str) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(p.likes_key(chat_id, user_id), destination_id, repr(time.time()))
            pipe.sadd(p.likers_key(chat_id), user_id)
            if user_name:
                pipe.hset(p.member_names_key(chat_id), str(user_id), user_name[:64])
            pipe.sadd(p.user_chats_key(user_id), chat_id)
            pipe.hlen(p.likes_key(chat_id, user_id))
            results = await pipe.execute()
        return int(results[-1])

    async def unlike(self, chat_id: int, user_id: int, destination_id: str) -> bool:
        removed = await self.redis.hdel(p.likes_key(chat_id, user_id), destination_id)
        if not await self.redis.hlen(p.likes_key(chat_id, user_id)):
            await self.redis.srem(p.likers_key(chat_id), user_id)
        return bool(removed)

    async def liked_ids(self, chat_id: int, user_id: int) -> list[str]:
        """Most recent first."""
        raw = await self.redis.hgetall(p.likes_key(chat_id, user_id))
        ordered = sorted(raw.items(), key=lambda item: float(item[1]), reverse=True)
        return [key.decode() for key, _ in ordered]

    async def group_likes(self, chat_id: int) -> dict[str, list[str]]:
        """Member display name -> liked ids, for everyone who liked something in this chat."""
        members = [int(m) for m in await self.redis.smembers(p.likers_key(chat_id))]
        names = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(p.member_names_key(chat_id))).items()}
        likes: dict[str, list[str]] = {}
        for member in sorted(members):
            ids = await self.liked_ids(chat_id, member)
            if ids:
                likes[names.get(str(member), f"member {member}")] = ids
        return likes

    async def forget(self, user_id: int) -> int:
        """Delete everything stored about a user; returns how many likes were removed."""
        chats = [int(c) for c in await self.redis.smembers(p.user_chats_key(user_id))]
        removed = 0
        for chat_id in chats:
            removed += await self.redis.hlen(p.likes_key(chat_id, user_id))
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(p.likes_key(chat_id, user_id))
                pipe.srem(p.likers_key(chat_id), user_id)
                pipe.hdel(p.member_names_key(chat_id), str(user_id))
                await pipe.execute()
        # The private chat's id is the user's id: its result list and pages are the user's too.
        await self.redis.delete(
            p.user_chats_key(user_id), p.results_key(user_id), _pages_key(user_id), _last_page_key(user_id)
        )
        return removed

    # ---- query vector cache

    async def cached_vector(self, fingerprint: str, content_hash: str, dim: int) -> np.ndarray | None:
        raw = await self.redis.get(p.query_vector_key(fingerprint, content_hash))
        if raw is None or len(raw) != dim * 4:
            return None
        return np.frombuffer(raw, dtype="<f4").copy()

    async def cache_vector(
        self, fingerprint: str, content_hash: str, vector: np.ndarray, file_unique_id: str | None
    ) -> None:
        if self.vector_ttl_s <= 0:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(
                p.query_vector_key(fingerprint, content_hash),
                np.asarray(vector, dtype="<f4").tobytes(),
                ex=self.vector_ttl_s,
            )
            if file_unique_id:
                pipe.set(p.file_unique_key(file_unique_id), content_hash, ex=self.vector_ttl_s)
            await pipe.execute()

    async def hash_for_file(self, file_unique_id: str) -> str | None:
        raw = await self.redis.get(p.file_unique_key(file_unique_id))
        return raw.decode() if raw else None
