"""What each kind of job does, once its photo (if any) has been fingerprinted.

Handlers take the index that was current when their batch started, so a hot reload never mixes two versions
within one answer. They return a ``Reply``; the loop delivers it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from recommender.index import DestinationIndex
from recommender.taste import TasteWeights, rank_for_group, steer, taste_profile
from worker import protocol as p
from worker.state import ResultList, WorkerState

logger = logging.getLogger(__name__)

DEFAULT_PAGE = 5
MAX_PAGE = 10


@dataclass(frozen=True)
class JobContext:
    state: WorkerState
    index: DestinationIndex
    result_list_size: int
    taste: TasteWeights = field(default_factory=TasteWeights)


def page_size(job: p.Job) -> int:
    try:
        return max(1, min(MAX_PAGE, int(job.body.get("k", DEFAULT_PAGE))))
    except (TypeError, ValueError):
        return DEFAULT_PAGE


def _items(index: DestinationIndex, results: ResultList, ids: list[str]) -> tuple[p.Item, ...]:
    scores = dict(zip(results.ids, results.scores, strict=True))
    items = []
    for destination_id in ids:
        position = index.position(destination_id)
        if position is None:
            continue  # removed from the catalog by a reload since the list was made
        destination = index.destinations[position]
        items.append(
            p.Item(
                id=destination.id,
                name=destination.name,
                city=destination.city,
                country=destination.country,
                score=scores.get(destination_id, 0.0),
                image=destination.image,
                image_hash=index.content_hashes[position],
                credit=destination.credit,
                fits=results.fits.get(destination_id, ()),
            )
        )
    return tuple(items)


async def _first_page(ctx: JobContext, job: p.Job, results: ResultList) -> p.Reply:
    await ctx.state.save_results(job.chat_id, results)
    page = list(results.ids[: page_size(job)])
    page_id = await ctx.state.record_page(job.chat_id, results.list_id, page)
    return p.Reply(
        job.id,
        job.kind,
        items=_items(ctx.index, results, page),
        hints=results.hints,
        remaining=max(0, len(results.ids) - len(page)),
        extra={"page_id": page_id, "list_id": results.list_id, "first_rank": 1},
    )


async def recommend(ctx: JobContext, job: p.Job, query: np.ndarray, hints: tuple[str, ...]) -> p.Reply:
    """Rank the catalog for a photo, leaning toward what this person liked in this chat."""
    liked = await ctx.state.liked_ids(job.chat_id, job.user_id)
    searched = ctx.index.prepare_queries(query)[0]  # into the catalog's (whitened) space, where the likes live
    steered = steer(searched, ctx.index.vectors_of(liked), weights=ctx.taste) if liked else searched
    matches = ctx.index.rank_positions(steered, ctx.result_list_size)
    positions = [m.position for m in matches]
    results = ResultList(
        list_id=job.id[:12],
        ids=tuple(ctx.index.destinations[i].id for i in positions),
        # People read "% match" as how alike the photos look: the plain cosine of the two fingerprints, not the
        # whitened score that ranks them (which spreads everything toward zero).
        scores=tuple(float(s) for s in ctx.index.photo_similarity(query, positions)),
        index_version=ctx.index.version,
        hints=hints,
    )
    return await _first_page(ctx, job, results)


async def more(ctx: JobContext, job: p.Job) -> p.Reply:
    """The next page of the chat's latest list, never repeating what this chat was already shown from it."""
    results = await ctx.state.load_results(job.chat_id)
    if results is None:
        return p.Reply(job.id, job.kind, error=p.NO_RESULTS_YET)
    shown = await ctx.state.shown(job.chat_id, results.list_id)
    unseen = [i for i in results.ids if i not in shown and ctx.index.position(i) is not None]
    if not unseen:
        return p.Reply(job.id, job.kind, error=p.NOTHING_LEFT)
    page = unseen[: page_size(job)]
    first_rank = len(shown) + 1
    page_id = await ctx.state.record_page(job.chat_id, results.list_id, page, first_rank=first_rank)
    return p.Reply(
        job.id,
        job.kind,
        items=_items(ctx.index, results, page),
        remaining=len(unseen) - len(page),
        extra={"page_id": page_id, "list_id": results.list_id, "group": bool(results.fits), "first_rank": first_rank},
    )


async def _resolve_destination(ctx: JobContext, job: p.Job) -> str | None:
    if "destination_id" in job.body:
        destination_id = str(job.body["destination_id"])
        return destination_id if ctx.index.position(destination_id) is not None else None
    numbered = "number" in job.body
    try:
        rank = int(job.body["number"] if numbered else job.body.get("rank", 1))
    except (TypeError, ValueError):
        return None
    page_id = job.body.get("page_id")
    destination_id = await ctx.state.page_item(
        job.chat_id, str(page_id) if page_id else None, rank, as_numbered=numbered
    )
    return destination_id if destination_id and ctx.index.position(destination_id) is not None else None


def _single(ctx: JobContext, destination_id: str) -> tuple[p.Item, ...]:
    one = ResultList("single", (destination_id,), (1.0,), ctx.index.version)
    return _items(ctx.index, one, [destination_id])


async def like(ctx: JobContext, job: p.Job) -> p.Reply:
    destination_id = await _resolve_destination(ctx, job)
    if destination_id is None:
        return p.Reply(job.id, job.kind, error=p.UNKNOWN_DESTINATION)
    count = await ctx.state.like(job.chat_id, job.user_id, str(job.body.get("user_name", "")), destination_id)
    return p.Reply(job.id, job.kind, items=_single(ctx, destination_id), extra={"likes": count})


async def unlike(ctx: JobContext, job: p.Job) -> p.Reply:
    destination_id = await _resolve_destination(ctx, job)
    if destination_id is None:
        return p.Reply(job.id, job.kind, error=p.UNKNOWN_DESTINATION)
    removed = await ctx.state.unlike(job.chat_id, job.user_id, destination_id)
    return p.Reply(job.id, job.kind, items=_single(ctx, destination_id), extra={"removed": removed})


async def likes(ctx: JobContext, job: p.Job) -> p.Reply:
    ids = [i for i in await ctx.state.liked_ids(job.chat_id, job.user_id) if ctx.index.position(i) is not None]
    listing = ResultList("likes", tuple(ids), tuple(1.0 for _ in ids), ctx.index.version)
    return p.Reply(job.id, job.kind, items=_items(ctx.index, listing, ids[:50]), extra={"total": len(ids)})


async def group_suggest(ctx: JobContext, job: p.Job) -> p.Reply:
    """Places for everyone in the chat who liked something, and whom each place suits."""
    member_likes = await ctx.state.group_likes(job.chat_id)
    profiles = {}
    for member, ids in member_likes.items():
        profile = taste_profile(ctx.index.vectors_of(ids))
        if profile is not None:
            profiles[member] = profile
    if not profiles:
        return p.Reply(job.id, job.kind, error=p.NO_GROUP_TASTE)
    liked_positions = {pos for ids in member_likes.values() for i in ids if (pos := ctx.index.position(i)) is not None}
    candidates = rank_for_group(
        profiles,
        np.asarray(ctx.index.vectors, dtype=np.float32),
        ctx.result_list_size,
        strategy=str(job.body.get("strategy", "fair")),
        exclude=sorted(liked_positions),
    )
    ids = tuple(ctx.index.destinations[c.position].id for c in candidates)
    results = ResultList(
        list_id=job.id[:12],
        ids=ids,
        scores=tuple(c.score for c in candidates),
        index_version=ctx.index.version,
        fits={i: c.fits for i, c in zip(ids, candidates, strict=True)},
    )
    reply = await _first_page(ctx, job, results)
    return p.Reply(
        reply.job_id,
        reply.kind,
        items=reply.items,
        remaining=reply.remaining,
        extra={**reply.extra, "members": sorted(profiles), "group": True},
    )


async def forget(ctx: JobContext, job: p.Job) -> p.Reply:
    removed = await ctx.state.forget(job.user_id)
    return p.Reply(job.id, job.kind, extra={"likes_deleted": removed})


HANDLERS = {
    p.MORE: more,
    p.LIKE: like,
    p.UNLIKE: unlike,
    p.LIKES: likes,
    p.GROUP_SUGGEST: group_suggest,
    p.FORGET: forget,
}
