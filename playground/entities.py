"""The entities Telegram computes for text users type: ``bot_command`` and ``mention``.

Offsets and lengths are in UTF-16 code units (an emoji counts 2), which is what python-telegram-bot's
``Message.parse_entity`` expects.
"""

from __future__ import annotations

import re

from playground.models import Entity

# "/cmd" or "/cmd@some_bot", not glued to a preceding word, path or mention ("a/b", "x@y/z").
_COMMAND = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w@/])")
# "@username": 5-32 word characters, not part of an e-mail address or another mention.
_MENTION = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{5,32}(?![\w@])")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def detect_entities(text: str) -> tuple[Entity, ...]:
    """Finds commands and mentions in ``text``, ordered by offset."""
    found = [("bot_command", m) for m in _COMMAND.finditer(text)]
    found += [("mention", m) for m in _MENTION.finditer(text)]
    found.sort(key=lambda pair: pair[1].start())
    return tuple(Entity(kind, utf16_len(text[: match.start()]), utf16_len(match.group())) for kind, match in found)


def leading_command(text: str | None, entities: tuple[Entity, ...]) -> str | None:
    """The command at offset 0 (e.g. ``/suggest@wanderlens_bot``), as CommandHandler sees it."""
    for entity in entities:
        if entity.type == "bot_command" and entity.offset == 0 and text:
            return text.encode("utf-16-le")[: entity.length * 2].decode("utf-16-le")
    return None


def mentions(text: str | None, entities: tuple[Entity, ...]) -> list[str]:
    """The ``@usernames`` mentioned, without the ``@``."""
    if not text:
        return []
    encoded = text.encode("utf-16-le")
    return [
        encoded[(e.offset + 1) * 2 : (e.offset + e.length) * 2].decode("utf-16-le")
        for e in entities
        if e.type == "mention"
    ]
