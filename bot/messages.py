"""Everything the bot says, in one place: greetings, captions, and a sentence for every error.

Texts are plain (no parse mode), so names from the catalog and users' own words can never break formatting.
"""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from contract import messages as m
from recommender.images import ImageProblem

CAPTION_LIMIT = 1024  # Bot API limit for a photo caption

START = (
    "Hi! I'm Wanderlens. Send me a photo — a beach, a mountain village, a skyline — and I'll suggest "
    "destinations that look like it, with their photos and where they are.\n\n"
    "• 👍 under a suggestion (or /like 2) teaches me your taste: later suggestions lean toward it.\n"
    "• /more shows the next best places.\n"
    "• /likes lists what you liked; /forget deletes everything I keep about you.\n"
    "• In a group, add me and send /suggest: I'll find places that suit everyone who liked something.\n\n"
    "What I store: your likes (until you /forget them), your latest results for a week, and a fingerprint "
    "of the photos you send (not the photos) for a week. Nothing else."
)

HELP = (
    "How to use me:\n"
    "• Send a photo (or an image file) → the 5 most similar destinations.\n"
    "• /more → the next 5, never repeating one you've seen for that photo.\n"
    "• /like [n] → like result n of the last album (no number: the first). Or tap 👍n.\n"
    "• /likes → what you liked.  /forget → delete all your data.\n"
    "• In groups: a photo captioned /suggest, /suggest as a reply to a photo, or a photo that mentions me → "
    "suggestions in the group; /suggest alone → places that suit the whole group."
)

ASK_FOR_PHOTO = "Send me a photo of a place you'd love to be, and I'll find destinations like it."
STICKER = "Cute! But I need a real photo of a place to find destinations like it."
NOT_AN_IMAGE = "That file isn't a picture I can read. Please send a photo (JPEG or PNG)."
TOO_BIG = "That file is over 20 MB — the most a bot can download. Please send it as a photo instead."
BUSY = "I'm very busy right now — please try again in a minute."
STILL_WORKING = "I'm still working on your previous request — one moment, please."
TIMED_OUT = "Sorry, that took too long and I had to give up. Please send it again."
FAILED = "Sorry, something went wrong with that one. Please try another photo."
RATE_LIMITED = "You're sending photos faster than I can look at them — please wait a minute and try again."
NO_RESULTS_YET = "Send me a photo first, then /more shows the next destinations."
NOTHING_LEFT = "That's everything I have for that photo. Send another one for new ideas!"
UNKNOWN_DESTINATION = "I can't find that one — it may be from an older album. Try a number from the latest album."
NO_GROUP_TASTE = (
    "Nobody here has liked a place yet. Send a photo with the caption /suggest, then tap 👍 on the "
    "places you like — and /suggest again to find places for the whole group."
)
FORGET_CONFIRM = "Delete everything I keep about you — your likes, in every chat, and your recent results?"
FORGET_CANCELLED = "Okay, I kept everything."
NO_LIKES = "You haven't liked anything yet. Tap 👍 under a suggestion to teach me your taste."

LIKE_USAGE = "Usage: /like 2 — likes the 2nd place of the last album."
SOMETHING_WENT_WRONG = "Sorry, something went wrong on my side. Please try again."

ERRORS = {
    m.ErrorCode.EXPIRED: TIMED_OUT,
    m.ErrorCode.FAILED: FAILED,
    m.ErrorCode.NO_RESULTS_YET: NO_RESULTS_YET,
    m.ErrorCode.NOTHING_LEFT: NOTHING_LEFT,
    m.ErrorCode.UNKNOWN_DESTINATION: UNKNOWN_DESTINATION,
    m.ErrorCode.NO_GROUP_TASTE: NO_GROUP_TASTE,
}


def error_text(failure: m.Failure) -> str:
    """A sentence for the user for every way a job can fail."""
    if failure.code is m.ErrorCode.BAD_IMAGE and failure.image is not None:
        return bad_image(failure.image)
    return ERRORS.get(failure.code, FAILED)


def bad_image(rejection: m.ImageRejection) -> str:
    """Why a photo could not be used, with the limit it broke; never a path or an exception's text."""
    try:
        problem: ImageProblem | None = ImageProblem(rejection.reason)
    except ValueError:  # a newer worker's code: say something true but general
        problem = None
    match problem:
        case ImageProblem.EMPTY:
            return "That file is empty — please send a photo."
        case ImageProblem.TOO_LARGE_BYTES:
            return f"That photo is too large (over {_human_bytes(rejection.max_bytes)}). Please send a smaller one."
        case ImageProblem.NOT_AN_IMAGE if rejection.format == "SVG":
            return "SVG drawings aren't supported. Please send a JPEG or PNG photo."
        case ImageProblem.UNSUPPORTED_FORMAT:
            return (
                f"I can't open {rejection.format or 'such'} pictures. Please send it as a photo rather than a file, "
                "or as a JPEG."
            )
        case ImageProblem.CORRUPT:
            return "That image looks damaged — it couldn't be decoded. Please try another photo."
        case ImageProblem.TOO_MANY_PIXELS:
            return (
                f"That image has too many pixels (over {rejection.max_pixels / 1e6:g} megapixels). "
                "Please send a smaller one."
            )
        case ImageProblem.TOO_SMALL:
            side = rejection.min_side
            return f"That image is too small to recognise anything (at least {side}×{side} pixels, please)."
        case ImageProblem.BAD_ASPECT:
            return "That image is an unusual shape (a very long strip); please send an ordinary photo."
        case _:
            return "I couldn't read that as a picture. Please send a JPEG or PNG photo."


def _human_bytes(count: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def place(item: m.Item) -> str:
    return ", ".join(part for part in (item.city, item.country) if part)


def photo_credit(item: m.Item) -> str:
    """Author and licence, each once (open-data catalogs already name the licence in the credit)."""
    if item.licence and item.licence.lower() not in item.credit.lower():
        return ", ".join(part for part in (item.credit, item.licence) if part)
    return item.credit


def caption(rank: int, item: m.Item) -> str:
    """`1. Name — City, Country · 87% match`, then whom it fits (groups) and the photo credit."""
    where = place(item)
    line = f"{rank}. {item.name}" + (f" — {where}" if where else "") + f" · {max(0, round(item.score * 100))}% match"
    if item.fits:
        line += f"\nFits: {', '.join(item.fits)}"
    if item.credit or item.licence:
        line += f"\n📷 {photo_credit(item)}"
    return line[:CAPTION_LIMIT]


def group_caption(rank: int, item: m.Item) -> str:
    """Group suggestions rank by fit, not by similarity to a photo, so they show whom they suit instead."""
    where = place(item)
    line = f"{rank}. {item.name}" + (f" — {where}" if where else "")
    line += f"\nFits: {', '.join(item.fits)}" if item.fits else "\nA compromise for everyone"
    if item.credit or item.licence:
        line += f"\n📷 {photo_credit(item)}"
    return line[:CAPTION_LIMIT]


def after_album(album: m.Album) -> str:
    lines = []
    if album.hints:
        lines.append(f"Your photo looks like: {', '.join(album.hints)}.")
    if album.members:
        lines.append(f"Places for {', '.join(album.members)}.")
    lines.append("Tap 👍 on the places you like — I'll learn your taste.")
    if album.remaining:
        lines.append(f"{album.remaining} more waiting: tap More ▶ or send /more.")
    return "\n".join(lines)


def album_keyboard(page_id: str, count: int, *, first_rank: int, more: bool) -> InlineKeyboardMarkup:
    likes = [InlineKeyboardButton(f"👍{first_rank + n}", callback_data=f"like:{page_id}:{n + 1}") for n in range(count)]
    rows: list[Sequence[InlineKeyboardButton]] = [likes]
    if more:
        rows.append([InlineKeyboardButton("More ▶", callback_data="more")])
    return InlineKeyboardMarkup(rows)


def liked(item: m.Item, total: int, *, who: str | None = None) -> str:
    """The confirmation of a like; in a group it names who liked it, since everyone sees it."""
    where = place(item)
    subject, owner = (f"{who} liked", f"{who} has") if who else ("Liked", "You have")
    return f"❤️ {subject} {item.name}" + (f" ({where})" if where else "") + f". {owner} {total} liked place(s)."


def likes_list(items: Sequence[m.Item], total: int) -> str:
    if not items:
        return NO_LIKES
    lines = [f"Your liked places ({total}):"]
    lines += [f"{n}. {item.name}" + (f" — {place(item)}" if place(item) else "") for n, item in enumerate(items, 1)]
    return "\n".join(lines)


def forgotten(count: int) -> str:
    return f"Done. I deleted your {count} like(s) and your recent results. It's a fresh start."


def forget_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Yes, delete", callback_data="forget:yes"),
                InlineKeyboardButton("No, keep", callback_data="forget:no"),
            ]
        ]
    )
