"""`wanderlens catalog build` as an operator runs it: flags, the summary it prints, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendata.cli import CONTACT_ENV
from recommender.catalog import load_catalog
from tests.opendata.standin import StandIn
from wanderlens.cli import main


def build_args(standin: StandIn, out: Path, *extra: str) -> list[str]:
    return [
        "catalog",
        "build",
        "--out",
        str(out),
        "--width",
        "500",
        "--no-progress",
        "--pace",
        "0",
        "--endpoint-sparql",
        standin.sparql_url,
        "--endpoint-commons",
        standin.commons_url,
        *extra,
    ]


def test_build_from_the_command_line(standin: StandIn, tmp_path: Path, capsys) -> None:
    out = tmp_path / "catalog"
    code = main(build_args(standin, out, "--contact", "ops@example.org", "--limit", "4", "--languages", "fr,en"))
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "4 destinations written" in printed and f"wanderlens index {out}" in printed
    assert [d.name for d in load_catalog(out).destinations] == [
        "Colisée",
        "Lac de Bled",
        "Mont-Saint-Michel",
        "Alhambra",
    ]
    assert all("(ops@example.org)" in r.user_agent for r in standin.seen)


def test_the_contact_can_come_from_the_environment(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONTACT_ENV, "https://example.org/ops")
    assert main(build_args(standin, tmp_path / "c", "--limit", "1")) == 0
    assert "(https://example.org/ops)" in standin.seen[0].user_agent


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), "a contact (email address or URL) is needed"),
        (("--contact", "x@example.org", "--country", "Italia"), "country must be an ISO code"),
        (("--contact", "x@example.org", "--limit", "0"), "limit must be between"),
    ],
)
def test_bad_flags_fail_with_one_line_before_any_request(
    standin: StandIn, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...], expected: str
) -> None:
    monkeypatch.delenv(CONTACT_ENV, raising=False)
    code = main(build_args(standin, tmp_path / "c", *extra))
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("wanderlens: error:") and expected in error and "Traceback" not in error
    assert standin.seen == []


def test_a_service_that_refuses_is_one_clear_line(standin: StandIn, tmp_path: Path, capsys) -> None:
    args = build_args(standin, tmp_path / "c", "--contact", "x@example.org")
    args[args.index("--endpoint-sparql") + 1] = f"{standin.base}/no-such-endpoint"
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "wanderlens: error:" in error and "HTTP 404" in error and len(error.strip().splitlines()) == 1
