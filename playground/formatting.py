"""``parse_mode`` handling: turns HTML / MarkdownV2 / Markdown text into plain text plus entities.

The point is to fail where Telegram fails. A bot that puts user input into an HTML message without escaping
it, or forgets to escape a ``.`` in MarkdownV2, gets the same ``400 can't parse entities`` here that it would
get in production, before anyone registers a real bot. The parsers cover the documented syntax; error texts
follow Telegram's wording where it is known.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

from playground.entities import detect_entities, utf16_len
from playground.models import Entity


class FormattingError(ValueError):
    """Raised for text Telegram would refuse; the message is the Bot API description after "Bad Request: "."""


class _Builder:
    """Plain text being built, with its length in UTF-16 units."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.offset = 0
        self.entities: list[Entity] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.offset += utf16_len(text)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        if self.offset > start:
            self.entities.append(Entity(kind, start, self.offset - start, **extra))

    def text(self) -> str:
        return "".join(self.parts)


def _fail(source: str, index: int, message: str) -> FormattingError:
    byte_offset = len(source[:index].encode())
    return FormattingError(f"can't parse entities: {message} at byte offset {byte_offset}")


# --- HTML -------------------------------------------------------------------------------------------------

_HTML_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>"
)
_HTML_ATTR = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
_HTML_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "",
}


def _parse_html(source: str) -> _Builder:
    out = _Builder()
    # (tag name, entity type, start offset, attributes, index in source)
    stack: list[tuple[str, str, int, dict[str, str], int]] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char == "&":
            match = _HTML_ENTITY.match(source, i)
            if match:
                out.add(html.unescape(match.group()))
                i = match.end()
                continue
            out.add(char)
            i += 1
            continue
        if char != "<":
            out.add(char)
            i += 1
            continue
        match = _HTML_TAG.match(source, i)
        if not match:
            raise _fail(source, i, "unexpected '<' (escape it as &lt;)")
        closing, name = match.group(1) == "/", match.group(2).lower()
        if closing:
            if not stack:
                raise _fail(source, i, f'Unexpected end tag "{name}"')
            open_name, kind, start, attrs, _ = stack.pop()
            if open_name != name:
                raise _fail(source, i, f'Unmatched end tag, expected "</{open_name}>", found "</{name}>"')
            _close_html(out, kind, start, attrs, stack)
        else:
            if name not in _HTML_TAGS:
                raise _fail(source, i, f'Unsupported start tag "{name}"')
            attrs = {
                a.group(1).lower(): next((g for g in a.groups()[1:] if g is not None), "")
                for a in _HTML_ATTR.finditer(match.group(3))
            }
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise _fail(source, i, 'Tag "span" must have class "tg-spoiler"')
            if name == "a" and not attrs.get("href"):
                raise _fail(source, i, 'Tag "a" must have attribute "href"')
            stack.append((name, _HTML_TAGS[name], out.offset, attrs, i))
        i = match.end()
    if stack:
        name, *_, index = stack[-1]
        raise _fail(source, index, f'Can\'t find end tag corresponding to start tag "{name}"')
    return out


def _close_html(out: _Builder, kind: str, start: int, attrs: Mapping[str, str], stack: list[tuple[Any, ...]]) -> None:
    if kind == "text_link":
        out.entity("text_link", start, url=html.unescape(attrs["href"]))
    elif kind == "code" and stack and stack[-1][1] == "pre":
        # <pre><code class="language-python"> is one pre entity with a language.
        language = attrs.get("class", "").removeprefix("language-") or None
        if language:
            name, _, pre_start, pre_attrs, index = stack.pop()
            stack.append((name, "pre", pre_start, {**pre_attrs, "language": language}, index))
        else:
            out.entity("code", start)
    elif kind == "pre":
        out.entity("pre", start, language=attrs.get("language"))
    elif kind == "blockquote":
        out.entity("expandable_blockquote" if "expandable" in attrs else "blockquote", start)
    elif kind:
        out.entity(kind, start)


# --- MarkdownV2 -------------------------------------------------------------------------------------------

_V2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_V2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "blockquote": "BlockQuote",
}


def _read_until(source: str, i: int, end: str, *, what: str, opened_at: int) -> tuple[str, int]:
    """Reads escaped text up to ``end``; returns the unescaped text and the index after ``end``."""
    chunk: list[str] = []
    while i < len(source):
        if source.startswith(end, i):
            return "".join(chunk), i + len(end)
        if source[i] == "\\" and i + 1 < len(source):
            chunk.append(source[i + 1])
            i += 2
            continue
        chunk.append(source[i])
        i += 1
    raise _fail(source, opened_at, f"Can't find end of {what} entity")


def _parse_markdown_v2(source: str) -> _Builder:
    out = _Builder()
    stack: list[tuple[str, int, int]] = []  # (entity type, start offset, index in source)

    def toggle(kind: str, index: int) -> None:
        for position in range(len(stack) - 1, -1, -1):
            if stack[position][0] == kind:
                _, start, _ = stack.pop(position)
                out.entity(kind, start)
                return
        stack.append((kind, out.offset, index))

    i = 0
    at_line_start = True
    while i < len(source):
        char = source[i]
        line_start, at_line_start = at_line_start, False
        if char == "\\" and i + 1 < len(source):
            out.add(source[i + 1])
            i += 2
        elif source.startswith("```", i):
            body, i = _read_until(source, i + 3, "```", what="Pre", opened_at=i)
            first_line, newline, rest = body.partition("\n")
            language = first_line.strip() if newline and first_line.strip() and " " not in first_line else None
            start = out.offset
            out.add(rest if language else body)
            out.entity("pre", start, language=language)
        elif char == "`":
            body, i = _read_until(source, i + 1, "`", what="Code", opened_at=i)
            start = out.offset
            out.add(body)
            out.entity("code", start)
        elif source.startswith("__", i):
            toggle("underline", i)
            i += 2
        elif source.startswith("||", i):
            toggle("spoiler", i)
            i += 2
        elif char in "*_~":
            toggle({"*": "bold", "_": "italic", "~": "strikethrough"}[char], i)
            i += 1
        elif char == "[":
            stack.append(("text_link", out.offset, i))
            i += 1
        elif char == "]" and stack and stack[-1][0] == "text_link" and source.startswith("(", i + 1):
            url, i = _read_until(source, i + 2, ")", what="TextUrl", opened_at=i)
            _, start, _ = stack.pop()
            out.entity("text_link", start, url=url)
        elif char == ">" and line_start:
            end = source.find("\n", i)
            end = len(source) if end == -1 else end
            start = out.offset
            inner = _parse_markdown_v2(source[i + 1 : end])
            for entity in inner.entities:
                out.entities.append(Entity(entity.type, entity.offset + start, entity.length, entity.url))
            out.add(inner.text())
            out.entity("blockquote", start)
            i = end
        elif char in _V2_RESERVED:
            raise _fail(source, i, f"Character '{char}' is reserved and must be escaped with the preceding '\\'")
        else:
            out.add(char)
            at_line_start = char == "\n"
            i += 1
    if stack:
        kind, _, index = stack[-1]
        raise _fail(source, index, f"Can't find end of {_V2_NAMES.get(kind, kind)} entity")
    return out


# --- legacy Markdown --------------------------------------------------------------------------------------

_LEGACY_LINK = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")


def _parse_markdown(source: str) -> _Builder:
    out = _Builder()
    i = 0
    while i < len(source):
        char = source[i]
        if char == "\\" and i + 1 < len(source) and source[i + 1] in "_*`[":
            out.add(source[i + 1])
            i += 2
            continue
        if char == "[":
            match = _LEGACY_LINK.match(source, i)
            if not match:
                raise _fail(source, i, "Can't find end of the entity starting")
            start = out.offset
            out.add(match.group(1))
            out.entity("text_link", start, url=match.group(2))
            i = match.end()
            continue
        marker = "```" if source.startswith("```", i) else char
        kind = {"```": "pre", "`": "code", "*": "bold", "_": "italic"}.get(marker)
        if kind is None:
            out.add(char)
            i += 1
            continue
        end = source.find(marker, i + len(marker))
        if end == -1:
            raise _fail(source, i, "Can't find end of the entity starting")
        start = out.offset
        out.add(source[i + len(marker) : end])
        out.entity(kind, start)
        i = end + len(marker)
    return out


# --- entry point ------------------------------------------------------------------------------------------

_PARSERS = {"html": _parse_html, "markdownv2": _parse_markdown_v2, "markdown": _parse_markdown}
# Telegram links these itself in bot messages too; code and links keep their text as is.
_OPAQUE = {"code", "pre", "text_link", "url"}


def entities_from_wire(raw: Iterable[Mapping[str, Any]], text: str) -> tuple[Entity, ...]:
    """Validates an explicit ``entities`` / ``caption_entities`` parameter."""
    total = utf16_len(text)
    result = []
    for item in raw:
        try:
            entity = Entity(
                str(item["type"]), int(item["offset"]), int(item["length"]), item.get("url"), item.get("language")
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormattingError(f"can't parse entities: bad entity {item!r}") from exc
        if entity.offset < 0 or entity.length <= 0 or entity.offset + entity.length > total:
            raise FormattingError(f"can't parse entities: entity {item!r} is outside the text")
        result.append(entity)
    return tuple(result)


def format_text(
    text: str, parse_mode: str | None, entities: Iterable[Mapping[str, Any]] | None = None
) -> tuple[str, tuple[Entity, ...]]:
    """The plain text and entities Telegram would store for a bot's text or caption."""
    if entities is not None:
        parsed = entities_from_wire(entities, text)
    elif parse_mode:
        parser = _PARSERS.get(parse_mode.lower())
        if parser is None:
            raise FormattingError(f"unsupported parse_mode {parse_mode!r}")
        built = parser(text)
        text, parsed = built.text(), tuple(built.entities)
    else:
        parsed = ()
    opaque = [(e.offset, e.offset + e.length) for e in parsed if e.type in _OPAQUE]
    automatic = tuple(
        e
        for e in detect_entities(text)
        if not any(start < e.offset + e.length and e.offset < end for start, end in opaque)
    )
    merged = sorted(parsed + automatic, key=lambda e: (e.offset, -e.length))
    return text, tuple(merged)
