"""The handlers called directly, with small stubs for Telegram and the worker and a real Redis: which sentence, in
which language, for each outcome, and what /language and /forget store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from telegram import InlineKeyboardMarkup

from bot import handlers, texts
from bot.album import CatalogPhotos
from bot.i18n import Lang, Translator
from bot.ratelimit import PhotoRateLimit
from bot.settings import BotSettings
from contract import codec, keys
from contract import messages as m
from contract.client import ChatBusy, QueueFull
from contract.outage import RedisOutage

CHAT_ID = USER_ID = 4242


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator.load()


# --- stubs: only what the handlers touch ------------------------------------------------------------------------------


@dataclass
class Sent:
    """One thing the bot said: a reply, a message, an edit or a callback answer."""

    how: str
    text: str | None
    markup: InlineKeyboardMarkup | None = None
    alert: bool = False

    @property
    def buttons(self) -> list[tuple[str, str]]:
        rows = self.markup.inline_keyboard if self.markup else ()
        return [(b.text, b.callback_data) for row in rows for b in row]  # type: ignore[misc]


@dataclass
class Log:
    said: list[Sent] = field(default_factory=list)

    def texts(self) -> list[str | None]:
        return [s.text for s in self.said]


@dataclass
class StubUser:
    id: int = USER_ID
    first_name: str = "Alice"
    username: str | None = None
    language_code: str | None = "en"


@dataclass
class StubChat:
    id: int = CHAT_ID
    type: str = "private"


@dataclass
class StubMessage:
    log: Log
    message_id: int = 1
    reply_to_message: Any = None
    photo: tuple[Any, ...] = ()
    document: Any = None
    caption: str | None = None
    location: Any = None

    async def reply_text(self, text: str, reply_markup: InlineKeyboardMarkup | None = None) -> None:
        self.log.said.append(Sent("reply", text, reply_markup))


@dataclass
class StubQuery:
    log: Log
    data: str

    async def answer(self, text: str | None = None, show_alert: bool = False) -> None:
        self.log.said.append(Sent("answer", text, alert=show_alert))

    async def edit_message_text(self, text: str) -> None:
        self.log.said.append(Sent("edit", text))


@dataclass
class StubUpdate:
    effective_user: StubUser
    effective_message: StubMessage
    effective_chat: StubChat = field(default_factory=StubChat)
    callback_query: StubQuery | None = None


@dataclass
class StubPhotoMessage:
    photo: tuple[Any, ...]


@dataclass
class StubBot:
    log: Log
    username: str = "wanderlens_bot"
    albums: list[list[str | None]] = field(default_factory=list)

    async def send_message(self, chat_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None) -> None:
        self.log.said.append(Sent("message", text, reply_markup))

    async def send_media_group(self, chat_id: int, media: list[Any], reply_to_message_id: int | None) -> list[Any]:
        self.albums.append([item.caption for item in media])
        return [StubPhotoMessage(()) for _ in media]

    async def send_chat_action(self, chat_id: int, action: str) -> None:
        pass


@dataclass
class StubJobs:
    """The worker's side of JobClient: each request gets the prepared outcome, or raises the prepared error."""

    outcome: m.Outcome | None = None
    error: Exception | None = None
    instance: str = "test"
    requests: list[m.Request] = field(default_factory=list)

    async def request(self, job: m.Job, photo: bytes | None = None, *, timeout: float) -> m.Reply:
        self.requests.append(job.request)
        if self.error is not None:
            raise self.error
        assert self.outcome is not None, "the test prepared no outcome"
        return m.Reply(job.id, job.kind, self.outcome)

    async def has_cached_photo(self, file_unique_id: str) -> bool:
        return True


@dataclass
class StubContext:
    bot_data: dict[str, Any]
    bot: StubBot
    args: list[str] = field(default_factory=list)


@dataclass
class Harness:
    """One user talking to the handlers; `say` and `press` return what the bot said."""

    translator: Translator
    redis: Redis
    jobs: StubJobs
    log: Log
    bot: StubBot
    services: handlers.Services
    user: StubUser = field(default_factory=StubUser)

    def update(self, *, query: str | None = None) -> StubUpdate:
        return StubUpdate(
            self.user, StubMessage(self.log), callback_query=StubQuery(self.log, query) if query is not None else None
        )

    def context(self, *args: str) -> StubContext:
        return StubContext({"services": self.services}, self.bot, list(args))

    async def say(self, handler: Any, *args: str) -> list[Sent]:
        self.log.said.clear()
        await handler(self.update(), self.context(*args))
        return list(self.log.said)

    async def press(self, data: str) -> list[Sent]:
        self.log.said.clear()
        await handlers.button(self.update(query=data), self.context())
        return list(self.log.said)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    for n in range(3):
        Image.new("RGB", (32, 24), (40 * n, 90, 200)).save(tmp_path / f"p{n}.jpg", format="JPEG")
    return tmp_path


@pytest.fixture
def harness(translator: Translator, redis: Redis, catalog: Path) -> Iterator[Harness]:
    log, jobs = Log(), StubJobs()
    services = handlers.Services(
        settings=BotSettings(telegram_token="1:x", catalog_dir=catalog),
        redis=redis,
        jobs=jobs,  # type: ignore[arg-type]
        photos=CatalogPhotos(catalog, redis),
        rate_limit=PhotoRateLimit(redis, per_minute=10),
        translator=translator,
        outage=RedisOutage(redis),
    )
    yield Harness(translator, redis, jobs, log, StubBot(log), services)


def item(n: int) -> m.Item:
    return m.Item(f"d{n}", f"Place {n}", "Bled", "Slovenia", 0.5 + n / 10, f"p{n}.jpg", f"h{n}", credit="Jane Doe")


# --- which language ---------------------------------------------------------------------------------------------------


async def test_like_with_a_non_number_explains_usage_in_the_users_language(harness: Harness) -> None:
    harness.user.language_code = "de-AT"
    de = harness.translator.for_language("de")
    assert await harness.say(handlers.like_command, "zwei") == [Sent("reply", de.gettext(texts.LIKE_USAGE))]
    assert de.gettext(texts.LIKE_USAGE) != texts.LIKE_USAGE  # really German, not the English msgid
    assert harness.jobs.requests == []


@pytest.mark.parametrize(("app_language", "expected"), [("fr", "fr"), ("pt-br", "pt_BR"), ("xx", "en"), (None, "en")])
async def test_the_apps_language_is_used_unless_the_user_chose_one(
    harness: Harness, app_language: str | None, expected: str
) -> None:
    harness.user.language_code = app_language
    (reply,) = await harness.say(handlers.help_command)
    assert reply.text == harness.translator.languages[expected].gettext(texts.HELP)
    await harness.redis.set(keys.user_language(USER_ID), "ru")
    (reply,) = await harness.say(handlers.help_command)
    assert reply.text == harness.translator.for_language("ru").gettext(texts.HELP)


# --- outcomes ---------------------------------------------------------------------------------------------------------


async def test_an_album_is_sent_with_captions_and_buttons_in_the_users_language(harness: Harness) -> None:
    harness.user.language_code = "de"
    de = harness.translator.for_language("de")
    harness.jobs.outcome = m.Album((item(0), item(1), item(2)), "page1", first_rank=6, remaining=4)
    (after,) = await harness.say(handlers.more_command)
    assert harness.jobs.requests == [m.More(harness.services.settings.album_size)]
    assert harness.bot.albums == [[texts.caption(de, 6 + n, item(n)) for n in range(3)]]
    # The country as German writes it; the city as the catalog does.
    first = de.gettext(texts.CAPTION_WITH_PLACE, rank="6", name="Place 0", place="Bled, Slowenien", percent="50\xa0%")
    assert harness.bot.albums[0][0] == f"{first}\n📷 Jane Doe"
    assert "50\xa0%" in first and "match" not in first  # the locale's percent, the catalog's words
    assert after.how == "message"
    assert after.text == texts.after_album(de, remaining=4)
    assert after.buttons == [
        ("👍6", "like:page1:1"),
        ("👍7", "like:page1:2"),
        ("👍8", "like:page1:3"),
        (de.gettext(texts.MORE_BUTTON), "more"),
    ]


@pytest.mark.parametrize("code", list(m.ErrorCode))
async def test_every_failure_has_its_sentence(harness: Harness, code: m.ErrorCode) -> None:
    harness.user.language_code = "fr"
    fr = harness.translator.for_language("fr")
    rejection = m.ImageRejection("too_small", min_side=32) if code is m.ErrorCode.BAD_IMAGE else None
    harness.jobs.outcome = m.Failure(code, rejection)
    (reply,) = await harness.say(handlers.likes_command)
    if code is m.ErrorCode.BAD_IMAGE:
        expected = texts.image_problem(fr, "too_small", min_side=32)
        assert "32×32" in expected
    else:  # PHOTO_GONE (and the /where codes, for now) never reach a user from /likes: the general apology
        expected = fr.gettext(texts.ERRORS.get(code, texts.FAILED))
    assert reply == Sent("reply", expected)
    # A refused photo is worded from its rejection; PHOTO_GONE makes the bot resend the photo.
    worded_elsewhere = {m.ErrorCode.BAD_IMAGE, m.ErrorCode.PHOTO_GONE}
    assert set(texts.ERRORS) == set(m.ErrorCode) - worded_elsewhere


@pytest.mark.parametrize(
    ("error", "sentence"),
    [(QueueFull(), texts.BUSY), (TimeoutError(), texts.TIMED_OUT), (ChatBusy(), texts.STILL_WORKING)],
)
async def test_no_reply_from_the_worker_is_explained_in_a_reply_or_an_alert(
    harness: Harness, error: Exception, sentence: str
) -> None:
    harness.user.language_code = "es"
    es = harness.translator.for_language("es")
    harness.jobs.error = error
    assert await harness.say(handlers.more_command) == [Sent("reply", es.gettext(sentence))]
    # Pressing More ▶: the button is answered first, then the alert says why.
    assert await harness.press("more") == [Sent("answer", None), Sent("answer", es.gettext(sentence), alert=True)]


async def test_a_like_button_that_fails_answers_with_the_reason(harness: Harness) -> None:
    harness.user.language_code = "it"
    it = harness.translator.for_language("it")
    harness.jobs.outcome = m.Failure(m.ErrorCode.UNKNOWN_DESTINATION)
    assert await harness.press("like:page1:2") == [Sent("answer", it.gettext(texts.UNKNOWN_DESTINATION))]
    assert harness.jobs.requests == [m.Like("page1", 2, user_name="Alice")]


# --- /language and /forget --------------------------------------------------------------------------------------------


async def test_language_with_a_code_or_a_name_sets_it_and_answers_in_it(harness: Harness) -> None:
    fr, de = harness.translator.for_language("fr"), harness.translator.for_language("de")
    assert await harness.say(handlers.language_command, "fr") == [
        Sent("reply", fr.gettext(texts.LANGUAGE_SET, language="Français"))
    ]
    assert await harness.redis.get(keys.user_language(USER_ID)) == b"fr"
    assert await harness.redis.ttl(keys.user_language(USER_ID)) == -1  # a setting: no expiry
    await harness.say(handlers.language_command, "de-CH")
    (reply,) = await harness.say(handlers.help_command)
    assert reply.text == de.gettext(texts.HELP)
    assert (await handlers.user_lang(harness.update(), harness.context())).number(1240) == "1'240"  # Swiss
    assert await harness.say(handlers.language_command, "Deutsch") == [
        Sent("reply", de.gettext(texts.LANGUAGE_SET, language="Deutsch"))
    ]
    assert await harness.redis.get(keys.user_language(USER_ID)) == b"de"


async def test_an_unknown_language_lists_the_choices_and_changes_nothing(harness: Harness) -> None:
    harness.user.language_code = "ru"
    ru = harness.translator.for_language("ru")
    (reply,) = await harness.say(handlers.language_command, "xx")
    assert reply.text == texts.language_unknown(ru, "xx", harness.translator)
    assert "de (Deutsch)" in (reply.text or "")
    assert not await harness.redis.exists(keys.user_language(USER_ID))


async def test_language_alone_offers_every_language_and_automatic(harness: Harness) -> None:
    harness.user.language_code = "de"
    de: Lang = harness.translator.for_language("de")
    (prompt,) = await harness.say(handlers.language_command)
    assert prompt.text == de.gettext(texts.LANGUAGE_PROMPT)
    assert prompt.buttons == [(lang.name, f"lang:{lang.code}") for lang in harness.translator] + [
        (de.gettext(texts.LANGUAGE_AUTO_BUTTON), "lang:auto")
    ]
    pt = harness.translator.languages["pt_BR"]
    assert await harness.press("lang:pt_BR") == [
        Sent("answer", None),
        Sent("edit", pt.gettext(texts.LANGUAGE_SET, language=pt.name)),
    ]
    assert await harness.redis.get(keys.user_language(USER_ID)) == b"pt_BR"
    # "Automatic" forgets the choice and says so in the app's language.
    assert await harness.press("lang:auto") == [Sent("answer", None), Sent("edit", de.gettext(texts.LANGUAGE_AUTO))]
    assert not await harness.redis.exists(keys.user_language(USER_ID))


async def test_forget_deletes_the_language_choice_too(harness: Harness) -> None:
    await harness.say(handlers.language_command, "it")
    it = harness.translator.for_language("it")
    (question,) = await harness.say(handlers.forget_command)
    assert question.text == it.gettext(texts.FORGET_CONFIRM)
    assert [label for label, _ in question.buttons] == [it.gettext(texts.FORGET_YES), it.gettext(texts.FORGET_NO)]
    harness.jobs.outcome = m.Forgotten(likes_deleted=2)
    assert await harness.press("forget:yes") == [Sent("answer", None), Sent("edit", texts.forgotten(it, 2))]
    assert harness.jobs.requests == [m.Forget()]
    assert not await harness.redis.exists(keys.user_language(USER_ID))


async def test_a_failed_forget_keeps_the_language_choice(harness: Harness) -> None:
    await harness.say(handlers.language_command, "it")
    harness.jobs.outcome = m.Failure(m.ErrorCode.FAILED)
    await harness.press("forget:yes")
    assert await harness.redis.get(keys.user_language(USER_ID)) == b"it"


async def test_an_unreadable_choice_falls_back_to_the_apps_language(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.user.language_code = "de"
    await harness.redis.set(keys.user_language(USER_ID), "fr")

    async def down(*args: object) -> None:
        raise RedisConnectionError("Redis went away")

    monkeypatch.setattr(harness.redis, "get", down)
    (reply,) = await harness.say(handlers.start)
    assert reply.text == harness.translator.for_language("de").gettext(texts.START)


# --- places on the map ------------------------------------------------------------------------------------------------


@dataclass
class StubLocation:
    latitude: float
    longitude: float


async def test_a_location_off_the_globe_or_at_zero_is_refused_and_a_good_one_kept(harness: Harness) -> None:
    en = harness.translator.default
    for latitude, longitude in ((0.0, 0.0), (95.0, 10.0), (10.0, -181.0)):
        update = harness.update()
        update.effective_message.location = StubLocation(latitude, longitude)
        harness.log.said.clear()
        await handlers.location(update, harness.context())  # type: ignore[arg-type]
        assert [s.text for s in harness.log.said] == [en.gettext(texts.BAD_LOCATION)], (latitude, longitude)
        assert not await harness.redis.exists(keys.user_location(USER_ID))
    update = harness.update()
    update.effective_message.location = StubLocation(41.9, 12.5)
    await handlers.location(update, harness.context())  # type: ignore[arg-type]
    stored = codec.location_from_json(await harness.redis.get(keys.user_location(USER_ID)))
    assert stored == m.Location(41.9, 12.5)
    # The next photo's request carries it; /nearby off forgets it.
    assert (await handlers._scope(harness.services, USER_ID, CHAT_ID))[0] == stored
    assert await harness.say(handlers.nearby_command, "off") == [Sent("reply", en.gettext(texts.DISTANCE_OFF))]
    assert not await harness.redis.exists(keys.user_location(USER_ID))


async def test_a_pin_for_a_place_without_coordinates_says_so_by_name(harness: Harness) -> None:
    harness.jobs.outcome = m.Located(item(1))  # the catalog gives it no lat/lon
    en = harness.translator.default
    said = await harness.press("map:page1:2")
    assert harness.jobs.requests == [m.Locate("page1", 2)]
    assert said == [Sent("answer", en.gettext(texts.NO_COORDINATES, name="Place 1"))]
