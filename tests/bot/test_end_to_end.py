"""The bot end to end, without Telegram: the unmodified Application polling the Bot API stand-in, a real Redis
server, and the real worker with the default backbone over a real catalog."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot import texts
from bot.i18n import Lang, Translator
from contract import keys
from playground.models import BotMessage
from tests.system import running_system

CAPTION = re.compile(r"^(?P<rank>\d+)\. (?P<name>.+?)(?: — (?P<place>.+?))? · (?P<match>\d+)% match")


def names(album: BotMessage, lang: Lang | None = None) -> list[str]:
    """The destinations' names, read from captions in English or (given `lang`) in that language's wording."""
    patterns = caption_patterns(lang) if lang is not None else [CAPTION]
    found = []
    for caption in album.captions:
        first_line = (caption or "").split("\n")[0]
        match = next((hit for p in patterns if (hit := p.match(first_line))), None)
        assert match, f"caption does not read like '1. Name — City, Country · 87% match' in {lang}: {caption!r}"
        found.append(match["name"])
    return found


def caption_patterns(lang: Lang) -> list[re.Pattern[str]]:
    """The caption as `lang` words it (its catalog's templates, its locale's percent), so no test hard-codes German."""
    percent = re.escape(lang.percent(0.42)).replace("42", r"(?P<match>\d+)")
    fields = {"rank": r"(?P<rank>\d+)", "name": "(?P<name>.+?)", "place": "(?P<place>.+?)", "percent": percent}
    patterns = []
    for message in (texts.CAPTION_WITH_PLACE, texts.CAPTION):
        template = re.escape(lang.translations.gettext(message))
        for name, group in fields.items():
            template = template.replace(re.escape(f"{{{name}}}"), group)
        patterns.append(re.compile(f"^{template}$"))
    return patterns


async def edited(system, chat, message_id: int) -> BotMessage:
    """The bot message once the bot has edited it (a button's answer that replaces the question)."""
    for _ in range(200):
        message = next(m for m in system.stand_in.bot_messages(chat) if m.message_id == message_id)
        if message.edit_date is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {message_id} was not edited")


def jpeg(path: Path, *, size: int | None = None) -> bytes:
    with Image.open(path) as image:
        picture = image.convert("RGB")
        if size:
            picture.thumbnail((size, size))
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=90)
        return out.getvalue()


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator.load()


@pytest.fixture(scope="module")
def en(translator: Translator) -> Lang:
    """The demo cast's language: the expected replies are rendered through it, as the bot renders them."""
    return translator.default


@pytest.fixture
def query_photos(travel_catalog: Path) -> list[bytes]:
    """Photos to send: the catalog's own photos, re-encoded smaller (so they are not byte-identical)."""
    files = sorted(p for p in travel_catalog.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [jpeg(path, size=500) for path in files[:12]]


@pytest.fixture
def make_system(redis, redis_server, travel_catalog: Path, travel_index: Path, default_extractor):
    def factory(**overrides: object):
        return running_system(
            redis=redis,
            redis_server=redis_server,
            catalog=travel_catalog,
            index_dir=travel_index,
            extractor=default_extractor,
            **overrides,
        )

    return factory


async def test_a_private_photo_gets_an_album_of_five_named_places(make_system, query_photos) -> None:
    async with make_system() as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        album, follow_up = await system.photo(chat, alice, query_photos[0])
        assert album.kind == "media_group"
        assert len(album.items) == 5
        found = names(album)
        assert len(set(found)) == 5
        assert all("% match" in (c or "") for c in album.captions)
        # The photo is one of the catalog's: it must come back first, at a high similarity.
        first = CAPTION.match(album.captions[0] or "")
        assert first is not None and int(first["match"]) >= 80
        likes_and_pins = ["👍1", "👍2", "👍3", "👍4", "👍5", "📍1", "📍2", "📍3", "📍4", "📍5"]
        assert [b for b, _ in follow_up.buttons] == [*likes_and_pins, "More ▶"]
        assert "Tap 👍" in (follow_up.text or "")
        actions = [a.action for a in system.stand_in.chat_actions(chat)]
        assert "upload_photo" in actions
        uploads = system.stand_in.counters().uploads
        # The same photo again: the catalog photos go out by file_id this time, nothing is uploaded again.
        await system.photo(chat, alice, query_photos[0])
        counters = system.stand_in.counters()
        assert counters.uploads == uploads
        assert counters.file_id_reuses >= 5


async def test_liking_moves_the_ranking_toward_the_liked_place(make_system, query_photos) -> None:
    async with make_system() as system:
        bob, chat = system.cast.users[1], system.cast.private_chats[1]
        neutral = query_photos[3]
        album, buttons = await system.photo(chat, bob, neutral)
        before = names(album)
        (confirmation,) = await system.press(chat, bob, buttons, buttons.buttons[4][1] or "", replies=1)
        liked = before[4]
        assert liked in (confirmation.text or "")
        album_after, _ = await system.photo(chat, bob, neutral)
        after = names(album_after)
        assert liked in after and after.index(liked) < 4, (before, after)
        likes = await system.say(chat, bob, "/likes", replies=1)
        assert liked in (likes[0].text or "")


async def test_more_three_times_never_repeats_a_place(make_system, query_photos) -> None:
    async with make_system() as system:
        chloe, chat = system.cast.users[2], system.cast.private_chats[2]
        album, buttons = await system.photo(chat, chloe, query_photos[5])
        seen = names(album)
        for page in range(3):
            if page == 1:
                album, buttons = await system.press(chat, chloe, buttons, "more", replies=2)
            else:
                album, buttons = await system.say(chat, chloe, "/more", replies=2)
            page_names = names(album)
            ranks = [int(CAPTION.match(c or "")["rank"]) for c in album.captions]  # type: ignore[index]
            assert ranks == list(range(len(seen) + 1, len(seen) + 1 + len(page_names)))
            assert not set(page_names) & set(seen), (page_names, seen)
            seen += page_names
        assert len(seen) == 20 == len(set(seen))


async def test_more_says_so_when_nothing_is_left(make_system, query_photos, en: Lang) -> None:
    async with make_system() as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        (reply,) = await system.say(chat, alice, "/more", replies=1)
        assert reply.text == en.gettext(texts.NO_RESULTS_YET)


async def test_group_suggestions_say_whom_each_place_fits(make_system, query_photos) -> None:
    async with make_system() as system:
        alice, bob, _ = system.cast.users
        group = system.cast.group
        album_a, buttons_a = await system.photo(group, alice, query_photos[0], caption="/suggest")
        await system.press(group, alice, buttons_a, buttons_a.buttons[0][1] or "", replies=1)
        album_b, buttons_b = await system.photo(group, bob, query_photos[7], caption="/suggest@wanderlens_bot")
        await system.press(group, bob, buttons_b, buttons_b.buttons[0][1] or "", replies=1)
        album, summary = await system.say(group, alice, "/suggest", replies=2)
        assert album.kind == "media_group"
        fits = [line for c in album.captions for line in (c or "").splitlines() if line.startswith("Fits:")]
        assert fits, album.captions
        mentioned = " ".join(fits)
        assert "Alice" in mentioned and "Bob" in mentioned
        assert "Alice" in (summary.text or "") and "Bob" in (summary.text or "")
        liked = {names(album_a)[0], names(album_b)[0]}
        group_names = [c.split(". ", 1)[1].split(" — ")[0].split("\n")[0] for c in album.captions if c]
        assert not liked & set(group_names)  # places someone already liked are not "suggestions"


async def test_group_ignores_photos_not_meant_for_the_bot(make_system, query_photos) -> None:
    async with make_system() as system:
        alice = system.cast.users[0]
        group = system.cast.group
        system.stand_in.send_photo(group, alice, query_photos[1], caption="look at this view")
        reply = await system.photo(group, alice, query_photos[1], caption="@wanderlens_bot where is like this?")
        assert reply[0].kind == "media_group"
        assert len(system.stand_in.bot_messages(group)) == 2


async def test_bad_inputs_get_a_friendly_reason(make_system, tmp_path, en: Lang) -> None:
    from tests.recommender.badimages import write_corpus

    async with make_system() as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        system.stand_in.mark(chat)
        system.stand_in.send_document(
            chat, alice, b"%PDF-1.4 not a photo", file_name="plan.pdf", mime_type="application/pdf"
        )
        (reply,) = await system.stand_in.wait_for_bot_messages(chat, 1)
        assert reply.text == en.gettext(texts.NOT_AN_IMAGE)
        system.stand_in.mark(chat)
        system.stand_in.send_sticker(chat, alice)
        (reply,) = await system.stand_in.wait_for_bot_messages(chat, 1)
        assert reply.text == en.gettext(texts.STICKER)
        system.stand_in.mark(chat)
        system.stand_in.send_document(
            chat, alice, b"\xff\xd8" + bytes(21 * 1024 * 1024), file_name="huge.jpg", mime_type="image/jpeg"
        )
        (reply,) = await system.stand_in.wait_for_bot_messages(chat, 1)
        assert reply.text == texts.too_big(en)
        corpus = {case.name: case for case in write_corpus(tmp_path)}
        for name in ("truncated_jpeg", "text_named_jpg", "strip_1x20000", "empty"):
            case = corpus[name]
            system.stand_in.mark(chat)
            system.stand_in.send_document(
                chat, alice, case.path.read_bytes(), file_name=case.path.name, mime_type="image/jpeg"
            )
            (reply,) = await system.stand_in.wait_for_bot_messages(chat, 1)
            assert reply.kind == "text" and "photo" in (reply.text or "").lower(), (name, reply.text)
            assert "Received" not in (reply.text or "") and "Traceback" not in (reply.text or "")
        # Rotated and odd-but-valid files work as images sent as files.
        for name in ("exif_orientation_6", "cmyk_jpeg", "animated_gif", "grey16_png"):
            case = corpus[name]
            system.stand_in.mark(chat)
            system.stand_in.send_document(
                chat, alice, case.path.read_bytes(), file_name=case.path.name, mime_type="image/png"
            )
            album, _ = await system.stand_in.wait_for_bot_messages(chat, 2)
            assert album.kind == "media_group", name


async def test_a_stopped_worker_gets_an_apology(make_system, query_photos, en: Lang) -> None:
    async with make_system(with_worker=False, reply_timeout_s=2) as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        (reply,) = await system.photo(chat, alice, query_photos[0], replies=1, timeout=15)
        assert reply.text == en.gettext(texts.TIMED_OUT)


async def test_a_full_queue_says_busy(make_system, query_photos, en: Lang) -> None:
    async with make_system(with_worker=False, max_queue=1) as system:
        await system.redis.xadd(keys.JOBS_STREAM, {"v": "1"})
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        (reply,) = await system.photo(chat, alice, query_photos[0], replies=1)
        assert reply.text == en.gettext(texts.BUSY)


async def test_too_many_photos_a_minute_are_refused_kindly(make_system, query_photos, en: Lang) -> None:
    async with make_system(photos_per_minute=2) as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        await system.photo(chat, alice, query_photos[0])
        await system.photo(chat, alice, query_photos[1])
        (reply,) = await system.photo(chat, alice, query_photos[2], replies=1)
        assert reply.text == en.gettext(texts.RATE_LIMITED)


async def test_a_429_from_telegram_is_retried(make_system, query_photos) -> None:
    async with make_system() as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        system.stand_in.fail_next("sendMediaGroup", status=429, retry_after=1)
        album, _ = await system.photo(chat, alice, query_photos[2])
        assert album.kind == "media_group" and len(album.items) == 5
        assert system.stand_in.counters().calls("sendMediaGroup") == 2


async def test_forget_deletes_likes_after_confirmation(make_system, query_photos, en: Lang) -> None:
    async with make_system() as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        _, buttons = await system.photo(chat, alice, query_photos[4])
        await system.press(chat, alice, buttons, buttons.buttons[0][1] or "", replies=1)
        (question,) = await system.say(chat, alice, "/forget", replies=1)
        assert [b for b, _ in question.buttons] == ["Yes, delete", "No, keep"]
        system.stand_in.press_button(chat, alice, question.message_id, "forget:yes")
        for _ in range(100):
            current = system.stand_in.bot_messages(chat)[-1]
            if current.text and current.text.startswith("Done"):
                break
            await asyncio.sleep(0.05)
        assert "1 like" in (system.stand_in.bot_messages(chat)[-1].text or "")
        (likes,) = await system.say(chat, alice, "/likes", replies=1)
        assert likes.text == en.gettext(texts.NO_LIKES)
        assert not await system.redis.exists(keys.likes(chat.id, alice.id))


async def test_start_help_and_plain_text(make_system, en: Lang) -> None:
    async with make_system(with_worker=False) as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        (start,) = await system.say(chat, alice, "/start", replies=1)
        assert "What I store" in (start.text or "")
        (helped,) = await system.say(chat, alice, "/help", replies=1)
        assert "/more" in (helped.text or "")
        (nudge,) = await system.say(chat, alice, "hello?", replies=1)
        assert nudge.text == en.gettext(texts.ASK_FOR_PHOTO)
        assert {c["command"] for c in system.stand_in.my_commands()} >= {"start", "more", "like", "suggest"}


async def test_suggest_as_a_reply_to_a_photo_in_a_group(make_system, query_photos) -> None:
    async with make_system() as system:
        chloe = system.cast.users[2]
        group = system.cast.group
        photo_id = system.stand_in.send_photo(group, chloe, query_photos[2], caption="where could we go like this?")
        system.stand_in.mark(group)
        system.stand_in.send_text(group, chloe, "/suggest", reply_to=photo_id)
        album, buttons = await system.stand_in.wait_for_bot_messages(group, 2, timeout=30)
        assert album.kind == "media_group" and len(album.items) == 5
        assert len(set(names(album))) == 5
        assert buttons.buttons[-1][0] == "More ▶"


async def test_a_photo_seen_before_is_not_downloaded_again_and_survives_an_expired_cache(
    make_system, query_photos
) -> None:
    async with make_system() as system:
        bob, chat = system.cast.users[1], system.cast.private_chats[1]
        await system.photo(chat, bob, query_photos[6])
        downloads = system.stand_in.counters().calls("getFile")
        # Telegram gives a resent photo the same file_unique_id: the worker still has its fingerprint.
        album, _ = await system.photo(chat, bob, query_photos[6])
        assert album.kind == "media_group"
        assert system.stand_in.counters().calls("getFile") == downloads
        # The cached fingerprint is gone (expired, or another backbone): the bot downloads the photo after all.
        async for key in system.redis.scan_iter(match=keys.QUERY_VECTOR_PATTERN):
            await system.redis.delete(key)
        album, _ = await system.photo(chat, bob, query_photos[6])
        assert album.kind == "media_group" and len(album.items) == 5
        assert system.stand_in.counters().calls("getFile") == downloads + 1


async def test_the_bot_speaks_the_users_language_and_remembers_a_choice_until_forget(
    make_system, query_photos, translator: Translator, en: Lang
) -> None:
    de, fr = translator.for_language("de"), translator.for_language("fr")
    async with make_system() as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        system.stand_in.set_language(alice, "de")
        # German from Telegram's setting: captions with the locale's percent, the buttons and the text under them.
        album, buttons = await system.photo(chat, alice, query_photos[0])
        assert len(names(album, de)) == 5
        assert buttons.buttons[-1] == (de.gettext(texts.MORE_BUTTON), "more")
        assert de.gettext(texts.TAP_TO_LIKE) in (buttons.text or "")
        # /language fr: the choice beats the app's language, for the next album too.
        (done,) = await system.say(chat, alice, "/language fr", replies=1)
        assert done.text == fr.gettext(texts.LANGUAGE_SET, language=fr.name)
        assert await system.redis.get(keys.user_language(alice.id)) == b"fr"
        album, buttons = await system.photo(chat, alice, query_photos[1])
        assert buttons.buttons[-1] == (fr.gettext(texts.MORE_BUTTON), "more")
        assert len(names(album, fr)) == 5
        # An unknown code changes nothing and says so in the current language.
        (unknown,) = await system.say(chat, alice, "/language xx", replies=1)
        assert unknown.text == texts.language_unknown(fr, "xx", translator)
        # /forget deletes the choice with the likes: the bot follows Telegram's setting (German) again.
        (question,) = await system.say(chat, alice, "/forget", replies=1)
        system.stand_in.mark(chat)
        system.stand_in.press_button(chat, alice, question.message_id, "forget:yes")
        assert (await edited(system, chat, question.message_id)).text == texts.forgotten(fr, 0)
        assert not await system.redis.exists(keys.user_language(alice.id))
        (helped,) = await system.say(chat, alice, "/help", replies=1)
        assert helped.text == de.gettext(texts.HELP)
        # A language the bot doesn't speak falls back to English.
        system.stand_in.set_language(alice, "xx")
        (helped,) = await system.say(chat, alice, "/help", replies=1)
        assert helped.text == en.gettext(texts.HELP)
        menus = {code: system.stand_in.my_commands(language_code=code) for code in ("", "de", "pt")}
        assert [c["command"] for c in menus[""]] == list(texts.COMMANDS)
        describe = texts.COMMAND_DESCRIPTIONS
        assert menus["de"][-1] == {"command": "language", "description": de.gettext(describe["language"])}
        assert menus["pt"][0]["description"] == translator.languages["pt_BR"].gettext(describe["start"])


def catalog_places(travel_catalog: Path) -> dict[str, tuple[str, float, float]]:
    """Name -> (country, lat, lon), as the catalog has them."""
    from recommender.catalog import load_catalog

    return {d.name: (d.country, d.lat, d.lon) for d in load_catalog(travel_catalog).destinations if d.lat is not None}


def mean_km(album: BotMessage, places: dict[str, tuple[str, float, float]], origin: tuple[float, float]) -> float:
    from recommender.geo import distance_km

    points = np.array([places[name][1:] for name in names(album)])
    return float(distance_km(origin, points).mean())


async def test_places_on_the_map_a_shared_location_and_where(
    make_system, query_photos, travel_catalog: Path, en: Lang
) -> None:
    places = catalog_places(travel_catalog)
    rome = (41.9028, 12.4964)
    async with make_system() as system:
        alice, chat = system.cast.users[0], system.cast.private_chats[0]
        photo = query_photos[5]
        album, buttons = await system.photo(chat, alice, photo)
        # 📍3: the third place, as a venue at the catalog's coordinates.
        pin = next(data for label, data in buttons.buttons if label == "📍3")
        (venue,) = await system.press(chat, alice, buttons, pin or "", replies=1)
        third = names(album)[2]
        assert venue.kind == "venue" and venue.venue is not None and venue.venue.title == third
        assert (venue.venue.location.latitude, venue.venue.location.longitude) == pytest.approx(places[third][1:])

        # A location at (0, 0) is refused; Rome is kept, and the next album leans toward it, with distances.
        system.stand_in.mark(chat)
        system.stand_in.send_location(chat, alice, 0.0, 0.0)
        (refused,) = await system.stand_in.wait_for_bot_messages(chat, 1)
        assert refused.text == en.gettext(texts.BAD_LOCATION)
        system.stand_in.mark(chat)
        system.stand_in.send_location(chat, alice, *rome)
        (saved,) = await system.stand_in.wait_for_bot_messages(chat, 1)
        assert saved.text == en.gettext(texts.LOCATION_SAVED)
        near_album, _ = await system.photo(chat, alice, photo)
        assert all(" km away" in (caption or "").split("\n")[0] for caption in near_album.captions)
        assert mean_km(near_album, places, rome) < mean_km(album, places, rome)

        # /where: a known region narrows the next album (still full), an unknown one and a bare /where explain.
        (usage,) = await system.say(chat, alice, "/where", replies=1)
        assert usage.text == en.gettext(texts.WHERE_USAGE)
        (unknown,) = await system.say(chat, alice, "/where Atlantis", replies=1)
        assert unknown.text == en.gettext(texts.WHERE_UNKNOWN, region="Atlantis")
        (confirmed,) = await system.say(chat, alice, "/where italy", replies=1)
        assert confirmed.text == en.gettext(texts.WHERE_SET, region="Italy")
        italian, _ = await system.photo(chat, alice, photo)
        assert len(italian.items) == 5 and {places[name][0] for name in names(italian)} == {"Italy"}
        (off,) = await system.say(chat, alice, "/where off", replies=1)
        assert off.text == en.gettext(texts.WHERE_OFF)
        (distance_off,) = await system.say(chat, alice, "/nearby off", replies=1)
        assert distance_off.text == en.gettext(texts.DISTANCE_OFF)
        again, _ = await system.photo(chat, alice, photo)
        assert names(again) == names(album)  # no region, no distance: as at first


async def test_a_group_suggestion_favours_the_place_closest_to_everyone(make_system, query_photos, en: Lang) -> None:
    async with make_system() as system:
        alice, bob = system.cast.users[0], system.cast.users[1]
        group = system.cast.group
        for user, photo in ((alice, query_photos[0]), (bob, query_photos[7])):
            _, buttons = await system.photo(group, user, photo, caption="/suggest")
            await system.press(group, user, buttons, buttons.buttons[0][1] or "", replies=1)
        for user, at in ((alice, (48.85, 2.35)), (bob, (45.44, 12.33))):  # Paris and Venice
            system.stand_in.mark(group)
            system.stand_in.send_location(group, user, *at)
            await system.stand_in.wait_for_bot_messages(group, 1)
        album, summary = await system.say(group, alice, "/suggest", replies=2)
        assert album.kind == "media_group"
        assert all(" km away" not in (c or "").split("\n")[0] for c in album.captions)  # group captions name fits
        closest = re.search(r"Closest to all of you: (.+), ([\d,]+) km away on average", summary.text or "")
        assert closest is not None, summary.text
        assert int(closest[2].replace(",", "")) < 2000  # somewhere between Paris and Venice, not across an ocean
