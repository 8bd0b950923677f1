"""The state stores call groups compactly (event ids as 16-byte UUIDs where they are UUIDs) and
keeps no session token, and neither changes a finding."""

from __future__ import annotations

import duckdb

from imdshunt import api
from imdshunt.state import STATE_DB, hunt_incremental
from tests.binding_world import vend
from tests.test_cloudtrail_source import RANGES, _layout, _records

#: The fixture's three records are one on-box call and two stolen ones; the finding names the
#: stolen ones' event ids.
FIRST_IDS = (
    "3f9a0c1e-5b7d-4e2a-9c61-0d8e7f6a5b41",  # CloudTrail's form: stored as a UUID
    "7C2E4A10-9B3D-4F5E-8A6C-1D2E3F4A5B6C",  # a UUID in capitals: kept as written
    "not-a-uuid-event-0001",  # any other id: kept as text
)
SECOND_IDS = (
    "{a1b2c3d4-0000-4000-8000-000000000002}",  # a UUID in braces: kept as written
    "9e8d7c6b-5a49-4837-a625-140312f0e1d2",
    "not-a-uuid-event-0002",
)


def _batch(ids: tuple[str, ...]) -> list[dict]:
    return [dict(r, eventID=i) for r, i in zip(_records(), ids, strict=True)]


def _inc(logs, state):
    return hunt_incremental([logs], state, ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)


def _stored(state, sql: str) -> list[tuple]:
    con = duckdb.connect(str(state / STATE_DB), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_event_ids_of_any_form_come_back_from_the_state_exactly(tmp_path):
    logs, state = tmp_path / "logs", tmp_path / "state"
    _layout(logs, "a_CloudTrail_us-east-1_20261102T0915Z_0001.json.gz", _batch(FIRST_IDS))
    _inc(logs, state)
    _layout(logs, "a_CloudTrail_us-east-1_20261102T0915Z_0002.json.gz", _batch(SECOND_IDS))
    _inc(logs, state)
    # CloudTrail delivers at least once: the first file again, in a later run, counts once
    _layout(logs, "a_CloudTrail_us-east-1_20261102T0915Z_0003.json.gz", _batch(FIRST_IDS))
    last = _inc(logs, state)

    plain = api.hunt([logs], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    assert last.findings == plain.findings
    [finding] = last.findings
    stolen = {*FIRST_IDS[1:], *SECOND_IDS[1:]}
    assert stolen <= set(finding["event_ids"])
    assert finding["event_count"] == 4
    # the ids CloudTrail writes are 16 bytes each; the others are kept as text
    uuids = {str(u) for (us,) in _stored(state, "SELECT first_uuids FROM call_group") for u in us}
    texts = {t for (ts,) in _stored(state, "SELECT first_other_ids FROM call_group") for t in ts}
    assert uuids == {FIRST_IDS[0], SECOND_IDS[1]}
    assert texts == {FIRST_IDS[1], FIRST_IDS[2], SECOND_IDS[0], SECOND_IDS[2]}


def test_the_state_keeps_vending_events_but_not_their_session_tokens(tmp_path):
    logs, state = tmp_path / "logs", tmp_path / "state"
    token = "IQoJb3JpZ2luX2VjEXAMPLE"
    vending = vend("i-0123456789abcdef0", "ASIAEXAMPLEVENDED001", "2026-11-02T09:00:00Z")
    assert vending["responseElements"]["credentials"]["sessionToken"] == token
    records = [*_records(), vending]
    _layout(logs, "a_CloudTrail_us-east-1_20261102T0915Z_0001.json.gz", records)
    result = _inc(logs, state)

    plain = api.hunt([logs], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    assert result.findings == plain.findings
    rows = _stored(state, "SELECT resp_access_key_id, response_elements FROM vending")
    assert [r[0] for r in rows] == ["ASIAEXAMPLEVENDED001"]
    assert token not in rows[0][1]
    assert '"accessKeyId":"ASIAEXAMPLEVENDED001"' in rows[0][1].replace(" ", "")
