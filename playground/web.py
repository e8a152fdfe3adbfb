"""The playground page and its JSON API, served by the stand-in's aiohttp app.

Routes:

- ``GET /``: the chat page; ``GET /static/{name}``: its script and stylesheet
- ``GET /api/state``: the bot, the simulated users and the chats (with members)
- ``GET /api/chats/{chat_id}/messages?since=REV&user_id=ID``: a chat's messages added or changed after revision
  REV, and the reply keyboard user ID sees now
- ``POST /api/chats/{chat_id}/send``: multipart ``user_id``, ``text``, optional ``photo`` and ``reply_to``
- ``POST /api/chats/{chat_id}/location``: JSON ``{user_id, latitude, longitude}``, optional ``reply_to``
- ``POST /api/chats/{chat_id}/press``: JSON ``{user_id, message_id, callback_data}``
- ``POST /api/users/{user_id}/language``: JSON ``{language_code}``, the user's app language ("de", "pt-br")
- ``GET /api/events``: Server-Sent Events (``chat``, ``action``, ``callback_answer``, ``cast``)
- ``GET /media/{file_id}``: any stored file (user photos, the bot's photos and documents)

Errors come back as ``{"ok": false, "error": "..."}`` with a 4xx status, for the page to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from playground.entities import utf16_len
from playground.files import ImageDecodeError, prepare_photo
from playground.models import (
    BotMessage,
    ChatEntry,
    Entity,
    Location,
    PhotoSize,
    ReplyKeyboard,
    SimChat,
    SimUser,
    UserMessage,
    Venue,
)
from playground.state import SimWorld, WorldEvent
from playground.wire import JSON, entity_json

STATIC_DIR = Path(__file__).with_name("static")
# What the page accepts from its file picker; Telegram clients send at most this much as a photo.
MAX_PAGE_PHOTO_BYTES = 10 * 1024 * 1024
# The longest side of the size the page shows in bubbles and album grids.
DISPLAY_SIDE = 800
SSE_KEEPALIVE_SECONDS = 15.0
# The zoom of the OpenStreetMap link under a place: a city and its surroundings.
MAP_ZOOM = 12
_WORLD_KEY = web.AppKey("playground_world", SimWorld)
_STATIC_KEY = web.AppKey("playground_static", Path)
_STATIC_FILES_KEY = web.AppKey("playground_static_files", dict[str, Path])


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


def _no_cache(response: web.StreamResponse) -> web.StreamResponse:
    # The page changes while people work on it; a stale app.js would be confusing.
    response.headers["Cache-Control"] = "no-cache"
    return response


# --- views: what the page renders -------------------------------------------------------------------------


def _entities(entities: tuple[Entity, ...]) -> list[JSON]:
    return [entity_json(e) for e in entities]


def _photo_view(sizes: tuple[PhotoSize, ...], caption: str | None = None, entities: tuple[Entity, ...] = ()) -> JSON:
    shown = next((s for s in reversed(sizes) if max(s.width, s.height) <= DISPLAY_SIDE), sizes[-1])
    largest = sizes[-1]
    return {
        "src": f"/media/{shown.file_id}",
        "full": f"/media/{largest.file_id}",
        "width": largest.width,
        "height": largest.height,
        "caption": caption,
        "caption_entities": _entities(entities),
    }


def map_url(location: Location) -> str:
    """An OpenStreetMap link with a marker on the place; the page only links to it, nothing is fetched."""
    lat, lon = round(location.latitude, 6), round(location.longitude, 6)
    return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map={MAP_ZOOM}/{lat}/{lon}"


def _place_view(location: Location, venue: Venue | None) -> JSON:
    return {
        "title": venue.title if venue else None,
        "address": venue.address if venue else None,
        "latitude": location.latitude,
        "longitude": location.longitude,
        "map_url": map_url(location),
    }


def _reply_keyboard_view(message_id: int, keyboard: ReplyKeyboard) -> JSON:
    return {
        "message_id": message_id,
        "rows": [[{"text": b.text, "request": b.request} for b in row] for row in keyboard.rows],
        "resize": keyboard.resize,
        "one_time": keyboard.one_time,
        "placeholder": keyboard.placeholder,
    }


def _sender(world: SimWorld, entry: ChatEntry) -> JSON:
    if isinstance(entry, UserMessage):
        return {"id": entry.user.id, "name": entry.user.first_name, "is_bot": False}
    return {"id": world.bot.id, "name": world.bot.first_name, "is_bot": True}


def _snippet(entry: ChatEntry) -> str:
    text = entry.text or entry.caption
    if text:
        return text if utf16_len(text) <= 90 else text[:87] + "…"
    if isinstance(entry, BotMessage) and entry.items:
        return f"🖼 Album of {len(entry.items)} photos"
    if entry.photo:
        return "📷 Photo"
    if isinstance(entry, BotMessage) and entry.venue is not None:
        return f"📍 {entry.venue.title}"
    if entry.location is not None:
        return "📍 Location"
    return "📎 File" if entry.document else "Sticker"


def entry_view(world: SimWorld, entry: ChatEntry) -> JSON:
    """One message (or a whole album) as the page draws it."""
    view: JSON = {
        "key": entry.message_id,
        "message_id": entry.message_id,
        "rev": entry.rev,
        "seq": entry.seq,
        "date": entry.date,
        "deleted": entry.deleted,
        "sender": _sender(world, entry),
        "text": entry.text,
        "entities": _entities(entry.entities),
        "caption": entry.caption,
        "caption_entities": _entities(entry.caption_entities),
        "document": None,
        "sticker": None,
        "keyboard": [],
        "photos": [],
        "place": None,
        "reply_to": None,
        "edited": False,
        "delivered": True,
    }
    if entry.reply_to is not None:
        replied = world.entry(entry.chat_id, entry.reply_to)
        if replied is not None and not replied.deleted:
            view["reply_to"] = {
                "message_id": entry.reply_to,
                "sender": _sender(world, replied)["name"],
                "snippet": _snippet(replied),
            }
    if entry.document is not None:
        view["document"] = {
            "name": entry.document.file_name or "file",
            "size": entry.document.file_size,
            "href": f"/media/{entry.document.file_id}",
        }
    if entry.location is not None:
        view["place"] = _place_view(entry.location, entry.venue if isinstance(entry, BotMessage) else None)
    if isinstance(entry, UserMessage):
        view |= {"from": "user", "kind": entry.kind, "delivered": entry.delivered}
        if entry.photo:
            view["photos"] = [_photo_view(entry.photo)]
        if entry.sticker is not None:
            view["sticker"] = {"src": f"/media/{entry.sticker.file_id}"}
        return view
    view |= {"from": "bot", "kind": entry.kind, "edited": entry.edit_date is not None}
    if entry.items:
        view["photos"] = [_photo_view(i.photo.sizes, i.caption, i.caption_entities) for i in entry.items]
    elif entry.photo is not None:
        view["photos"] = [_photo_view(entry.photo.sizes)]
    view["keyboard"] = [
        [{"text": b.text, "callback_data": b.callback_data, "url": b.url} for b in row] for row in entry.keyboard
    ]
    return view


def _user_view(user: SimUser) -> JSON:
    return {
        "id": user.id,
        "first_name": user.first_name,
        "username": user.username,
        "language_code": user.language_code,
    }


def _chat_view(chat: SimChat) -> JSON:
    return {"id": chat.id, "type": chat.type, "title": chat.title, "members": list(chat.members)}


# --- handlers ---------------------------------------------------------------------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    return _no_cache(web.FileResponse(request.app[_STATIC_KEY] / "index.html"))


async def static_file(request: web.Request) -> web.StreamResponse:
    # Only files listed at startup are served, so no name can reach outside the folder.
    path = request.app[_STATIC_FILES_KEY].get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return _no_cache(web.FileResponse(path))


async def state(request: web.Request) -> web.Response:
    world = request.app[_WORLD_KEY]
    commands = world.commands.get(('{"type": "default"}', ""), [])
    return web.json_response(
        {
            "bot": {"id": world.bot.id, "first_name": world.bot.first_name, "username": world.bot.username},
            "users": [_user_view(u) for u in world.users.values()],
            "chats": [_chat_view(c) for c in world.chats.values()],
            "commands": commands,
        }
    )


def _chat_from(request: web.Request) -> SimChat | web.Response:
    world = request.app[_WORLD_KEY]
    try:
        return world.require_chat(int(request.match_info["chat_id"]))
    except (KeyError, ValueError):
        return _error(404, f"No chat {request.match_info['chat_id']!r} in the playground")


def _member_from(world: SimWorld, chat: SimChat, raw_user_id: Any) -> SimUser | web.Response:
    try:
        user = world.users[int(raw_user_id)]
    except (KeyError, TypeError, ValueError):
        return _error(400, f"Unknown user {raw_user_id!r}")
    if user.id not in chat.members:
        return _error(403, f"{user.first_name} is not a member of this chat")
    return user


async def messages(request: web.Request) -> web.Response:
    world = request.app[_WORLD_KEY]
    chat = _chat_from(request)
    if isinstance(chat, web.Response):
        return chat
    try:
        since = int(request.query.get("since", "0"))
        viewer = int(request.query["user_id"]) if request.query.get("user_id") else None
    except ValueError:
        return _error(400, "since must be a revision number and user_id a user id")
    action = world.current_action(chat.id)
    keyboard = world.reply_keyboard(chat.id, viewer)
    return web.json_response(
        {
            "chat_id": chat.id,
            "rev": world.chat_rev(chat.id),
            "messages": [entry_view(world, e) for e in world.entries(chat.id, since_rev=since)],
            "action": action.action if action else None,
            # The keyboard in effect, not a change: a client shows the latest one whatever it last saw.
            "reply_keyboard": _reply_keyboard_view(*keyboard) if keyboard else None,
        }
    )


async def send(request: web.Request) -> web.Response:
    world = request.app[_WORLD_KEY]
    chat = _chat_from(request)
    if isinstance(chat, web.Response):
        return chat
    form = await request.post()
    user = _member_from(world, chat, form.get("user_id"))
    if isinstance(user, web.Response):
        return user
    text = str(form.get("text") or "").strip()
    reply_to = None
    if form.get("reply_to"):
        try:
            reply_to = int(str(form["reply_to"]))
        except ValueError:
            return _error(400, "reply_to must be a message id")
    photo = form.get("photo")
    try:
        if isinstance(photo, web.FileField):
            data = photo.file.read()
            if not data:
                return _error(400, f"{photo.filename or 'The file'} is empty")
            if len(data) > MAX_PAGE_PHOTO_BYTES:
                size_mb = len(data) / 1024 / 1024
                return _error(413, f"{photo.filename} is {size_mb:.1f} MB; photos can be at most 10 MB")
            try:
                variants = await asyncio.to_thread(prepare_photo, data)
            except ImageDecodeError:
                return _error(400, f"{photo.filename or 'That file'} is not an image (try a JPEG or PNG)")
            message_id = world.send_prepared_photo(chat, user, variants, caption=text or None, reply_to=reply_to)
        elif text:
            message_id = world.send_text(chat, user, text, reply_to=reply_to)
        else:
            return _error(400, "Type a message or pick a photo first")
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"ok": True, "message_id": message_id})


async def share_location(request: web.Request) -> web.Response:
    world = request.app[_WORLD_KEY]
    chat = _chat_from(request)
    if isinstance(chat, web.Response):
        return chat
    try:
        body = await request.json()
        latitude, longitude = float(body["latitude"]), float(body["longitude"])
        reply_to = int(body["reply_to"]) if body.get("reply_to") else None
    except (ValueError, KeyError, TypeError):
        return _error(400, "Expected JSON {user_id, latitude, longitude} with numbers")
    user = _member_from(world, chat, body.get("user_id"))
    if isinstance(user, web.Response):
        return user
    try:
        message_id = world.send_location(chat, user, latitude, longitude, reply_to=reply_to)
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"ok": True, "message_id": message_id})


async def press(request: web.Request) -> web.Response:
    world = request.app[_WORLD_KEY]
    chat = _chat_from(request)
    if isinstance(chat, web.Response):
        return chat
    try:
        body = await request.json()
        message_id, callback_data = int(body["message_id"]), str(body["callback_data"])
    except (ValueError, KeyError, TypeError):
        return _error(400, "Expected JSON {user_id, message_id, callback_data}")
    user = _member_from(world, chat, body.get("user_id"))
    if isinstance(user, web.Response):
        return user
    try:
        query_id = world.press_button(chat, user, message_id, callback_data)
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"ok": True, "callback_query_id": query_id})


async def set_language(request: web.Request) -> web.Response:
    world = request.app[_WORLD_KEY]
    try:
        user_id = int(request.match_info["user_id"])
        body = await request.json()
        language_code = str(body["language_code"])
    except (ValueError, KeyError, TypeError):
        return _error(400, "Expected JSON {language_code}")
    if user_id not in world.users:
        return _error(404, f"No user {user_id} in the playground")
    try:
        user = world.set_language(user_id, language_code)
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"ok": True, "user": _user_view(user)})


def _sse(event: WorldEvent) -> bytes:
    data = json.dumps({"chat_id": event.chat_id, **event.data})
    return f"event: {event.kind}\ndata: {data}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events; the page re-reads a chat when told it changed."""
    world = request.app[_WORLD_KEY]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    queue = world.subscribe()
    try:
        await response.write(b"retry: 1000\n\nevent: hello\ndata: {}\n\n")
        while not world.closed:
            try:
                event = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if event is None:
                break
            await response.write(_sse(event))
    except ConnectionResetError:
        pass  # the tab went away
    finally:
        world.unsubscribe(queue)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def media(request: web.Request) -> web.Response:
    world = request.app[_WORLD_KEY]
    stored = world.files.get(request.match_info["file_id"])
    if stored is None:
        return _error(404, "No such file")
    headers = {"Cache-Control": "public, max-age=31536000, immutable"}  # a file_id never changes content
    if stored.file_name:
        headers["Content-Disposition"] = f'inline; filename="{stored.file_name.replace(chr(34), "")}"'
    return web.Response(body=stored.data, content_type=stored.mime_type, headers=headers)


def add_page_routes(app: web.Application, world: SimWorld, static_dir: Path) -> None:
    """Mounts the page and its API on the stand-in's app."""
    app[_WORLD_KEY] = world
    app[_STATIC_KEY] = static_dir
    app[_STATIC_FILES_KEY] = {p.name: p for p in static_dir.iterdir() if p.is_file()} if static_dir.is_dir() else {}
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/api/state", state)
    app.router.add_get("/api/chats/{chat_id}/messages", messages)
    app.router.add_post("/api/chats/{chat_id}/send", send)
    app.router.add_post("/api/chats/{chat_id}/location", share_location)
    app.router.add_post("/api/chats/{chat_id}/press", press)
    app.router.add_post("/api/users/{user_id}/language", set_language)
    app.router.add_get("/api/events", events)
    app.router.add_get("/media/{file_id}", media)
