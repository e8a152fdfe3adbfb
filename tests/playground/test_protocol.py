"""The stand-in's Bot API at the HTTP level: response shapes, getUpdates semantics and Bot API limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from playground.botapi import BotApiStandIn
from playground.cast import Cast
from playground.models import Location, Venue
from tests.playground.echo_bot import TOKEN, jpeg


@pytest.fixture
async def http(stand_in: BotApiStandIn) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{stand_in.base_url}{TOKEN}/", timeout=10) as client:
        yield client


async def call(http: httpx.AsyncClient, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    """A URL-encoded call, non-strings JSON-encoded: what python-telegram-bot sends."""
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    response = await http.post(method, data=data)
    return response.status_code, response.json()


async def test_get_me_and_error_shapes(stand_in: BotApiStandIn, http: httpx.AsyncClient) -> None:
    status, body = await call(http, "getMe")
    assert status == 200
    assert body["ok"] is True
    assert (body["result"]["is_bot"], body["result"]["username"]) == (True, "wanderlens_bot")
    assert body["result"]["id"] == 5000000001

    assert await call(http, "frobnicate") == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
    )
    async with httpx.AsyncClient() as other:
        response = await other.post(f"{stand_in.base_url}123:wrong/getMe")
    assert (response.status_code, response.json()) == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )


async def test_method_names_are_case_insensitive_and_json_bodies_work(http: httpx.AsyncClient, cast: Cast) -> None:
    response = await http.post("SENDMESSAGE", json={"chat_id": cast.users[0].id, "text": "hi"})
    assert response.status_code == 200
    assert response.json()["result"]["text"] == "hi"
    response = await http.get("getMe")
    assert response.json()["ok"] is True


async def test_get_updates_offsets_and_limit(stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast) -> None:
    chat, alice = cast.private_chats[0], cast.users[0]
    for n in range(3):
        stand_in.send_text(chat, alice, f"m{n}")

    _, first = await call(http, "getUpdates", limit=2)
    ids = [u["update_id"] for u in first["result"]]
    assert [u["message"]["text"] for u in first["result"]] == ["m0", "m1"]
    _, again = await call(http, "getUpdates")
    assert [u["update_id"] for u in again["result"]][:2] == ids  # not confirmed yet: delivered again

    _, rest = await call(http, "getUpdates", offset=ids[-1] + 1)
    assert [u["message"]["text"] for u in rest["result"]] == ["m2"]
    _, empty = await call(http, "getUpdates", offset=rest["result"][0]["update_id"] + 1)
    assert empty["result"] == []
    assert stand_in.world.updates.pending_count == 0


async def test_get_updates_negative_offset_keeps_the_tail(
    stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast
) -> None:
    for n in range(4):
        stand_in.send_text(cast.private_chats[0], cast.users[0], f"m{n}")
    _, body = await call(http, "getUpdates", offset=-1)
    assert [u["message"]["text"] for u in body["result"]] == ["m3"]


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast
) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(call(http, "getUpdates", timeout=5))
    await asyncio.sleep(0.2)
    assert not poll.done()
    stand_in.send_text(cast.private_chats[0], cast.users[0], "now")
    _, body = await poll
    assert [u["message"]["text"] for u in body["result"]] == ["now"]
    assert time.monotonic() - started < 2


async def test_long_poll_times_out_empty(http: httpx.AsyncClient) -> None:
    started = time.monotonic()
    _, body = await call(http, "getUpdates", timeout=1)
    assert body == {"ok": True, "result": []}
    assert 0.9 < time.monotonic() - started < 3


async def test_newer_get_updates_terminates_the_older_one(http: httpx.AsyncClient) -> None:
    older = asyncio.create_task(call(http, "getUpdates", timeout=5))
    await asyncio.sleep(0.2)
    _, newer = await call(http, "getUpdates", timeout=0)
    status, body = await older
    assert newer["ok"] is True
    assert status == 409
    assert body["description"].startswith("Conflict: terminated by other getUpdates request")


async def test_allowed_updates_filters(stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast) -> None:
    chat, alice = cast.private_chats[0], cast.users[0]
    _, sent = await call(
        http,
        "sendMessage",
        chat_id=chat.id,
        text="pick",
        reply_markup={"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]},
    )
    stand_in.send_text(chat, alice, "text")
    stand_in.press_button(chat, alice, sent["result"]["message_id"], "a")

    _, body = await call(http, "getUpdates", allowed_updates=["callback_query"])
    assert [list(u)[1] for u in body["result"]] == ["callback_query"]
    query = body["result"][0]["callback_query"]
    assert query["data"] == "a"
    assert query["message"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "a"


async def test_delete_webhook_can_drop_pending_updates(
    stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast
) -> None:
    stand_in.send_text(cast.private_chats[0], cast.users[0], "old")
    assert (await call(http, "deleteWebhook", drop_pending_updates=True))[1]["result"] is True
    assert (await call(http, "getUpdates"))[1]["result"] == []


async def test_multipart_media_group_mixes_uploads_file_ids_and_urls(
    stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast
) -> None:
    chat = cast.private_chats[0]
    red, blue = jpeg((255, 0, 0), (64, 48)), jpeg((0, 0, 255), (30, 40))
    response = await http.post(
        "sendPhoto", data={"chat_id": str(chat.id)}, files={"photo": ("red.jpg", red, "image/jpeg")}
    )
    stored = response.json()["result"]["photo"]
    media = [
        {"type": "photo", "media": "attach://blue", "caption": "uploaded"},
        {"type": "photo", "media": stored[-1]["file_id"], "caption": "by file_id"},
        {"type": "photo", "media": f"{stand_in.url}media/{stored[-1]['file_id']}", "caption": "by URL"},
    ]
    response = await http.post(
        "sendMediaGroup",
        data={"chat_id": str(chat.id), "media": json.dumps(media)},
        files={"blue": ("blue.jpg", blue, "image/jpeg")},
    )

    messages = response.json()["result"]
    assert [m["caption"] for m in messages] == ["uploaded", "by file_id", "by URL"]
    assert len({m["media_group_id"] for m in messages}) == 1
    assert [(m["photo"][-1]["width"], m["photo"][-1]["height"]) for m in messages] == [(30, 40), (64, 48), (64, 48)]
    assert messages[1]["photo"][-1]["file_unique_id"] == messages[2]["photo"][-1]["file_unique_id"]
    album = stand_in.bot_messages(chat)[-1]
    assert [p.source for p in album.photos] == ["upload", "file_id", "url"]
    counters = stand_in.counters()
    assert (counters.uploads, counters.file_id_reuses, counters.url_sends) == (2, 1, 1)


async def test_get_file_and_download(stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast) -> None:
    photo = jpeg((1, 2, 3), (100, 100))
    stand_in.send_photo(cast.private_chats[0], cast.users[0], photo)
    _, updates = await call(http, "getUpdates")
    file_id = updates["result"][0]["message"]["photo"][-1]["file_id"]
    _, body = await call(http, "getFile", file_id=file_id)
    assert body["result"]["file_path"].startswith("photos/")
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{stand_in.base_file_url}{TOKEN}/{body['result']['file_path']}")
    assert response.content == photo
    assert (await call(http, "getFile", file_id="nope"))[0] == 400


VENUE = {"latitude": 41.9028, "longitude": 12.4964, "title": "Pantheon", "address": "Piazza della Rotonda, Rome"}


@pytest.mark.parametrize(
    ("method", "params", "description"),
    [
        ("sendMessage", {"text": "x" * 4097}, "Bad Request: message is too long"),
        ("sendMessage", {"text": ""}, "Bad Request: message text is empty"),
        ("sendMessage", {"text": "1 < 2", "parse_mode": "HTML"}, "Bad Request: can't parse entities"),
        ("sendMessage", {"text": "Rome.", "parse_mode": "MarkdownV2"}, "Bad Request: can't parse entities"),
        (
            "sendMessage",
            {"text": "k", "reply_markup": {"inline_keyboard": [[{"text": "k", "callback_data": "x" * 65}]]}},
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        ("sendPhoto", {"photo": "unknown-file-id", "caption": "c"}, "Bad Request: wrong file identifier"),
        ("sendMediaGroup", {"media": [{"type": "photo", "media": "x"}]}, "Bad Request: wrong number of media"),
        ("sendChatAction", {"action": "dancing"}, "Bad Request: wrong parameter action"),
        ("sendMessage", {"text": "hi", "reply_parameters": {"message_id": 999}}, "Bad Request: message to be"),
        ("editMessageText", {"message_id": 999, "text": "x"}, "Bad Request: message to edit not found"),
        ("deleteMessage", {"message_id": 999}, "Bad Request: message to delete not found"),
        ("sendVenue", {"longitude": 2, "title": "T", "address": "A"}, "Bad Request: latitude is empty"),
        ("sendVenue", {"latitude": 1, "title": "T", "address": "A"}, "Bad Request: longitude is empty"),
        ("sendVenue", {**VENUE, "latitude": 90.5}, "Bad Request: wrong venue location specified"),
        ("sendVenue", {**VENUE, "longitude": -180.01}, "Bad Request: wrong venue location specified"),
        ("sendVenue", {**VENUE, "latitude": "nan"}, "Bad Request: wrong venue location specified"),
        ("sendVenue", {**VENUE, "latitude": "north"}, "Bad Request: invalid latitude specified"),
        ("sendVenue", {**VENUE, "title": ""}, "Bad Request: title is empty"),
        ("sendVenue", {"latitude": 1, "longitude": 2, "title": "T"}, "Bad Request: address is empty"),
        ("sendLocation", {"latitude": 10, "longitude": 200}, "Bad Request: wrong location specified"),
        ("sendLocation", {"latitude": " ", "longitude": 2}, "Bad Request: latitude is empty"),
    ],
)
async def test_bot_api_limits(
    stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast, method: str, params: dict[str, Any], description: str
) -> None:
    status, body = await call(http, method, chat_id=cast.users[0].id, **params)
    assert status == 400
    assert body["ok"] is False and body["error_code"] == 400
    assert body["description"].startswith(description)
    assert stand_in.bot_messages(cast.private_chats[0]) == []  # a refused send leaves nothing behind


async def test_caption_limit_and_album_size(stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast) -> None:
    chat_id = cast.users[0].id
    photo = jpeg((9, 9, 9), (20, 20))
    _, body = await call(http, "sendPhoto", chat_id=chat_id, photo="x")
    assert body["error_code"] == 400
    response = await http.post(
        "sendPhoto",
        data={"chat_id": str(chat_id), "caption": "c" * 1025},
        files={"photo": ("p.jpg", photo, "image/jpeg")},
    )
    assert response.json()["description"] == "Bad Request: message caption is too long"
    media = [{"type": "photo", "media": "attach://p"}] * 11
    response = await http.post(
        "sendMediaGroup",
        data={"chat_id": str(chat_id), "media": json.dumps(media)},
        files={"p": ("p.jpg", photo, "image/jpeg")},
    )
    assert response.status_code == 400
    assert stand_in.counters().uploads == 0  # nothing from the refused requests was kept


async def test_not_an_image_is_refused(http: httpx.AsyncClient, cast: Cast) -> None:
    response = await http.post(
        "sendPhoto", data={"chat_id": str(cast.users[0].id)}, files={"photo": ("x.jpg", b"not a jpeg", "image/jpeg")}
    )
    assert response.json()["description"] == "Bad Request: IMAGE_PROCESS_FAILED"


async def test_edits_deletes_and_not_modified(stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast) -> None:
    chat = cast.private_chats[0]
    keyboard = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    _, sent = await call(
        http, "sendMessage", chat_id=chat.id, text="<b>v1</b>", parse_mode="HTML", reply_markup=keyboard
    )
    message_id = sent["result"]["message_id"]
    assert sent["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 2}]

    status, body = await call(
        http, "editMessageReplyMarkup", chat_id=chat.id, message_id=message_id, reply_markup=keyboard
    )
    assert (status, body["description"].split(":")[1].strip()) == (400, "message is not modified")
    _, edited = await call(http, "editMessageText", chat_id=chat.id, message_id=message_id, text="v2")
    assert edited["result"]["text"] == "v2"
    assert "reply_markup" not in edited["result"]  # an edit without reply_markup drops the keyboard
    assert stand_in.bot_messages(chat)[-1].edit_date is not None

    assert (await call(http, "deleteMessage", chat_id=chat.id, message_id=message_id))[1]["result"] is True
    assert stand_in.bot_messages(chat)[-1].deleted


async def test_blocked_user_gives_forbidden(stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast) -> None:
    stand_in.block_bot(cast.users[0])
    status, body = await call(http, "sendMessage", chat_id=cast.users[0].id, text="hi")
    assert (status, body["description"]) == (403, "Forbidden: bot was blocked by the user")
    status, body = await call(http, "sendMessage", chat_id=424242, text="hi")
    assert (status, body["description"]) == (400, "Bad Request: chat not found")


async def test_fail_next_injects_errors_and_counts_them(stand_in: BotApiStandIn, http: httpx.AsyncClient) -> None:
    stand_in.fail_next("getMe", status=429, retry_after=3, times=2)
    stand_in.fail_next("getMe", status=502)
    assert await call(http, "getMe") == (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        },
    )
    assert (await call(http, "getMe"))[0] == 429
    assert (await call(http, "getMe"))[0] == 502
    assert (await call(http, "getMe"))[0] == 200
    assert stand_in.counters().calls("getme") == 4


async def test_commands_round_trip(stand_in: BotApiStandIn, http: httpx.AsyncClient) -> None:
    commands = [{"command": "more", "description": "More like the last photo"}]
    assert (await call(http, "setMyCommands", commands=commands))[1]["result"] is True
    assert (await call(http, "getMyCommands"))[1]["result"] == commands
    assert stand_in.my_commands() == commands
    status, body = await call(http, "setMyCommands", commands=[{"command": "Bad Name", "description": "x"}])
    assert (status, body["description"]) == (400, "Bad Request: BOT_COMMAND_INVALID")


async def test_group_privacy_mode() -> None:
    async with BotApiStandIn(token=TOKEN, privacy_mode=True) as stand_in:
        alice, bob = stand_in.user(1, "Alice"), stand_in.user(2, "Bob")
        group = stand_in.group_chat(-100, "Trip planning", [alice, bob])
        stand_in.send_text(group, alice, "just chatting")
        stand_in.send_text(group, alice, "/suggest")
        stand_in.send_text(group, bob, "hey @wanderlens_bot what now")
        stand_in.send_text(group, bob, "/start@other_bot")
        texts = [
            u["message"]["text"]
            for u in await stand_in.world.updates.get(offset=None, limit=100, poll_seconds=0, allowed_updates=None)
        ]
    assert texts == ["/suggest", "hey @wanderlens_bot what now"]
    assert [e.delivered for e in stand_in.timeline(group)] == [False, True, True, False]


async def test_a_language_switch_reaches_the_bot_in_from_language_code(
    stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast
) -> None:
    chat, alice = cast.private_chats[0], cast.users[0]
    stand_in.send_text(chat, alice, "before")
    async with httpx.AsyncClient(base_url=stand_in.url, timeout=10) as page:
        response = await page.post(f"/api/users/{alice.id}/language", json={"language_code": "de-AT"})
        assert response.json() == {"ok": True, "user": {**response.json()["user"], "language_code": "de-AT"}}
        refused = await page.post(f"/api/users/{alice.id}/language", json={"language_code": "<script>"})
        assert refused.status_code == 400 and "IETF" in refused.json()["error"]
        assert (await page.post("/api/users/999/language", json={"language_code": "de"})).status_code == 404
        users = (await page.get("/api/state")).json()["users"]
    assert {u["id"]: u["language_code"] for u in users}[alice.id] == "de-AT"
    # The SimUser the test holds is from before the switch: it still works, and the update carries the new language.
    stand_in.send_text(chat, alice, "after")
    _, body = await call(http, "getUpdates")
    assert [u["message"]["from"]["language_code"] for u in body["result"]] == ["en", "de-AT"]
    assert stand_in.set_language(alice, "fr").language_code == "fr"


async def test_send_venue_and_location(stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast) -> None:
    chat, alice = cast.private_chats[0], cast.users[0]
    asked = stand_in.send_text(chat, alice, "where is it?")
    status, body = await call(
        http,
        "sendVenue",
        chat_id=chat.id,
        **VENUE,
        google_place_id="ChIJqUCGZ2BgLxMRJoWMj1pCNBM",
        reply_parameters={"message_id": asked},
    )
    assert status == 200
    sent = body["result"]
    location = {"latitude": 41.9028, "longitude": 12.4964}
    assert sent["venue"] == {
        "location": location,
        "title": "Pantheon",
        "address": "Piazza della Rotonda, Rome",
        "google_place_id": "ChIJqUCGZ2BgLxMRJoWMj1pCNBM",
    }
    assert sent["location"] == location  # Telegram's venue Message carries both
    assert sent["reply_to_message"]["text"] == "where is it?"
    (venue,) = stand_in.bot_messages(chat)
    assert (venue.kind, venue.message_id, venue.reply_to) == ("venue", sent["message_id"], asked)
    place_id = "ChIJqUCGZ2BgLxMRJoWMj1pCNBM"
    assert venue.venue == Venue(
        Location(41.9028, 12.4964), "Pantheon", "Piazza della Rotonda, Rome", google_place_id=place_id
    )
    assert venue.location == Location(41.9028, 12.4964)

    # A JSON body with real numbers works as well; the accuracy is clamped to Telegram's 0-1500 m.
    sydney = {"latitude": -33.8568, "longitude": 151.2153}
    response = await http.post("sendLocation", json={"chat_id": chat.id, **sydney, "horizontal_accuracy": 5000})
    assert response.json()["result"]["location"] == {**sydney, "horizontal_accuracy": 1500.0}
    assert "venue" not in response.json()["result"]
    last = stand_in.bot_messages(chat)[-1]
    assert (last.kind, last.venue, last.location) == ("location", None, Location(-33.8568, 151.2153, 1500.0))


async def test_reply_keyboards_are_recorded_and_removed(
    stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast
) -> None:
    chat, alice = cast.private_chats[0], cast.users[0]
    markup = {
        "keyboard": [[{"text": "📍 Share my location", "request_location": True}, {"text": ""}], ["Not now"]],
        "resize_keyboard": True,
        "one_time_keyboard": True,
        "input_field_placeholder": "Or type a city",
    }
    _, body = await call(http, "sendMessage", chat_id=chat.id, text="Where are you?", reply_markup=markup)
    assert "reply_markup" not in body["result"]  # Telegram's Message only carries inline keyboards
    (asked,) = stand_in.bot_messages(chat)
    assert asked.reply_buttons == [("📍 Share my location", True), ("Not now", False)]  # the empty one is dropped
    assert asked.requests_location and asked.keyboard == ()
    keyboard = stand_in.reply_keyboard(chat)
    assert keyboard is not None and (keyboard.resize, keyboard.one_time, keyboard.placeholder) == (
        True,
        True,
        "Or type a city",
    )
    async with httpx.AsyncClient(base_url=stand_in.url, timeout=10) as page:
        view = (await page.get(f"/api/chats/{chat.id}/messages", params={"user_id": alice.id})).json()
    assert view["reply_keyboard"]["message_id"] == asked.message_id
    assert view["reply_keyboard"]["rows"] == [
        [{"text": "📍 Share my location", "request": "location"}],
        [{"text": "Not now", "request": None}],
    ]

    # Edits take inline keyboards only, and the keyboard stays until a message removes it.
    status, body = await call(
        http, "editMessageText", chat_id=chat.id, message_id=asked.message_id, text="x", reply_markup=markup
    )
    assert (status, body["description"]) == (400, "Bad Request: inline keyboard expected")
    await call(http, "sendMessage", chat_id=chat.id, text="still here")
    assert stand_in.reply_keyboard(chat) == keyboard
    await call(http, "sendMessage", chat_id=chat.id, text="Thanks!", reply_markup={"remove_keyboard": True})
    assert stand_in.bot_messages(chat)[-1].remove_keyboard
    assert stand_in.reply_keyboard(chat) is None


async def test_location_buttons_are_for_private_chats_and_selective_keyboards_for_some(
    stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast
) -> None:
    group, alice, bob = cast.group, cast.users[0], cast.users[1]
    location_button = {"keyboard": [[{"text": "📍", "request_location": True}]]}
    status, body = await call(http, "sendMessage", chat_id=group.id, text="Where?", reply_markup=location_button)
    assert (status, body["description"]) == (400, "Bad Request: location can be requested in private chats only")
    assert stand_in.bot_messages(group) == []

    question = stand_in.send_text(group, bob, "which city?")
    text_keyboard = {"keyboard": [["Rome", "Paris"]], "selective": True}
    await call(
        http,
        "sendMessage",
        chat_id=group.id,
        text="Pick one",
        reply_markup=text_keyboard,
        reply_parameters={"message_id": question},
    )
    bobs = stand_in.reply_keyboard(group, bob)
    assert bobs is not None and bobs.buttons == [("Rome", False), ("Paris", False)]
    assert stand_in.reply_keyboard(group, alice) is None  # selective: only for the one it answers
    assert stand_in.reply_keyboard(group) == bobs


async def test_a_user_location_is_a_bot_api_location(
    stand_in: BotApiStandIn, http: httpx.AsyncClient, cast: Cast
) -> None:
    chat, alice, bob = cast.private_chats[0], cast.users[0], cast.users[1]
    message_id = stand_in.send_location(chat, alice, 48.8566, 2.3522)
    with pytest.raises(ValueError, match="latitude in"):
        stand_in.send_location(chat, alice, 95.0, 2.0)
    _, body = await call(http, "getUpdates")
    (update,) = body["result"]
    assert update["message"]["message_id"] == message_id
    assert update["message"]["location"] == {"latitude": 48.8566, "longitude": 2.3522}
    assert "text" not in update["message"]
    (entry,) = stand_in.timeline(chat)
    assert (entry.kind, entry.location) == ("location", Location(48.8566, 2.3522))

    async with httpx.AsyncClient(base_url=stand_in.url, timeout=10) as page:
        shared = await page.post(
            f"/api/chats/{chat.id}/location", json={"user_id": alice.id, "latitude": 35.6762, "longitude": 139.6503}
        )
        assert shared.status_code == 200 and shared.json()["ok"] is True
        off_the_globe = await page.post(
            f"/api/chats/{chat.id}/location", json={"user_id": alice.id, "latitude": 35.6762, "longitude": 190}
        )
        assert off_the_globe.status_code == 400 and "longitude" in off_the_globe.json()["error"]
        not_a_member = await page.post(
            f"/api/chats/{chat.id}/location", json={"user_id": bob.id, "latitude": 1, "longitude": 2}
        )
        assert not_a_member.status_code == 403
        garbled = await page.post(f"/api/chats/{chat.id}/location", json={"user_id": alice.id, "latitude": "x"})
        assert garbled.status_code == 400
        views = (await page.get(f"/api/chats/{chat.id}/messages")).json()["messages"]
    assert views[-1]["message_id"] == shared.json()["message_id"]
    assert (views[-1]["kind"], views[-1]["from"]) == ("location", "user")
    assert views[-1]["place"] == {
        "title": None,
        "address": None,
        "latitude": 35.6762,
        "longitude": 139.6503,
        "map_url": "https://www.openstreetmap.org/?mlat=35.6762&mlon=139.6503#map=12/35.6762/139.6503",
    }
    assert len(stand_in.timeline(chat)) == 2  # the refused ones added nothing
