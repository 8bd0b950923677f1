"""Amazon Security Lake OCSF API Activity parquet maps onto api_activity like CloudTrail JSON.

The fixtures are the detections' own CloudTrail samples rewritten, by this test, in the OCSF 1.1
API Activity shape Security Lake writes for CloudTrail management events (see the mapping table
in :mod:`imdshunt.sources.securitylake`), so both sources must give the same findings.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from imdshunt import api
from imdshunt.detect import load_detections
from imdshunt.sources.discover import is_eventbridge_cloudtrail
from imdshunt.sources.securitylake import decode_parquet

HERE = Path(__file__).resolve().parent
RANGES = HERE / "data" / "ip-ranges.fixture.json"
ALLOWLIST = ["203.0.113.0/24"]


def _records(path: Path) -> list[dict]:
    doc = json.loads(path.read_text())
    if isinstance(doc, dict) and "Records" in doc:
        return doc["Records"]
    return doc if isinstance(doc, list) else [doc]


def _is_ip(v: str | None) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(v or "")
        return True
    except ValueError:
        return False


def ct_to_ocsf(r: dict) -> dict:
    """A CloudTrail record as Security Lake's OCSF 1.1 API Activity (class 6003)."""
    ui = r.get("userIdentity") or {}
    sc = ui.get("sessionContext") or {}
    src = r.get("sourceIPAddress")
    t = dt.datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00"))
    unmapped = {"eventType": r.get("eventType")}
    if sc.get("ec2RoleDelivery"):
        unmapped["userIdentity.sessionContext.ec2RoleDelivery"] = sc["ec2RoleDelivery"]
    if sc.get("sourceIdentity"):
        unmapped["userIdentity.sessionContext.sourceIdentity"] = sc["sourceIdentity"]
    if r.get("vpcEndpointAccountId"):
        unmapped["vpcEndpointAccountId"] = r["vpcEndpointAccountId"]
    return {
        "class_uid": 6003,
        "category_uid": 6,
        "activity_id": 99,
        "time": int(t.timestamp() * 1000),
        "metadata": {
            "uid": r.get("eventID"),
            "version": "1.1.0",
            "product": {"name": "CloudTrail"},
        },
        "cloud": {
            "provider": "AWS",
            "region": r.get("awsRegion"),
            "account": {"uid": r.get("recipientAccountId")},
        },
        "api": {
            "operation": r.get("eventName"),
            "service": {"name": r.get("eventSource")},
            "request": {
                "data": json.dumps(r["requestParameters"]) if r.get("requestParameters") else None
            },
            "response": {
                "error": r.get("errorCode"),
                "data": json.dumps(r["responseElements"]) if r.get("responseElements") else None,
            },
        },
        "actor": {
            "user": {
                "type": ui.get("type"),
                "uid": ui.get("arn"),
                "uid_alt": ui.get("principalId"),
                "credential_uid": ui.get("accessKeyId"),
                "account": {"uid": ui.get("accountId")},
            },
            "session": {
                "issuer": (sc.get("sessionIssuer") or {}).get("arn"),
                "created_time_dt": (sc.get("attributes") or {}).get("creationDate"),
            },
            "invoked_by": ui.get("invokedBy"),
            "idp": {"name": (sc.get("webIdFederationData") or {}).get("federatedProvider")},
        },
        "src_endpoint": {
            "ip": src if _is_ip(src) else None,
            "domain": None if _is_ip(src) else src,
            "uid": r.get("vpcEndpointId"),
        },
        "http_request": {"user_agent": r.get("userAgent")},
        "_unmapped": {k: v for k, v in unmapped.items() if v is not None},
    }


def write_ocsf(records: list[dict], path: Path) -> None:
    rows = [ct_to_ocsf(r) for r in records]
    unmapped = [list(r.pop("_unmapped").items()) for r in rows]
    table = pa.Table.from_struct_array(pa.array(rows))
    table = table.append_column("unmapped", pa.array(unmapped, pa.map_(pa.string(), pa.string())))
    pq.write_table(table, path)


def _fixture_records() -> list[dict]:
    out = []
    for det in load_detections().values():
        for p in sorted((det.folder / "tests").glob("*.json")):
            if p.name.startswith(("match_", "nomatch_")) and "expect" not in p.name:
                if is_eventbridge_cloudtrail(p.read_bytes()):
                    continue  # the same records as another fixture, wrapped for EventBridge
                out += _records(p)
    return out


def _hunt(paths):
    return api.hunt(paths, ip_ranges=RANGES, allowlist=ALLOWLIST, workers=1, fetch_ip_ranges=False)


def test_security_lake_parquet_gives_the_cloudtrail_findings(tmp_path):
    records = _fixture_records()
    (tmp_path / "ct").mkdir()
    (tmp_path / "ct" / "all.json").write_text(json.dumps({"Records": records}))
    (tmp_path / "sl").mkdir()
    write_ocsf(records, tmp_path / "sl" / "part-0.gz.parquet")
    ct = _hunt([tmp_path / "ct"])
    sl = _hunt([tmp_path / "sl"])
    assert ct.findings
    assert sl.stats.records_read == ct.stats.records_read
    assert sl.findings == ct.findings


def test_other_ocsf_classes_are_skipped_and_counted(tmp_path):
    records = _fixture_records()[:2]
    rows = [ct_to_ocsf(r) for r in records]
    for r in rows:
        r.pop("_unmapped")
    rows[1]["class_uid"] = 3002  # Authentication (ConsoleLogin), not API Activity
    f = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_struct_array(pa.array(rows)), f)
    res = decode_parquet(f, str(f))
    assert len(res.rows) == 1
    assert sum(res.stats.records_skipped.values()) == 1


def test_service_name_source_is_read_from_src_endpoint_domain(tmp_path):
    rec = {
        "eventTime": "2026-03-01T10:00:00Z",
        "eventID": "e-1",
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "ec2.amazonaws.com",
        "recipientAccountId": "111122223333",
        "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
        "requestParameters": {
            "roleArn": "arn:aws:iam::111122223333:role/r",
            "roleSessionName": "i-0a1b2c3d4e5f60718",
        },
        "responseElements": {"credentials": {"accessKeyId": "ASIAX", "expiration": "x"}},
    }
    f = tmp_path / "one.parquet"
    write_ocsf([rec], f)
    [row] = decode_parquet(f, str(f)).rows
    assert row[20] == "ec2.amazonaws.com"
    assert row[25:28] == ("arn:aws:iam::111122223333:role/r", "i-0a1b2c3d4e5f60718", "ASIAX")
