"""Reading CloudTrail as AWS delivers it, and accounting for everything that is not read."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from imdshunt import api
from imdshunt.sources.discover import RunStats

FIXTURE = (
    Path(__file__).resolve().parents[1] / "src/imdshunt/detections/"
    "ec2_instance_credential_outside_aws/tests/match_imdsv1_session_used_from_internet.json"
)
RANGES = Path(__file__).resolve().parent / "data" / "ip-ranges.fixture.json"


def _records():
    return json.loads(FIXTURE.read_text())["Records"]


def _layout(root: Path, name: str, records, *, digest=False) -> Path:
    kind = "CloudTrail-Digest" if digest else "CloudTrail"
    d = root / "AWSLogs" / "o-abc123" / "111122223333" / kind / "us-east-1" / "2026" / "11" / "02"
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    return p


def _hunt(paths):
    return api.hunt(paths, ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)


def test_s3_delivery_layout_with_org_prefix_is_read(tmp_path):
    _layout(tmp_path, "111122223333_CloudTrail_us-east-1_20261102T0915Z_abc.json.gz", _records())
    result = _hunt([tmp_path / "AWSLogs"])
    assert result.stats.files_read == 1 and result.stats.records_read == 3
    assert len(result.findings) == 1


def test_digest_files_are_skipped_on_purpose_and_counted(tmp_path):
    _layout(
        tmp_path,
        "111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20261102T0915Z.json.gz",
        [],
        digest=True,
    )
    _layout(tmp_path, "111122223333_CloudTrail_us-east-1_20261102T0915Z_abc.json.gz", _records())
    result = _hunt([tmp_path])
    assert [s.reason for s in result.stats.files_skipped] == ["CloudTrail digest file"]


def test_duplicate_deliveries_count_once(tmp_path):
    recs = _records()
    _layout(tmp_path, "a_CloudTrail_us-east-1_20261102T0915Z_a.json.gz", recs)
    _layout(tmp_path, "a_CloudTrail_us-east-1_20261102T0915Z_b.json.gz", recs)
    result = _hunt([tmp_path])
    assert result.stats.records_read == 6
    assert result.stats.duplicate_records == 3
    assert result.findings[0]["event_count"] == 2
    assert "3 duplicate deliveries counted once" in result.stats.summary()


def test_json_lines_with_logstash_timestamp_are_accepted(tmp_path):
    lines = []
    for r in _records():
        r["@timestamp"] = r.pop("eventTime").replace("Z", ".000Z")
        lines.append(json.dumps(r))
    p = tmp_path / "export.json"
    p.write_text("\n".join(lines) + "\n")
    result = _hunt([p])
    assert result.stats.records_read == 3
    assert result.findings[0]["first_seen"] == "2026-11-02T10:01:00Z"


def test_bare_json_array_is_accepted(tmp_path):
    p = tmp_path / "lake-export.json"
    p.write_text(json.dumps(_records()))
    assert _hunt([p]).stats.records_read == 3


def test_corrupt_and_truncated_files_are_reported_and_the_run_goes_on(tmp_path):
    good = _layout(tmp_path, "a_CloudTrail_us-east-1_20261102T0915Z_a.json.gz", _records())
    blob = good.read_bytes()
    (good.parent / "b_CloudTrail_us-east-1_20261102T0915Z_trunc.json.gz").write_bytes(blob[:-20])
    (good.parent / "c_CloudTrail_us-east-1_20261102T0915Z_badjson.json.gz").write_bytes(
        gzip.compress(b'{"Records": [{"eventTime": "2026-')
    )
    result = _hunt([tmp_path])
    assert result.stats.files_read == 1 and result.stats.records_read == 3
    reasons = sorted(s.reason.split(" (")[0] for s in result.stats.files_skipped)
    assert reasons == ["invalid JSON", "truncated gzip"], result.stats.files_skipped
    paths = {Path(s.path).name for s in result.stats.files_skipped}
    assert "b_CloudTrail_us-east-1_20261102T0915Z_trunc.json.gz" in paths


def test_records_with_wrong_types_or_no_time_are_skipped_and_counted(tmp_path):
    recs = _records()
    recs[0]["sourceIPAddress"] = {"not": "a string"}
    del recs[1]["eventTime"]
    p = tmp_path / "mixed.json"
    p.write_text(json.dumps({"Records": recs + ["not an object"]}))
    stats = _hunt([p]).stats
    assert stats.records_read == 1
    assert stats.records_skipped == {
        "record field has an unexpected type": 1,
        "record without eventTime": 1,
        "record is not an object": 1,
    }
    assert stats.records_present == 4


def test_records_that_is_not_a_list_and_non_cloudtrail_json_are_named(tmp_path):
    (tmp_path / "a.json").write_text('{"Records": 5}')
    (tmp_path / "b.json").write_text('{"configurationItems": []}')
    (tmp_path / "c.json").write_text("")
    stats = _hunt([tmp_path]).stats
    assert sorted(s.reason for s in stats.files_skipped) == [
        "JSON that is not CloudTrail",
        "Records is not a list",
        "empty file",
    ]


def test_symlink_loops_are_walked_once(tmp_path):
    _layout(tmp_path, "a_CloudTrail_us-east-1_20261102T0915Z_a.json.gz", _records())
    (tmp_path / "AWSLogs" / "loop").symlink_to(tmp_path / "AWSLogs")
    result = _hunt([tmp_path])
    assert result.stats.records_read == 3
    assert any("symlink loop" in s.reason for s in result.stats.files_skipped)


def test_parallel_decoding_gives_the_same_result(tmp_path):
    recs = _records()
    for i in range(40):
        batch = [dict(r, eventID=f"{r['eventID'][:-3]}{i:03d}") for r in recs]
        _layout(tmp_path, f"a_CloudTrail_us-east-1_20261102T0915Z_{i:03d}.json.gz", batch)
    one = api.hunt([tmp_path], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    two = api.hunt([tmp_path], ip_ranges=RANGES, workers=2, fetch_ip_ranges=False)
    assert one.findings == two.findings
    assert one.stats.records_read == two.stats.records_read == 120


def test_run_stats_summary_counts_everything():
    s = RunStats(files_read=2, records_read=10)
    s.skip_file("x", "empty file")
    s.skip_records("record without eventTime", 2)
    assert s.records_present == 12
    assert "1 files skipped (1 empty file)" in s.summary()


# ------------------------------------------------------------------ through Amazon EventBridge


def _eventbridge(record: dict, detail_type: str = "AWS API Call via CloudTrail") -> dict:
    """A CloudTrail record as an EventBridge rule delivers it (events-structure reference)."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": "aws." + str(record.get("eventSource", "x")).split(".")[0],
        "account": "111122223333",
        "time": record.get("eventTime"),
        "region": "us-east-1",
        "resources": [],
        "detail": record,
    }


def test_eventbridge_events_one_per_line_are_read(tmp_path):
    p = tmp_path / "events.jsonl"
    p.write_text("".join(json.dumps(_eventbridge(r)) + "\n" for r in _records()))
    result = _hunt([p])
    assert not result.stats.files_skipped
    assert result.stats.records_read == 3
    [f] = result.findings
    assert f["detection"] == "ec2_instance_credential_outside_aws" and f["event_count"] == 2


def test_firehose_concatenated_eventbridge_events_are_read(tmp_path):
    """Kinesis Data Firehose writes records to S3 back to back, with no separator."""
    recs = _records()
    # a string holding "}{" must not be taken for the gap between two events
    recs[1]["requestParameters"] = {"policy": '{"a": {}}{"b": 1}'}
    recs[0].pop("recipientAccountId", None)  # filled from the event's account
    events = [_eventbridge(r) for r in recs]
    events.insert(1, {"detail-type": "EC2 Instance State-change Notification", "detail": {}})
    events.append(_eventbridge(recs[1], "AWS Insight via CloudTrail"))
    d = tmp_path / "2026" / "11" / "02" / "10"
    d.mkdir(parents=True)
    p = d / "ct-to-s3-1-2026-11-02-10-00-00-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9.gz"
    p.write_bytes(gzip.compress("".join(json.dumps(e) for e in events).encode()))
    result = _hunt([tmp_path])
    assert not result.stats.files_skipped
    assert result.stats.records_read == 3
    assert result.stats.records_skipped == {
        "EventBridge event that is not CloudTrail": 1,
        "CloudTrail Insights event": 1,
    }
    [f] = result.findings
    assert f["account_id"] == "111122223333" and f["event_count"] == 2


def test_discovery_claims_eventbridge_files_by_content():
    from imdshunt.sources.discover import CLOUDTRAIL, classify_file, is_eventbridge_cloudtrail

    head = json.dumps(_eventbridge(_records()[0])).encode()
    assert classify_file(Path("firehose-output"), head=head) == (CLOUDTRAIL, None)
    # the words inside a string (an event pattern in events:PutRule) are not the key
    rule = dict(_records()[0], requestParameters={"eventPattern": json.dumps(_eventbridge({}))})
    assert is_eventbridge_cloudtrail(json.dumps({"Records": [rule]}).encode()) is False
    assert is_eventbridge_cloudtrail(json.dumps(rule).encode()) is False
