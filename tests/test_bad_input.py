"""The bad-input corpus: every file is either read correctly or skipped with its path and a
reason, never a traceback, and records read + records skipped = records present."""

from __future__ import annotations

import gzip
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imdshunt import api
from imdshunt.sources.cloudtrail import decode_records
from tests.test_cloudtrail_source import RANGES, _records

GOOD = _records()


def _hunt(path):
    return api.hunt([path], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)


def _gz(obj) -> bytes:
    return gzip.compress(json.dumps(obj).encode())


CORPUS = {
    # name: (bytes, expected records read, expected records skipped, file skip reason prefix)
    "truncated.json.gz": (_gz({"Records": GOOD})[:-30], 0, 0, "truncated gzip"),
    "garbage.json.gz": (b"\x1f\x8b\x08\x00" + bytes(range(200, 256)) * 2, 0, 0, None),
    "invalid-json.json.gz": (gzip.compress(b'{"Records": [{"eventTime": '), 0, 0, "invalid JSON"),
    "array-of-numbers.json": (b"[1, 2, 3]", 0, 0, "JSON that is not CloudTrail"),
    "insight.json": (
        json.dumps({"Records": [{"eventType": "AwsCloudTrailInsight"}]}).encode(),
        0,
        1,
        None,
    ),
    "config-snapshot.json": (
        json.dumps({"fileVersion": "1.0", "configurationItems": []}).encode(),
        0,
        0,
        "JSON that is not CloudTrail",
    ),
    "records-not-a-list.json": (b'{"Records": {"a": 1}}', 0, 0, "Records is not a list"),
    "no-user-identity.json": (
        json.dumps(
            {"Records": [{k: v for k, v in GOOD[0].items() if k != "userIdentity"}]}
        ).encode(),
        1,
        0,
        None,
    ),
    "no-event-time.json": (
        json.dumps({"Records": [{k: v for k, v in GOOD[0].items() if k != "eventTime"}]}).encode(),
        0,
        1,
        None,
    ),
    "no-source-ip.json": (
        json.dumps(
            {"Records": [{k: v for k, v in GOOD[0].items() if k != "sourceIPAddress"}]}
        ).encode(),
        1,
        0,
        None,
    ),
    "source-ip-not-an-address.json": (
        json.dumps({"Records": [dict(GOOD[0], sourceIPAddress="not/an-ip<script>")]}).encode(),
        1,
        0,
        None,
    ),
    "non-utf8.json": (
        b'{"Records": [{"eventTime": "2026-11-02T09:15:00Z", "userAgent": "\xff\xfe"}]}',
        0,
        0,
        "invalid JSON",
    ),
    "empty.json": (b"", 0, 0, "empty file"),
    "zero-byte.json.gz": (b"", 0, 0, "empty file"),
    "one-huge-record.json": (
        json.dumps(
            {"Records": [dict(GOOD[0], requestParameters={"blob": "A" * 20_000_000})]}
        ).encode(),
        1,
        0,
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_input_is_read_or_skipped_with_a_reason(tmp_path, name):
    data, read, skipped, reason = CORPUS[name]
    path = tmp_path / "AWSLogs" / "111122223333" / "CloudTrail" / "us-east-1" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    stats = _hunt(tmp_path).stats
    assert stats.records_read == read
    assert sum(stats.records_skipped.values()) == skipped
    assert stats.records_present == read + skipped
    if reason is not None:
        assert [s.reason.split(" (")[0] for s in stats.files_skipped] == [reason]
        assert stats.files_skipped[0].path == str(path)
    if read == 0 and skipped == 0:
        assert stats.files_skipped, "a file that yielded nothing must be named as skipped"


def test_a_200_mb_file_is_read_completely(tmp_path):
    rec = GOOD[1]
    n = 200_000_000 // len(json.dumps(dict(rec, eventID="big-0"))) + 1
    path = tmp_path / "big.json"
    with open(path, "w") as fh:
        fh.write('{"Records": [')
        for i in range(n):
            if i:
                fh.write(",")
            fh.write(json.dumps(dict(rec, eventID=f"big-{i}")))
        fh.write("]}")
    assert path.stat().st_size > 200_000_000
    result = _hunt(path)
    assert result.stats.records_read == n
    assert result.findings[0]["event_count"] == n


def test_broken_symlinks_are_named(tmp_path):
    (tmp_path / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    stats = _hunt(tmp_path).stats
    assert [s.reason for s in stats.files_skipped] == ["broken symlink"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_files_are_named(tmp_path):
    p = tmp_path / "secret.json"
    p.write_text(json.dumps({"Records": GOOD}))
    p.chmod(0)
    stats = _hunt(tmp_path).stats
    assert stats.files_skipped and "permission" in stats.files_skipped[0].reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decoder_never_raises_on_arbitrary_bytes(data):
    res = decode_records(data, "fuzz")
    assert res.stats.files_read + len(res.stats.files_skipped) == 1


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "eventTime",
                    "eventID",
                    "userIdentity",
                    "sourceIPAddress",
                    "eventName",
                    "requestParameters",
                    "responseElements",
                    "awsRegion",
                    "@timestamp",
                ]
            ),
            _json_values,
            max_size=6,
        ),
        max_size=5,
    )
)
def test_decoder_accounts_for_every_record_of_shaped_garbage(records):
    res = decode_records(json.dumps({"Records": records}).encode(), "fuzz")
    if res.stats.files_read:
        assert res.stats.records_present == len(records)
