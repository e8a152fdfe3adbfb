"""Which Commons licences are accepted: free ones in their many spellings, never NC/ND, non-free or unnamed."""

from __future__ import annotations

import pytest

from opendata.licences import judge, parse_flag


@pytest.mark.parametrize(
    ("short_name", "kind"),
    [
        ("CC BY-SA 4.0", "by-sa"),
        ("CC BY-SA 3.0", "by-sa"),
        ("CC-BY-SA-3.0-de", "by-sa"),
        ("CC BY-SA 2.5,2.0,1.0", "by-sa"),
        ("CC BY 2.0", "by"),
        ("CC BY 3.0 us", "by"),
        ("cc-by-4.0", "by"),
        ("CC0", "cc0"),
        ("CC0 1.0", "cc0"),
        ("Public domain", "public-domain"),
        ("PD-US", "public-domain"),
        ("Attribution", "by"),
    ],
)
def test_free_licences_are_accepted_with_their_duties(short_name: str, kind: str) -> None:
    verdict = judge(short_name)
    assert verdict.accepted, verdict.reason
    assert verdict.kind == kind
    assert verdict.needs_attribution == (kind in ("by", "by-sa"))
    assert verdict.share_alike == (kind == "by-sa")


@pytest.mark.parametrize(
    "short_name",
    ["Fair use", "CC BY-NC 2.0", "CC BY-NC-SA 4.0", "CC BY-ND 3.0", "CC-BY-NC-ND-4.0", "GFDL", "Copyrighted", ""],
)
def test_other_licences_are_refused(short_name: str) -> None:
    verdict = judge(short_name)
    assert not verdict.accepted
    assert verdict.reason


def test_the_non_free_flag_overrides_a_free_looking_name() -> None:
    verdict = judge("CC BY-SA 4.0", non_free=True)
    assert not verdict.accepted and "non-free" in verdict.reason


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("1", True), ("false", False), ("", False), (None, False)]
)
def test_non_free_flag_parsing(value: str | None, expected: bool) -> None:
    assert parse_flag(value) is expected
