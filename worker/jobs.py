"""What each kind of job does, once its photo (if any) has been fingerprinted.

Handlers take the index that was current when their batch started, so a hot reload never mixes two versions
within one answer. Each returns the job's outcome; the loop wraps it in a reply and delivers it. The ranking
itself is ``recommender.ranking``'s: here are only what is stored in Redis and what the bot is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from redis.asyncio.client import Pipeline

from contract import messages as m
from recommender.geo import Region, parse_region
from recommender.index import DestinationIndex
from recommender.ranking import (
    RankedDestination,
    Scope,
    allowed_rows,
    rank_for_members,
    rank_for_photo,
    rank_for_photos,
)
from recommender.taste import TasteWeights
from worker.state import ResultList, WorkerState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    state: WorkerState
    index: DestinationIndex
    result_list_size: int
    taste: TasteWeights = field(default_factory=TasteWeights)


def page_size(k: int) -> int:
    return max(1, min(m.MAX_PAGE, k))


def _items(
    ctx: JobContext,
    ids: Sequence[str],
    scores: dict[str, float],
    fits: dict[str, tuple[str, ...]],
    distances: dict[str, float] | None = None,
) -> tuple[m.Item, ...]:
    items = []
    for destination_id in ids:
        position = ctx.index.position(destination_id)
        if position is None:
            continue  # removed from the catalog by a reload since the list was made
        destination = ctx.index.destinations[position]
        items.append(
            m.Item(
                id=destination.id,
                name=destination.name,
                city=destination.city,
                country=destination.country,
                score=scores.get(destination_id, 1.0),
                image=destination.image,
                image_hash=ctx.index.content_hashes[position],
                credit=destination.credit,
                licence=destination.licence,
                fits=fits.get(destination_id, ()),
                lat=destination.lat,
                lon=destination.lon,
                distance_km=(distances or {}).get(destination_id),
                names=tuple(m.LocalName(language, name) for language, name in destination.names),
            )
        )
    return tuple(items)


def _list_items(ctx: JobContext, results: ResultList, ids: Sequence[str]) -> tuple[m.Item, ...]:
    return _items(ctx, ids, dict(zip(results.ids, results.scores, strict=True)), results.fits, results.distances)


def _result_list(job: m.Job, ctx: JobContext, ranked: list[RankedDestination], **extra: object) -> ResultList:
    return ResultList(
        list_id=job.id[:12],
        ids=tuple(r.destination.id for r in ranked),
        scores=tuple(r.similarity for r in ranked),
        index_version=ctx.index.version,
        fits={r.destination.id: r.fits for r in ranked if r.fits},
        distances={r.destination.id: r.distance_km for r in ranked if r.distance_km is not None},
        **extra,  # type: ignore[arg-type]
    )


def _album(ctx: JobContext, results: ResultList, page: list[str], page_id: str, **album: object) -> m.Album:
    return m.Album(
        items=_list_items(ctx, results, page),
        page_id=page_id,
        first_rank=1,
        remaining=max(0, len(results.ids) - len(page)),
        hints=results.hints,
        region=results.region,
        near=bool(results.distances),
        **album,  # type: ignore[arg-type]
    )


def _first_page_ids(results: ResultList, k: int) -> list[str]:
    return list(results.ids[: page_size(k)])


async def _first_page(ctx: JobContext, job: m.Job, results: ResultList, k: int, **album: object) -> m.Album:
    """Save a new result list with its first page (one transaction) and show that page."""
    page = _first_page_ids(results, k)
    page_id = await ctx.state.save_new_list(job.chat_id, results, page)
    return _album(ctx, results, page, page_id, **album)


def queue_first_page(ctx: JobContext, pipe: Pipeline, job: m.Job, results: ResultList, k: int) -> m.Album:
    """``_first_page`` with its writes queued on ``pipe``: the caller sends them, before the reply."""
    page = _first_page_ids(results, k)
    return _album(ctx, results, page, ctx.state.queue_new_list(pipe, job.chat_id, results, page))


def _region(text: str) -> Region | m.Failure | None:
    """The region typed after /where (None: none asked for), or why there is none."""
    if not text:
        return None
    return parse_region(text) or m.Failure(m.ErrorCode.UNKNOWN_REGION)


def _photo_results(
    ctx: JobContext,
    job: m.Job,
    request: m.Recommend,
    query: np.ndarray,
    hints: tuple[str, ...],
    liked: Sequence[str],
    ranked: list[RankedDestination] | None = None,
) -> ResultList | m.Failure:
    """A photo's result list, leaning toward what this person liked in this chat, within their scope.

    ``ranked``: the photo's ranking when the batch ranked it already (photos without a region or a location)."""
    region = _region(request.region)
    if isinstance(region, m.Failure):
        return region
    near = ((request.near.lat, request.near.lon),) if request.near is not None else ()
    if region is not None and region.radius_km is not None and not near:
        return m.Failure(m.ErrorCode.NEED_LOCATION)
    if ranked is None:
        scope = Scope(region, near)
        ranked = rank_for_photo(ctx.index, query, ctx.result_list_size, liked_ids=liked, taste=ctx.taste, scope=scope)
    if not ranked:
        return m.Failure(m.ErrorCode.EMPTY_REGION)
    return _result_list(job, ctx, ranked, hints=hints, region=region.label if region else "")


async def recommend(
    ctx: JobContext, job: m.Job, request: m.Recommend, query: np.ndarray, hints: tuple[str, ...]
) -> m.Outcome:
    """Rank the catalog for one photo and save its first page (the batch's way is ``recommend_many``)."""
    liked = await ctx.state.liked_ids(job.chat_id, job.user_id)
    results = _photo_results(ctx, job, request, query, hints, liked)
    if isinstance(results, m.Failure):
        return results
    return await _first_page(ctx, job, results, request.k)


async def recommend_many(
    ctx: JobContext, pipe: Pipeline, batch: Sequence[tuple[m.Job, m.Recommend, np.ndarray, tuple[str, ...]]]
) -> list[m.Outcome]:
    """``recommend`` for a whole batch, its writes queued on ``pipe`` (the caller sends them with the replies).

    One round trip for everyone's likes, one pass over the catalog for every photo without a region or a location
    (the others are ranked one by one, each in its own scope). Every photo is ranked before anything is queued, so
    a failure leaves ``pipe`` as it was."""
    likes = await ctx.state.liked_ids_many([(job.chat_id, job.user_id) for job, *_ in batch])
    plain = [n for n, (_, request, _, _) in enumerate(batch) if not request.region and request.near is None]
    ranked: dict[int, list[RankedDestination]] = {}
    if plain:
        rankings = rank_for_photos(
            ctx.index,
            np.stack([batch[n][2] for n in plain]),
            ctx.result_list_size,
            liked_ids=[likes[n] for n in plain],
            taste=ctx.taste,
        )
        ranked = dict(zip(plain, rankings, strict=True))
    found = [_photo_results(ctx, *photo, likes[n], ranked.get(n)) for n, photo in enumerate(batch)]
    return [
        results if isinstance(results, m.Failure) else queue_first_page(ctx, pipe, job, results, request.k)
        for (job, request, _, _), results in zip(batch, found, strict=True)
    ]


async def more(ctx: JobContext, job: m.Job, request: m.More) -> m.Outcome:
    """The next page of the chat's latest list, never repeating what this chat was already shown from it."""
    results = await ctx.state.load_results(job.chat_id)
    if results is None:
        return m.Failure(m.ErrorCode.NO_RESULTS_YET)
    shown = await ctx.state.shown(job.chat_id, results.list_id)
    unseen = [i for i in results.ids if i not in shown and ctx.index.position(i) is not None]
    if not unseen:
        return m.Failure(m.ErrorCode.NOTHING_LEFT)
    page = unseen[: page_size(request.k)]
    first_rank = len(shown) + 1
    page_id = await ctx.state.record_page(job.chat_id, results.list_id, page, first_rank=first_rank)
    return m.Album(
        items=_list_items(ctx, results, page),
        page_id=page_id,
        first_rank=first_rank,
        remaining=len(unseen) - len(page),
        group=bool(results.fits),
        region=results.region,
        near=bool(results.distances),
    )


async def _like(ctx: JobContext, job: m.Job, destination_id: str | None, user_name: str) -> m.Outcome:
    if destination_id is None or ctx.index.position(destination_id) is None:
        return m.Failure(m.ErrorCode.UNKNOWN_DESTINATION)
    total = await ctx.state.like(job.chat_id, job.user_id, user_name, destination_id)
    return m.Liked(_items(ctx, [destination_id], {}, {})[0], total)


async def like(ctx: JobContext, job: m.Job, request: m.Like) -> m.Outcome:
    """A 👍 button: the destination at its position on the page the button belongs to."""
    destination_id = await ctx.state.page_item(job.chat_id, request.page_id, request.position)
    return await _like(ctx, job, destination_id, request.user_name)


async def like_number(ctx: JobContext, job: m.Job, request: m.LikeNumber) -> m.Outcome:
    """/like N: the destination numbered N in the chat's latest album."""
    destination_id = await ctx.state.numbered_item(job.chat_id, request.number)
    return await _like(ctx, job, destination_id, request.user_name)


async def likes(ctx: JobContext, job: m.Job, request: m.Likes) -> m.Outcome:
    ids = [i for i in await ctx.state.liked_ids(job.chat_id, job.user_id) if ctx.index.position(i) is not None]
    return m.LikedPlaces(_items(ctx, ids[: m.MAX_LISTED_LIKES], {}, {}), len(ids))


async def group_suggest(ctx: JobContext, job: m.Job, request: m.GroupSuggest) -> m.Outcome:
    """Places for everyone in the chat who liked something, whom each place suits, near those who shared a location."""
    region = _region(request.region)
    if isinstance(region, m.Failure):
        return region
    members = await ctx.state.likers(job.chat_id)
    near = tuple((at.lat, at.lon) for at in await ctx.state.locations(members))
    if region is not None and region.radius_km is not None and not near:
        return m.Failure(m.ErrorCode.NEED_LOCATION)
    ranked, names = rank_for_members(
        ctx.index, await ctx.state.group_likes(job.chat_id), ctx.result_list_size, scope=Scope(region, near)
    )
    if not names:
        return m.Failure(m.ErrorCode.NO_GROUP_TASTE)
    if not ranked:
        return m.Failure(m.ErrorCode.EMPTY_REGION)
    results = _result_list(job, ctx, ranked, region=region.label if region else "")
    return await _first_page(ctx, job, results, request.k, group=True, members=names)


async def locate(ctx: JobContext, job: m.Job, request: m.Locate) -> m.Outcome:
    """Where a result of a page is, for a map pin."""
    destination_id = await ctx.state.page_item(job.chat_id, request.page_id, request.position)
    if destination_id is None or ctx.index.position(destination_id) is None:
        return m.Failure(m.ErrorCode.UNKNOWN_DESTINATION)
    (item,) = _items(ctx, [destination_id], {}, {})
    return m.Located(item)


async def check_region(ctx: JobContext, job: m.Job, request: m.CheckRegion) -> m.Outcome:
    """Whether /where names a region, and how many destinations of the catalog lie in it."""
    region = _region(request.text)
    if region is None or isinstance(region, m.Failure):
        return region or m.Failure(m.ErrorCode.UNKNOWN_REGION)
    near = ((request.near.lat, request.near.lon),) if request.near is not None else ()
    if region.radius_km is not None and not near:
        return m.Failure(m.ErrorCode.NEED_LOCATION)
    inside = allowed_rows(ctx.index, Scope(region, near))
    places = len({ctx.index.group_of(int(row)) for row in np.flatnonzero(inside)}) if inside is not None else 0
    return m.RegionFound(region.label, places) if places else m.Failure(m.ErrorCode.EMPTY_REGION)


async def forget(ctx: JobContext, job: m.Job, request: m.Forget) -> m.Outcome:
    return m.Forgotten(await ctx.state.forget(job.user_id))


Handler = Callable[[JobContext, m.Job, m.Request], Awaitable[m.Outcome]]

# Every kind but RECOMMEND, which needs its photo's fingerprint first (the loop calls ``recommend`` itself).
HANDLERS: dict[type[m.Request], Handler] = {
    m.More: more,  # type: ignore[dict-item]
    m.Like: like,  # type: ignore[dict-item]
    m.LikeNumber: like_number,  # type: ignore[dict-item]
    m.Likes: likes,  # type: ignore[dict-item]
    m.GroupSuggest: group_suggest,  # type: ignore[dict-item]
    m.Forget: forget,  # type: ignore[dict-item]
    m.Locate: locate,  # type: ignore[dict-item]
    m.CheckRegion: check_region,  # type: ignore[dict-item]
}
