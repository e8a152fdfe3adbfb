"""The contract's codec: every request and outcome survives the round trip; anything else is refused by name."""

from __future__ import annotations

import dataclasses
import json

import pytest

from contract import codec
from contract import messages as m

ITEM = m.Item("bled", "Lake Bled", "Bled", "Slovenia", 0.87, "photos/bled.jpg", "ab12", "Jane Doe", "CC BY 4.0")
REQUESTS = [
    m.Recommend(5, file_unique_id="AgAD123"),
    m.More(7),
    m.Like("p1", 3, user_name="Alice"),
    m.LikeNumber(12, user_name="Bob"),
    m.Likes(),
    m.GroupSuggest(4, region="Europe"),
    m.Forget(),
    m.Recommend(3, near=m.Location(41.9, 12.5), region="within 300 km"),
    m.Locate("p1", 2),
    m.CheckRegion("Italy", near=None),
]
OUTCOMES = [
    (m.JobKind.RECOMMEND, m.Album((ITEM,), "pg", 1, 45, hints=("lakeside",))),
    (m.JobKind.GROUP_SUGGEST, m.Album((ITEM,), "pg", 1, 0, group=True, members=("Alice", "Bob"))),
    (m.JobKind.LIKE, m.Liked(ITEM, 3)),
    (m.JobKind.LIKES, m.LikedPlaces((ITEM, ITEM), 2)),
    (m.JobKind.FORGET, m.Forgotten(4)),
    (m.JobKind.RECOMMEND, m.Failure(m.ErrorCode.BAD_IMAGE, m.ImageRejection("too_small", min_side=16))),
    (m.JobKind.MORE, m.Failure(m.ErrorCode.NOTHING_LEFT)),
    (m.JobKind.LOCATE, m.Located(ITEM)),
    (m.JobKind.CHECK_REGION, m.RegionFound("Italy", 12)),
    (m.JobKind.RECOMMEND, m.Album((ITEM,), "pg", 6, 0, region="Italy", near=True)),
]


def job(request: m.Request) -> m.Job:
    return m.Job.new(request, chat_id=-100, user_id=7, reply_to="bot-1", timeout=30)


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_every_request_round_trips(request_: m.Request) -> None:
    sent = job(request_)
    fields = codec.job_fields(sent)
    assert all(isinstance(v, str) for v in fields.values())
    received = codec.job_from_fields({k.encode(): v.encode() for k, v in fields.items()})  # as redis-py returns it
    assert received == sent
    assert received.kind == m.KIND_OF[type(request_)]


@pytest.mark.parametrize(("kind", "outcome"), OUTCOMES, ids=lambda o: type(o).__name__)
def test_every_outcome_round_trips(kind: m.JobKind, outcome: m.Outcome) -> None:
    reply = m.Reply("job-1", kind, outcome)
    assert codec.reply_from_json(codec.reply_json(reply).encode()) == reply


def test_the_json_written_is_what_dataclasses_asdict_gives() -> None:
    # codec writes messages with its own (faster) converter: the wire format must not move by a byte.
    rich = m.Item(
        "x", "X", "C", "Y", 0.5, "x.jpg", "h", fits=("Al", "Bo"), lat=1.5, lon=-2.0, names=(m.LocalName("de", "Ix"),)
    )
    outcomes = [outcome for _, outcome in OUTCOMES] + [m.Album((rich, ITEM), "pg", 1, 3), m.Liked(rich, 1)]
    for outcome in outcomes:
        written = json.loads(codec.reply_json(m.Reply("job-1", m.JobKind.RECOMMEND, outcome)))["outcome"]
        assert written == {"type": written["type"], **json.loads(json.dumps(dataclasses.asdict(outcome)))}
    for request in REQUESTS:
        written = codec.job_fields(job(request))["body"]
        assert written == json.dumps(dataclasses.asdict(request), separators=(",", ":"), ensure_ascii=False)


def test_every_kind_has_a_request_and_outcomes() -> None:
    assert set(m.REQUEST_OF) == set(m.JobKind) == set(m.OUTCOMES)


def _fields(**changes: str) -> dict[str, str]:
    fields = codec.job_fields(job(m.More(5)))
    fields.update(changes)
    return {k: v for k, v in fields.items() if v != "<drop>"}


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        (_fields(v="1"), "unsupported job schema"),
        (_fields(kind="unlike"), "unknown job kind"),
        (_fields(chat="<drop>"), "lacks field(s) chat"),
        (_fields(chat="12a"), "job envelope"),
        (_fields(body="{not json"), "not JSON"),
        (_fields(body="[1, 2]"), "must be a JSON object"),
        (_fields(body='{"k": "5"}'), "body.k must be an integer"),
        (_fields(body='{"k": true}'), "body.k must be an integer"),
        (_fields(body='{"k": 5, "strategy": "mean"}'), "unknown field(s) strategy"),
        (_fields(kind="like", body='{"page_id": "p"}'), "body.position is missing"),
        (_fields(body='{"k": 5, "pad": "' + "x" * 5000 + '"}'), "over 4096 bytes"),
        (_fields(id=""), "must not be empty"),
    ],
)
def test_malformed_jobs_are_refused_with_the_reason(fields: dict[str, str], complaint: str) -> None:
    with pytest.raises(codec.ProtocolError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        codec.job_from_fields(fields)


def _reply(**changes: object) -> str:
    data = json.loads(codec.reply_json(m.Reply("job-1", m.JobKind.LIKE, m.Liked(ITEM, 3))))
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("not json", "not JSON"),
        (_reply(v=1), "unsupported reply schema"),
        (_reply(kind="unlike"), "unknown reply kind"),
        (_reply(job_id=""), "job_id must be a non-empty string"),
        (_reply(outcome={"type": "album", "items": []}), "cannot have the outcome"),
        (_reply(outcome={"type": "party"}), "unknown outcome"),
        (_reply(outcome={"type": "liked", "item": {"id": "x"}, "total": 1}), "outcome.item.name is missing"),
        (_reply(outcome={"type": "liked", "item": None, "total": 1}), "outcome.item must be an object"),
        (_reply(outcome={"type": "failure", "code": "on_fire"}), "unknown value"),
    ],
)
def test_malformed_replies_are_refused_with_the_reason(raw: str, complaint: str) -> None:
    with pytest.raises(codec.ProtocolError, match=complaint):
        codec.reply_from_json(raw)


def test_a_stored_location_round_trips_and_is_checked() -> None:
    assert codec.location_from_json(codec.location_json(m.Location(-33.9, 151.2))) == m.Location(-33.9, 151.2)
    with pytest.raises(codec.ProtocolError, match=r"location\.lat must be a number"):
        codec.location_from_json('{"lat": "north", "lon": 1}')


def test_a_failure_fits_every_kind_and_an_outcome_only_its_own() -> None:
    for kind in m.JobKind:
        failure = m.Reply("j", kind, m.Failure(m.ErrorCode.FAILED))
        assert codec.reply_from_json(codec.reply_json(failure)) == failure
    with pytest.raises(codec.ProtocolError):
        codec.reply_from_json(codec.reply_json(m.Reply("j", m.JobKind.FORGET, m.Liked(ITEM, 1))))
