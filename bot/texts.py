"""Everything the bot says, as gettext messages: the English sentence is the msgid, translations live in bot/locales.

Each sentence is marked with N_() (or NN_() when it has plural forms) so that `python -m bot.i18n extract` finds it;
the marker returns the English text unchanged, and a handler shows it with `lang.gettext(texts.START)`. Sentences
that are put together from parts (captions, the line after an album, confirmations) are built by the functions at the
end, which take the user's `Lang` first.

Rules for a message: named placeholders only (`{name}`, `{count}`), each filled with an already formatted string
(numbers through `lang.number`, percentages through `lang.percent`); whole sentences rather than fragments; plain
text (no parse mode), so catalog names and users' own words can never break formatting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import N_, NN_, Lang
from contract import messages as m
from recommender.geo import Region, country_code

CAPTION_LIMIT: Final = 1024  # Bot API limit for a photo caption
MEGABYTE: Final = 1024 * 1024
BOT_DOWNLOAD_LIMIT: Final = 20 * MEGABYTE  # the most getFile lets a bot download

# --- greetings and help ---------------------------------------------------------------------------------------------

START: Final = N_(
    "Hi! I'm Wanderlens. Send me a photo — a beach, a mountain village, a skyline — and I'll suggest "
    "destinations that look like it, with their photos and where they are.\n\n"
    "• 👍 under a suggestion (or /like 2) teaches me your taste: later suggestions lean toward it.\n"
    "• /more shows the next best places.\n"
    "• /likes lists what you liked; /forget deletes everything I keep about you.\n"
    "• In a group, add me and send /suggest: I'll find places that suit everyone who liked something.\n\n"
    "What I store: your likes (until you /forget them), your latest results for a week, and a fingerprint "
    "of the photos you send (not the photos) for a week. Nothing else."
)

HELP: Final = N_(
    "How to use me:\n"
    "• Send a photo (or an image file) → the 5 most similar destinations.\n"
    "• /more → the next 5, never repeating one you've seen for that photo.\n"
    "• /like [n] → like result n of the last album (no number: the first). Or tap 👍n.\n"
    "• /likes → what you liked.  /forget → delete all your data.\n"
    "• In groups: a photo captioned /suggest, /suggest as a reply to a photo, or a photo that mentions me → "
    "suggestions in the group; /suggest alone → places that suit the whole group."
)

# --- what the bot needs, and why it can't do something --------------------------------------------------------------

ASK_FOR_PHOTO: Final = N_("Send me a photo of a place you'd love to be, and I'll find destinations like it.")
STICKER: Final = N_("Cute! But I need a real photo of a place to find destinations like it.")
NOT_AN_IMAGE: Final = N_("That file isn't a picture I can read. Please send a photo (JPEG or PNG).")
# Translators: {size} is the Bot API's download limit, formatted for your language (e.g. "20 MB", "20 Mo").
TOO_BIG: Final = N_("That file is over {size} — the most a bot can download. Please send it as a photo instead.")
BUSY: Final = N_("I'm very busy right now — please try again in a minute.")
STILL_WORKING: Final = N_("I'm still working on your previous request — one moment, please.")
TIMED_OUT: Final = N_("Sorry, that took too long and I had to give up. Please send it again.")
FAILED: Final = N_("Sorry, something went wrong with that one. Please try another photo.")
RATE_LIMITED: Final = N_("You're sending photos faster than I can look at them — please wait a minute and try again.")
NO_RESULTS_YET: Final = N_("Send me a photo first, then /more shows the next destinations.")
NOTHING_LEFT: Final = N_("That's everything I have for that photo. Send another one for new ideas!")
UNKNOWN_DESTINATION: Final = N_(
    "I can't find that one — it may be from an older album. Try a number from the latest album."
)
NO_GROUP_TASTE: Final = N_(
    "Nobody here has liked a place yet. Send a photo with the caption /suggest, then tap 👍 on the "
    "places you like — and /suggest again to find places for the whole group."
)
GROUP_PHOTO_HINT: Final = N_(
    "Send a photo with the caption /suggest (or reply /suggest to a photo) for destinations like it."
)
LIKE_USAGE: Final = N_("Usage: /like 2 — likes the 2nd place of the last album.")
# The error handler's reply: something broke in the bot itself, not in the user's request.
INTERNAL_ERROR: Final = N_("Sorry, something went wrong on my side. Please try again.")
# Translators: the bot's database is restarting; the user's request waits and will be answered.
WAITING_FOR_BACKEND: Final = N_("I'm restarting part of myself — I'll answer this as soon as I'm back.")
BACKEND_DOWN: Final = N_("Sorry, I can't reach my database right now. Please try again in a few minutes.")

# --- photos the worker refuses: one sentence per UnsupportedImage.reason (recommender/images.py) --------------------

IMAGE_EMPTY: Final = N_("That file is empty — please send a photo.")
# Translators: {size} is a file size formatted for your language, e.g. "20 MB".
IMAGE_TOO_LARGE: Final = N_("That photo is too large (over {size}). Please send a smaller one.")
# Translators: {kind} is a file format's name such as HEIC or AVIF.
IMAGE_UNSUPPORTED_FORMAT: Final = N_(
    "I can't open {kind} pictures. Please send it as a photo rather than a file, or as a JPEG."
)
IMAGE_SVG: Final = N_("SVG drawings aren't supported. Please send a JPEG or PNG photo.")
IMAGE_NOT_AN_IMAGE: Final = N_("I couldn't read that as a picture. Please send a JPEG or PNG photo.")
IMAGE_CORRUPT: Final = N_("That image looks damaged — it couldn't be decoded. Please try another photo.")
# Translators: {megapixels} is a number, e.g. "50".
IMAGE_TOO_MANY_PIXELS: Final = N_(
    "That image has too many pixels (over {megapixels} megapixels). Please send a smaller one."
)
# Translators: {side} is a number of pixels, e.g. "16"; the image must be at least {side}×{side}.
IMAGE_TOO_SMALL: Final = N_("That image is too small to recognise anything (at least {side}×{side} pixels, please).")
IMAGE_BAD_ASPECT: Final = N_("That image is an unusual shape (a very long strip); please send an ordinary photo.")

# --- albums, likes, forgetting --------------------------------------------------------------------------------------

# Translators: a photo caption. {percent} is already formatted ("42%"); it says how similar the photos look.
CAPTION_WITH_PLACE: Final = N_("{rank}. {name} — {place} · {percent} match")
CAPTION: Final = N_("{rank}. {name} · {percent} match")
GROUP_CAPTION_WITH_PLACE: Final = N_("{rank}. {name} — {place}")
GROUP_CAPTION: Final = N_("{rank}. {name}")
# Translators: under a group suggestion: the members of the group this place suits ("Alice, Bob and Chloe").
FITS: Final = N_("Fits: {names}")
# Translators: under a group suggestion that suits nobody in particular but the group as a whole.
COMPROMISE: Final = N_("A compromise for everyone")
# Translators: {hints} are English words from the image classifier ("spider web (8%), stick insect (6%)").
LOOKS_LIKE: Final = N_("Your photo looks like: {hints}.")
# Translators: in a group, after an album: {names} are the members it was made for ("Alice, Bob and Chloe").
PLACES_FOR: Final = N_("Places for {names}.")
TAP_TO_LIKE: Final = N_("Tap 👍 on the places you like — I'll learn your taste.")
# Translators: {button} is the translation of the "More ▶" button.
MORE_WAITING: Final = NN_(
    "{count} more waiting: tap {button} or send /more.", "{count} more waiting: tap {button} or send /more."
)
# Translators: a button label under an album; it shows the next page of results.
MORE_BUTTON: Final = N_("More ▶")
LIKED_WITH_PLACE: Final = N_("❤️ Liked {name} ({place}).")
LIKED: Final = N_("❤️ Liked {name}.")
# Translators: in a group everyone sees the confirmation, so it names who pressed 👍. {who} is a first name.
WHO_LIKED_WITH_PLACE: Final = N_("❤️ {who} liked {name} ({place}).")
WHO_LIKED: Final = N_("❤️ {who} liked {name}.")
LIKED_TOTAL: Final = NN_("You have {count} liked place.", "You have {count} liked places.")
WHO_LIKED_TOTAL: Final = NN_("{who} has {count} liked place.", "{who} has {count} liked places.")
# Translators: stands in for the name of a group member who has neither a first name nor a username.
SOMEONE: Final = N_("Someone")
NO_LIKES: Final = N_("You haven't liked anything yet. Tap 👍 under a suggestion to teach me your taste.")
LIKES_HEADER: Final = N_("Your liked places ({count}):")
FORGET_CONFIRM: Final = N_("Delete everything I keep about you — your likes, in every chat, and your recent results?")
FORGET_YES: Final = N_("Yes, delete")
FORGET_NO: Final = N_("No, keep")
FORGET_CANCELLED: Final = N_("Okay, I kept everything.")
FORGOTTEN: Final = NN_(
    "Done. I deleted your {count} like and your recent results. It's a fresh start.",
    "Done. I deleted your {count} likes and your recent results. It's a fresh start.",
)

# --- /language ------------------------------------------------------------------------------------------------------

LANGUAGE_PROMPT: Final = N_("Which language shall I speak? Tap one below.")
# Translators: {language} is the language's own name ("Deutsch", "Français"); this is said in the new language.
LANGUAGE_SET: Final = N_("Language set to {language}.")
# Translators: {code} is what the user typed; {languages} lists the codes and names ("de (Deutsch), fr (Français)").
LANGUAGE_UNKNOWN: Final = N_('I don\'t speak "{code}" yet. I can speak: {languages}.')
LANGUAGE_AUTO: Final = N_("I'll follow your Telegram app's language again.")
# Translators: a button label under the /language question: speak whatever language the user's Telegram app uses.
LANGUAGE_AUTO_BUTTON: Final = N_("🌐 Automatic")

# --- maps, distance and regions -------------------------------------------------------------------------------------

# Translators: a button label under a destination; it shows the place on a map.
MAP_BUTTON: Final = N_("📍 Map")
NO_COORDINATES: Final = N_("{name} has no coordinates, so I can't show it on a map.")
LOCATION_SAVED: Final = N_("Got your location — I'll favour places near you. /nearby off turns it off.")
NEARBY_NEEDS_LOCATION: Final = N_("Share your location with me first (📎 → Location), and I'll favour places near you.")
DISTANCE_OFF: Final = N_("Distance is off again.")
# Translators: appended to a caption; {distance} is already formatted, e.g. "1,240 km".
DISTANCE_AWAY: Final = N_("{distance} away")
BAD_LOCATION: Final = N_(
    "That location doesn't look right (it's at 0, 0 or out of range). Please share your location again."
)
# Translators: {region} is a country or a continent, as the user typed it or as the bot understood it ("Italy").
WHERE_SET: Final = N_("Showing only places in {region} until you send /where off.")
# Translators: {distance} is already formatted, e.g. "300 km".
WHERE_SET_RADIUS: Final = N_("Showing only places within {distance} until you send /where off.")
# Translators: keep /where, Italy, IT, Europe and "within 300 km" as they are: they are what the command understands.
WHERE_UNKNOWN: Final = N_(
    'I don\'t know a region called "{region}". Try a country (Italy, IT) or a continent (Europe), or "within 300 km".'
)
# Translators: keep the commands after "e.g." as they are: they are what the command understands.
WHERE_USAGE: Final = N_("/where needs a place after it — e.g. /where Italy, /where Europe, /where within 300 km.")
WHERE_OFF: Final = N_("No region filter any more.")
# Translators: in a group, after an album: the place with the least travel for everyone who shared a location.
GROUP_CLOSEST: Final = N_("📍 Closest to all of you: {name}, {distance} away on average.")
# Translators: {region} is a country or a continent the bot knows, but the catalog has no destination there.
WHERE_EMPTY: Final = N_("I know {region}, but I have no places there yet. Try a neighbouring country or a continent.")
REGION_NOT_USABLE: Final = N_(
    "None of my places are in the region you chose with /where. Send /where off to search everywhere again."
)
# Translators: a button under the message that asks for the location; Telegram sends the location when pressed.
SHARE_LOCATION_BUTTON: Final = N_("📍 Share my location")

# --- the command menu (setMyCommands, one list per language_code) ---------------------------------------------------

COMMAND_DESCRIPTIONS: Final = {
    # Translators: this and the next ones describe commands in Telegram's "/" menu: short, no full stop.
    "start": N_("What I do and what I store"),
    "help": N_("How to use me"),
    "more": N_("The next best destinations"),
    "like": N_("Like result n of the last album"),
    "likes": N_("Places you liked"),
    "suggest": N_("Places for the whole group (or for a photo you reply to)"),
    "forget": N_("Delete everything I keep about you"),
    "language": N_("Choose the language I speak"),
    "nearby": N_("Favour places near you (or /nearby off)"),
    "where": N_("Only show places in a region (or /where off)"),
}
# What the bot registers, in the order of the "/" menu.
COMMANDS: Final = ("start", "help", "more", "like", "likes", "suggest", "nearby", "where", "forget", "language")

# The sentence for each way a job can fail, other than a refused photo (see `error_text`).
ERRORS: Final = {
    m.ErrorCode.EXPIRED: TIMED_OUT,
    m.ErrorCode.FAILED: FAILED,
    m.ErrorCode.NO_RESULTS_YET: NO_RESULTS_YET,
    m.ErrorCode.NOTHING_LEFT: NOTHING_LEFT,
    m.ErrorCode.UNKNOWN_DESTINATION: UNKNOWN_DESTINATION,
    m.ErrorCode.NO_GROUP_TASTE: NO_GROUP_TASTE,
    m.ErrorCode.NEED_LOCATION: NEARBY_NEEDS_LOCATION,
    m.ErrorCode.UNKNOWN_REGION: REGION_NOT_USABLE,
    m.ErrorCode.EMPTY_REGION: REGION_NOT_USABLE,
}


# --- sentences put together from parts ------------------------------------------------------------------------------


class Shown(Protocol):
    """What the composite texts read from a destination (contract.messages.Item has these fields)."""

    @property
    def name(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def country(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def credit(self) -> str: ...
    @property
    def licence(self) -> str: ...
    @property
    def fits(self) -> Sequence[str]: ...
    @property
    def names(self) -> Sequence[m.LocalName]: ...


def local_name(lang: Lang, item: Shown) -> str:
    """The destination's name in the user's language where the catalog has it (name:de, name:pt_br), else its own."""
    names = {entry.language.lower(): entry.name for entry in item.names}
    code = lang.code.lower()
    return names.get(code) or names.get(code.split("_")[0]) or item.name


def country_name(lang: Lang, country: str) -> str:
    """A country as the user's language writes it ("Italy" -> "Italien"), when it is one CLDR knows."""
    code = country_code(country) if country else None
    return lang.locale.territories.get(code, country) if code else country


def place(item: Shown, lang: Lang | None = None) -> str:
    """`City, Country` (either may be missing); the country in the user's language when it is a known one."""
    country = country_name(lang, item.country) if lang is not None else item.country
    return ", ".join(part for part in (item.city, country) if part)


def caption(lang: Lang, rank: int, item: Shown, *, distance_km: float | None = None) -> str:
    """`1. Name — City, Country · 87% match · 1,240 km away`, then whom it fits (groups) and the photo credit."""
    where = place(item, lang)
    values = {
        "rank": lang.number(rank),
        "name": local_name(lang, item),
        "place": where,
        "percent": lang.percent(max(0.0, item.score)),
    }
    line = lang.gettext(CAPTION_WITH_PLACE if where else CAPTION, **values)
    if distance_km is not None:
        line += " · " + lang.gettext(DISTANCE_AWAY, distance=lang.distance_km(distance_km))
    if item.fits:
        line += "\n" + lang.gettext(FITS, names=lang.and_list(item.fits))
    return _with_credit(line, item)


def group_caption(lang: Lang, rank: int, item: Shown) -> str:
    """Group suggestions rank by fit, not by similarity to a photo, so they show whom they suit instead."""
    where = place(item, lang)
    line = lang.gettext(
        GROUP_CAPTION_WITH_PLACE if where else GROUP_CAPTION,
        rank=lang.number(rank),
        name=local_name(lang, item),
        place=where,
    )
    line += "\n" + (lang.gettext(FITS, names=lang.and_list(item.fits)) if item.fits else lang.gettext(COMPROMISE))
    return _with_credit(line, item)


def photo_credit(item: Shown) -> str:
    """Author and licence, each once (open-data catalogs already name the licence in the credit).

    Language-neutral: names and licence names are shown as the catalog spells them.
    """
    if item.licence and item.licence.lower() not in item.credit.lower():
        return ", ".join(part for part in (item.credit, item.licence) if part)
    return item.credit


def _with_credit(line: str, item: Shown) -> str:
    if item.credit or item.licence:
        line += f"\n📷 {photo_credit(item)}"
    return line[:CAPTION_LIMIT]


def region_set(lang: Lang, label: str, region: Region | None) -> str:
    """The confirmation of /where: the country in the user's language, or the radius formatted for them."""
    if region is not None and region.radius_km is not None:
        return lang.gettext(WHERE_SET_RADIUS, distance=lang.distance_km(region.radius_km))
    return lang.gettext(WHERE_SET, region=country_name(lang, label))


def region_failure(lang: Lang, code: m.ErrorCode, typed: str, region: Region | None) -> str:
    """Why /where changed nothing: an unknown region, one without places, or a radius without a location."""
    if code is m.ErrorCode.UNKNOWN_REGION:
        return lang.gettext(WHERE_UNKNOWN, region=typed)
    if code is m.ErrorCode.EMPTY_REGION:
        return lang.gettext(WHERE_EMPTY, region=country_name(lang, region.label) if region is not None else typed)
    return error_text(lang, m.Failure(code))


def after_album(
    lang: Lang,
    *,
    hints: Sequence[str] = (),
    members: Sequence[str] = (),
    remaining: int = 0,
    closest: Shown | None = None,
    closest_km: float | None = None,
) -> str:
    """The message under an album: what the photo looks like, whom it is for (groups), the place closest to the
    group, how to like, what is left."""
    lines = []
    if hints:
        lines.append(lang.gettext(LOOKS_LIKE, hints=", ".join(hints)))
    if members:
        lines.append(lang.gettext(PLACES_FOR, names=lang.and_list(members)))
    if closest is not None and closest_km is not None:
        lines.append(lang.gettext(GROUP_CLOSEST, name=local_name(lang, closest), distance=lang.distance_km(closest_km)))
    lines.append(lang.gettext(TAP_TO_LIKE))
    if remaining:
        lines.append(lang.plural(MORE_WAITING, remaining, button=lang.gettext(MORE_BUTTON)))
    return "\n".join(lines)


def album_keyboard(
    lang: Lang, page_id: str, count: int, *, first_rank: int, more: bool, on_map: Sequence[int] = ()
) -> InlineKeyboardMarkup:
    """👍1 … 👍n and 📍n for the places with coordinates (``on_map``: 1-based positions), then More ▶."""
    likes = [InlineKeyboardButton(f"👍{first_rank + n}", callback_data=f"like:{page_id}:{n + 1}") for n in range(count)]
    rows: list[Sequence[InlineKeyboardButton]] = [likes]
    if on_map:
        pins = [InlineKeyboardButton(f"📍{first_rank + n - 1}", callback_data=f"map:{page_id}:{n}") for n in on_map]
        rows.append(pins)
    if more:
        rows.append([InlineKeyboardButton(lang.gettext(MORE_BUTTON), callback_data="more")])
    return InlineKeyboardMarkup(rows)


def liked(lang: Lang, item: Shown, total: int, *, who: str | None = None) -> str:
    """The confirmation of a like; in a group it names who liked it, since everyone sees it."""
    where = place(item, lang)
    if who:
        name = local_name(lang, item)
        first = lang.gettext(WHO_LIKED_WITH_PLACE if where else WHO_LIKED, who=who, name=name, place=where)
        return f"{first} {lang.plural(WHO_LIKED_TOTAL, total, who=who)}"
    first = lang.gettext(LIKED_WITH_PLACE if where else LIKED, name=local_name(lang, item), place=where)
    return f"{first} {lang.plural(LIKED_TOTAL, total)}"


def likes_list(lang: Lang, items: Sequence[Shown], total: int) -> str:
    if not items:
        return lang.gettext(NO_LIKES)
    lines = [lang.gettext(LIKES_HEADER, count=lang.number(total))]
    for n, item in enumerate(items, 1):
        where = place(item, lang)
        lines.append(f"{n}. {local_name(lang, item)}" + (f" — {where}" if where else ""))
    return "\n".join(lines)


def forgotten(lang: Lang, count: int) -> str:
    return lang.plural(FORGOTTEN, count)


def forget_keyboard(lang: Lang) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(lang.gettext(FORGET_YES), callback_data="forget:yes"),
                InlineKeyboardButton(lang.gettext(FORGET_NO), callback_data="forget:no"),
            ]
        ]
    )


def too_big(lang: Lang) -> str:
    return lang.gettext(TOO_BIG, size=lang.file_size(BOT_DOWNLOAD_LIMIT))


def image_problem(
    lang: Lang,
    reason: str,
    *,
    kind: str = "",
    max_bytes: int = 20 * MEGABYTE,
    max_pixels: int = 50_000_000,
    min_side: int = 16,
) -> str:
    """The sentence for an UnsupportedImage `reason` (recommender/images.py), with the limits that were applied.

    The defaults are recommender.images' own (not imported: the bot never loads the recommender); an unknown
    reason gets the generic "couldn't read that" sentence rather than an error.
    """
    if reason == "empty":
        return lang.gettext(IMAGE_EMPTY)
    if reason == "too_large_bytes":
        return lang.gettext(IMAGE_TOO_LARGE, size=lang.file_size(max_bytes))
    if reason == "unsupported_format" and kind:
        return lang.gettext(IMAGE_UNSUPPORTED_FORMAT, kind=kind)
    if reason == "not_an_image" and kind == "SVG":
        return lang.gettext(IMAGE_SVG)
    if reason == "corrupt":
        return lang.gettext(IMAGE_CORRUPT)
    if reason == "too_many_pixels":
        return lang.gettext(IMAGE_TOO_MANY_PIXELS, megapixels=lang.number(max_pixels / 1e6))
    if reason == "too_small":
        return lang.gettext(IMAGE_TOO_SMALL, side=lang.number(min_side))
    if reason == "bad_aspect":
        return lang.gettext(IMAGE_BAD_ASPECT)
    return lang.gettext(IMAGE_NOT_AN_IMAGE)


def bad_image(lang: Lang, rejection: m.ImageRejection) -> str:
    """Why a photo could not be used, with the limit it broke; never a path or an exception's text."""
    # A limit of 0 means the worker did not say (the contract's default): then image_problem's defaults apply.
    limits = {"max_bytes": rejection.max_bytes, "max_pixels": rejection.max_pixels, "min_side": rejection.min_side}
    return image_problem(lang, rejection.reason, kind=rejection.format, **{k: v for k, v in limits.items() if v})


def error_text(lang: Lang, failure: m.Failure) -> str:
    """A sentence for the user for every way a job can fail (a newer worker's unknown code gets FAILED's)."""
    if failure.code is m.ErrorCode.BAD_IMAGE and failure.image is not None:
        return bad_image(lang, failure.image)
    return lang.gettext(ERRORS.get(failure.code, FAILED))


def language_keyboard(lang: Lang, languages: Iterable[Lang]) -> InlineKeyboardMarkup:
    """One button per language under its own name (two to a row), then "automatic" in the user's language."""
    buttons = [InlineKeyboardButton(other.name, callback_data=f"lang:{other.code}") for other in languages]
    rows: list[Sequence[InlineKeyboardButton]] = [buttons[n : n + 2] for n in range(0, len(buttons), 2)]
    rows.append([InlineKeyboardButton(lang.gettext(LANGUAGE_AUTO_BUTTON), callback_data="lang:auto")])
    return InlineKeyboardMarkup(rows)


def language_unknown(lang: Lang, code: str, languages: Iterable[Lang]) -> str:
    listing = ", ".join(f"{other.telegram_code} ({other.name})" for other in languages)
    return lang.gettext(LANGUAGE_UNKNOWN, code=code, languages=listing)


def bot_commands(lang: Lang, commands: Sequence[str] = COMMANDS) -> list[BotCommand]:
    """The "/" menu in one language, for `set_my_commands(..., language_code=lang.telegram_code)`."""
    return [BotCommand(command, lang.gettext(COMMAND_DESCRIPTIONS[command])) for command in commands]
