"""What travels between the bot and the worker: one frozen dataclass per kind of request and per outcome.

A ``Job`` wraps one request with who asked and until when; a ``Reply`` wraps one outcome. Which outcomes a kind
can have is written down in ``OUTCOMES``, and the codec enforces it. Photos never travel inside a job: the bot
stores them under their own key (``keys.photo``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from enum import StrEnum

DEFAULT_PAGE = 5
MAX_PAGE = 10


class JobKind(StrEnum):
    RECOMMEND = "recommend"
    MORE = "more"
    LIKE = "like"  # a 👍 button: a position on a given page
    LIKE_NUMBER = "like_number"  # /like N: the number printed in the chat's latest album
    LIKES = "likes"
    GROUP_SUGGEST = "group_suggest"
    FORGET = "forget"
    LOCATE = "locate"  # a 📍 button: where a result is, for a map
    CHECK_REGION = "check_region"  # /where: is this a region the catalog has places in?


class ErrorCode(StrEnum):
    """Why a job has no result; the bot turns each into a sentence for the user."""

    BAD_IMAGE = "bad_image"
    EXPIRED = "expired"
    FAILED = "failed"
    NOTHING_LEFT = "nothing_left"
    NO_RESULTS_YET = "no_results_yet"
    UNKNOWN_DESTINATION = "unknown_destination"
    NO_GROUP_TASTE = "no_group_taste"
    PHOTO_GONE = "photo_gone"  # the worker had neither the photo nor its cached fingerprint: send it again
    UNKNOWN_REGION = "unknown_region"
    EMPTY_REGION = "empty_region"  # a region the catalog has no place in
    NEED_LOCATION = "need_location"  # "within 300 km" of a person who has not shared where they are


@dataclass(frozen=True)
class Location:
    """A point on Earth, in degrees (the bot checks it is one before sending it)."""

    lat: float
    lon: float


# --------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Recommend:
    """Destinations like the photo stored with the job (or, without one, the cached fingerprint of that file)."""

    k: int = DEFAULT_PAGE
    file_unique_id: str = ""
    near: Location | None = None  # rank places near here higher
    region: str = ""  # only places in this region, as the person typed it after /where


@dataclass(frozen=True)
class More:
    """The next page of the chat's latest list."""

    k: int = DEFAULT_PAGE


@dataclass(frozen=True)
class Like:
    """A 👍 button: the destination at 1-based ``position`` on page ``page_id``."""

    page_id: str
    position: int
    user_name: str = ""


@dataclass(frozen=True)
class LikeNumber:
    """/like N: the destination numbered N in the chat's latest album (or at position N on it)."""

    number: int
    user_name: str = ""


@dataclass(frozen=True)
class Likes:
    """What this user liked in this chat."""


@dataclass(frozen=True)
class GroupSuggest:
    """Places for everyone in the chat who liked something (near the members who shared where they are)."""

    k: int = DEFAULT_PAGE
    region: str = ""


@dataclass(frozen=True)
class Locate:
    """A 📍 button: the destination at 1-based ``position`` on page ``page_id``, to show on a map."""

    page_id: str
    position: int


@dataclass(frozen=True)
class CheckRegion:
    """/where TEXT: whether it names a region with places in the catalog."""

    text: str
    near: Location | None = None  # needed for "within 300 km"


@dataclass(frozen=True)
class Forget:
    """Delete everything kept about this user."""


Request = Recommend | More | Like | LikeNumber | Likes | GroupSuggest | Forget | Locate | CheckRegion

KIND_OF: dict[type[Request], JobKind] = {
    Recommend: JobKind.RECOMMEND,
    More: JobKind.MORE,
    Like: JobKind.LIKE,
    LikeNumber: JobKind.LIKE_NUMBER,
    Likes: JobKind.LIKES,
    GroupSuggest: JobKind.GROUP_SUGGEST,
    Forget: JobKind.FORGET,
    Locate: JobKind.LOCATE,
    CheckRegion: JobKind.CHECK_REGION,
}
REQUEST_OF: dict[JobKind, type[Request]] = {kind: request for request, kind in KIND_OF.items()}


@dataclass(frozen=True)
class Job:
    """One request, who sent it, where to answer and until when."""

    id: str
    chat_id: int
    user_id: int
    reply_to: str  # the submitting bot instance's reply list
    created: float
    deadline: float
    request: Request

    @property
    def kind(self) -> JobKind:
        return KIND_OF[type(self.request)]

    @classmethod
    def new(cls, request: Request, *, chat_id: int, user_id: int, reply_to: str, timeout: float) -> Job:
        now = time.time()
        return cls(uuid.uuid4().hex, chat_id, user_id, reply_to, now, now + timeout, request)

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) > self.deadline

    def resent(self, timeout: float) -> Job:
        """The same job with a new deadline, to submit again after Redis came back: the id is kept, so a worker
        that got the first submission too answers only once."""
        return replace(self, deadline=time.time() + timeout)


# --------------------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class LocalName:
    language: str  # as the catalog's column names it: "de", "pt_br"
    name: str


@dataclass(frozen=True)
class Item:
    """One destination in a reply, with everything the bot needs to show it."""

    id: str
    name: str
    city: str
    country: str
    score: float  # the plain photo similarity shown as "% match" (1.0 where there is no photo to compare)
    image: str  # relative to the catalog folder
    image_hash: str
    credit: str = ""  # the photo's author (CC BY and BY-SA require naming them)
    licence: str = ""
    fits: tuple[str, ...] = ()  # group suggestions: the members it suits
    lat: float | None = None
    lon: float | None = None
    distance_km: float | None = None  # from the person (or the group, on average) when they shared a location
    names: tuple[LocalName, ...] = ()  # the name in other languages, where the catalog has them


@dataclass(frozen=True)
class Album:
    """A page of destinations (a photo's, /more's, or the group's)."""

    items: tuple[Item, ...]
    page_id: str  # names the page for its 👍 buttons
    first_rank: int  # the number printed under the first item (pages after /more go on counting)
    remaining: int  # how many more /more can show
    hints: tuple[str, ...] = ()  # what the photo looks like, best first
    group: bool = False  # ranked for the group's members rather than for a photo
    members: tuple[str, ...] = ()  # group suggestions: whom they were ranked for
    region: str = ""  # the region the places were limited to, as people read it ("Italy", "300 km")
    near: bool = False  # ranked with distance (the person's, or the group members' locations)


@dataclass(frozen=True)
class Liked:
    item: Item
    total: int  # this user's likes in this chat, the new one included


@dataclass(frozen=True)
class LikedPlaces:
    items: tuple[Item, ...]  # most recent first, at most ``MAX_LISTED_LIKES``
    total: int


@dataclass(frozen=True)
class Forgotten:
    likes_deleted: int


@dataclass(frozen=True)
class Located:
    item: Item  # with its coordinates, where the catalog has them


@dataclass(frozen=True)
class RegionFound:
    label: str  # as people read it: "Italy", "Europe", "300 km"
    places: int  # destinations in it


@dataclass(frozen=True)
class ImageRejection:
    """Why a photo could not be used, with the limit it broke: the bot words it for the user."""

    reason: str  # recommender.images.ImageProblem's value
    format: str = ""  # the refused format, where that is the reason
    max_bytes: int = 0
    max_pixels: int = 0
    min_side: int = 0


@dataclass(frozen=True)
class Failure:
    code: ErrorCode
    image: ImageRejection | None = None  # with BAD_IMAGE


Outcome = Album | Liked | LikedPlaces | Forgotten | Located | RegionFound | Failure

MAX_LISTED_LIKES = 50

# Which outcomes each kind of job can have (a Failure is always possible).
OUTCOMES: dict[JobKind, tuple[type[Outcome], ...]] = {
    JobKind.RECOMMEND: (Album,),
    JobKind.MORE: (Album,),
    JobKind.GROUP_SUGGEST: (Album,),
    JobKind.LIKE: (Liked,),
    JobKind.LIKE_NUMBER: (Liked,),
    JobKind.LIKES: (LikedPlaces,),
    JobKind.FORGET: (Forgotten,),
    JobKind.LOCATE: (Located,),
    JobKind.CHECK_REGION: (RegionFound,),
}


@dataclass(frozen=True)
class Reply:
    job_id: str
    kind: JobKind
    outcome: Outcome

    @property
    def failure(self) -> Failure | None:
        return self.outcome if isinstance(self.outcome, Failure) else None
