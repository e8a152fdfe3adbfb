"""Entities the stand-in computes for user texts, and parse_mode handling of bot texts."""

from __future__ import annotations

import pytest

from playground.entities import detect_entities
from playground.formatting import FormattingError, format_text
from playground.models import Entity


def spans(text: str, entities: tuple[Entity, ...]) -> list[tuple[str, str]]:
    encoded = text.encode("utf-16-le")
    return [(e.type, encoded[e.offset * 2 : (e.offset + e.length) * 2].decode("utf-16-le")) for e in entities]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/suggest", [("bot_command", "/suggest")]),
        ("/suggest@wanderlens_bot please", [("bot_command", "/suggest@wanderlens_bot")]),
        ("🏝️ /more now", [("bot_command", "/more")]),
        ("ask @alice_travels or /like", [("mention", "@alice_travels"), ("bot_command", "/like")]),
        ("a/b mail@example.com @abc", []),
    ],
)
def test_user_text_entities(text: str, expected: list[tuple[str, str]]) -> None:
    assert spans(text, detect_entities(text)) == expected


def test_offsets_count_utf16_units() -> None:
    (entity,) = detect_entities("🏝️ /more")
    assert (entity.offset, entity.length) == (4, 5)  # 🏝 is 2 units, the variation selector 1, the space 1


@pytest.mark.parametrize(
    ("text", "mode", "plain", "expected"),
    [
        ("<b>Kyoto</b> &amp; <i>Nara</i>", "HTML", "Kyoto & Nara", [("bold", "Kyoto"), ("italic", "Nara")]),
        ('<a href="https://example.org">map</a>', "HTML", "map", [("text_link", "map")]),
        ("*Kyoto* \\- _Nara_", "MarkdownV2", "Kyoto - Nara", [("bold", "Kyoto"), ("italic", "Nara")]),
        ("`code` and *bold*", "Markdown", "code and bold", [("code", "code"), ("bold", "bold")]),
        ("Try /more", None, "Try /more", [("bot_command", "/more")]),
    ],
)
def test_parse_modes(text: str, mode: str | None, plain: str, expected: list[tuple[str, str]]) -> None:
    result, entities = format_text(text, mode)
    assert result == plain
    assert spans(result, entities) == expected


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        ("Tom & Jerry <3", "HTML", "unexpected '<'"),
        ("<br>", "HTML", 'Unsupported start tag "br"'),
        ("<b>open", "HTML", "Can't find end tag"),
        ("<b><i>x</b></i>", "HTML", "Unmatched end tag"),
        ("Lisbon, Portugal.", "MarkdownV2", "Character '.' is reserved"),
        ("*unclosed", "MarkdownV2", "Can't find end of Bold entity"),
        ("_unclosed", "Markdown", "Can't find end of the entity"),
    ],
)
def test_parse_errors_match_telegram(text: str, mode: str, message: str) -> None:
    with pytest.raises(FormattingError, match="can't parse entities") as info:
        format_text(text, mode)
    assert message in str(info.value)
