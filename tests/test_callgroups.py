"""Partial call groups merged in any split equal the api_call_group view over all the rows."""

from __future__ import annotations

import gzip
import json

import duckdb
import pytest

from imdshunt import api
from imdshunt.callgroups import KEY, MERGE_PARTIALS, PARTIAL_FROM_ROWS, event_hash
from imdshunt.detect import load_detections


def _fixture_files():
    out = []
    for det in load_detections().values():
        out += sorted(p for p in (det.folder / "tests").glob("*_*.json") if "expect" not in p.name)
    return out


def test_event_hash_is_duckdbs_md5_number_lower():
    con = duckdb.connect()
    for eid in ("3ab5e1c6-1c4f-4bb7-9e5f-0d4e4f7a5a11", "x", "ünïcode"):
        assert event_hash(eid) == con.execute("SELECT md5_number_lower(?)", [eid]).fetchall()[0][0]


def _own_event_ids(value, suffix: str):
    """The records with eventIDs made unique to their fixture: fixtures of different detections
    reuse a few ids for different calls, which real CloudTrail never does (one id, one event)."""
    if isinstance(value, dict):
        return {
            k: (
                f"{v}-{suffix}"
                if k == "eventID" and isinstance(v, str)
                else _own_event_ids(v, suffix)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_own_event_ids(v, suffix) for v in value]
    return value


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("ct")
    written = []
    for i, f in enumerate(_fixture_files()):
        try:
            doc = json.loads(f.read_text())
        except ValueError:
            continue  # JSON lines and concatenated EventBridge events: decoded elsewhere
        data = json.dumps(_own_event_ids(doc, str(i))).encode()
        (root / f.name).write_bytes(data)
        written.append((f.name, data))
    # a second delivery of every third file: duplicates the merge must count once
    for name, data in written[::3]:
        (root / ("again_" + name + ".gz")).write_bytes(gzip.compress(data))
    eng, stats = api.load_cloudtrail([root], workers=1)
    eng.create_views()
    assert eng.duplicate_records > 0
    return eng


def _rows(con, sql):
    return sorted(json.dumps(r, default=str) for r in engine_rows(con, sql))


@pytest.mark.parametrize("parts", [1, 2, 5])
def test_merged_partials_equal_the_view_whatever_the_split(engine, parts):
    con = engine.con
    # Split the raw delivered rows (duplicates included) by file into ``parts`` parts.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _raw AS SELECT *, hash(source_file) % ? AS part "
        "FROM api_activity_union",
        [parts],
    )
    partials = " UNION ALL ".join(
        "("
        + PARTIAL_FROM_ROWS.format(rows=f"(SELECT * EXCLUDE (part) FROM _raw WHERE part = {i})")
        + ")"
        for i in range(parts)
    )
    merged = MERGE_PARTIALS.format(partials=f"({partials})")
    cols = ", ".join(
        [*KEY, "call_count", "first_seen", "last_seen", "session_created", "event_ids"]
    )
    got = _rows(con, f"SELECT {cols} FROM ({merged})")
    want = _rows(con, f"SELECT {cols} FROM api_call_group")
    assert got == want
    again = MERGE_PARTIALS.format(partials=f"({merged})")
    assert _rows(con, f"SELECT * FROM ({again})") == _rows(con, f"SELECT * FROM ({merged})")


def engine_rows(con, sql):
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
