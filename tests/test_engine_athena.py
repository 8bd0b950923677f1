"""Athena's API flow against a moto server: the calls, the DDL, the window, the results.

moto does not run SQL: it answers each query, in start order, from a queue of canned results
(``/moto-api/static/athena/query-results``). The test queues one answer per query the flow
starts, in the order the flow starts them, and asserts what was sent.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import boto3
import pytest

from imdshunt import api
from imdshunt.detect import load_detections
from imdshunt.engine.athena import AthenaEngine
from imdshunt.engine.duckdb import view_files
from imdshunt.engine.portable import parse_statements
from imdshunt.errors import UsageError
from imdshunt.schema import REFERENCE_TABLES
from tests.conftest import moto_route_gap

#: The calls the engine makes; a botocore whose Athena protocol moto cannot route skips with why.
ATHENA_CALLS = ["StartQueryExecution", "GetQueryExecution", "GetQueryResults", "StopQueryExecution"]
_GAP = moto_route_gap("athena", ATHENA_CALLS)
pytestmark = [pytest.mark.moto, pytest.mark.skipif(_GAP is not None, reason=str(_GAP))]

HERE = Path(__file__).resolve().parent
RANGES = HERE / "data" / "ip-ranges.fixture.json"
DET = "ec2_instance_credential_outside_aws"
TRAIL = "s3://org-trail/AWSLogs/o-abcde12345/"
OUTPUT = "s3://athena-results/imdshunt/"


def _result(columns: list[tuple[str, str]], rows: list[list[str | None]]) -> dict:
    def row(values):
        return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}

    return {
        "rows": [row([c for c, _ in columns])] + [row(r) for r in rows],
        "column_info": [
            {"Name": c, "Label": c, "Type": t, "Nullable": "UNKNOWN"} for c, t in columns
        ],
    }


EMPTY = {"rows": [], "column_info": []}
FINDING_COLUMNS = [
    ("account_id", "varchar"),
    ("role", "varchar"),
    ("role_arn", "varchar"),
    ("credential_type", "varchar"),
    ("credential_id", "varchar"),
    ("source_ip", "varchar"),
    ("network", "varchar"),
    ("vpc_endpoint_id", "varchar"),
    ("vpc_endpoint_account_id", "varchar"),
    ("access_key_ids", "varchar"),
    ("event_count", "bigint"),
    ("distinct_actions", "bigint"),
    ("actions", "varchar"),
    ("first_seen", "timestamp(3) with time zone"),
    ("last_seen", "timestamp(3) with time zone"),
    ("user_agents", "varchar"),
    ("regions", "varchar"),
    ("key_issued_at", "timestamp(3) with time zone"),
    ("role_deliveries", "varchar"),
    ("reasons", "varchar"),
    ("event_ids", "varchar"),
]
FINDING_ROW = [
    "111122223333",
    "web-app-role",
    "arn:aws:iam::111122223333:role/web-app-role",
    "ec2-instance",
    "i-0a1b2c3d4e5f60718",
    "198.199.65.17",
    "internet",
    None,
    None,
    '["ASIA5FLZVX4OPVKKAAAA"]',
    "2",
    "2",
    '["s3:ListBuckets","sts:GetCallerIdentity"]',
    "2026-03-01 10:00:00.000 UTC",
    "2026-03-01 10:05:00.000 UTC",
    '["aws-cli/2.15.0, with a comma"]',
    '["us-east-1"]',
    None,
    '["2.0"]',
    '["EC2 instance credential of i-0a1b2c3d4e5f60718 was used, from 198.199.65.17","x"]',
    '["e1","e2"]',
]


def _queue(moto_url: str, results: list[dict]) -> None:
    body = json.dumps({"region": "us-east-1", "results": results}).encode()
    req = urllib.request.Request(
        f"{moto_url}/moto-api/static/athena/query-results",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 201


def _expected_queue(ips: list[str]) -> list[dict]:
    """One canned answer per query, in the order hunt_in_place starts them."""
    n_views = sum(len(parse_statements(p.read_text())) for p in view_files())
    q = [EMPTY] * 5  # database, table, api_activity view, DROP + CREATE empty ip_class
    q += [EMPTY] * 2 * len(REFERENCE_TABLES)  # DROP + CREATE inventory_address, ...
    q += [EMPTY] * n_views
    q.append(_result([("src_ip", "varchar")], [[ip] for ip in ips]))
    q += [EMPTY] * 2  # DROP + CREATE classified ip_class
    q.append(_result([("_col0", "boolean")], [["true"]]))  # api_activity has rows
    for det in load_detections().values():
        if det.kind != "credential" or det.requires:
            continue
        q.append(_result(FINDING_COLUMNS, [FINDING_ROW]) if det.id == DET else EMPTY)
    # lineage (imdshunt.lineage): the theft minted nothing in the window
    q.append(_result([("_col0", "boolean")], [["false"]]))
    q.append(_result([("events", "bigint"), ("sessions", "bigint")], [["7", "3"]]))
    return q


@pytest.fixture()
def buckets(aws_env):
    s3 = boto3.client("s3")
    for b in ("org-trail", "athena-results"):
        try:
            s3.create_bucket(Bucket=b)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    return aws_env


def test_hunt_on_athena_runs_in_place_restricted_to_the_window(buckets):
    moto_url = buckets
    ips = ["198.199.65.17", "203.0.113.9", "ec2.amazonaws.com"]
    _queue(moto_url, _expected_queue(ips))
    engine = AthenaEngine(trail=TRAIL, output=OUTPUT, session=boto3.Session(), poll_seconds=0.05)
    result = api.hunt(
        [TRAIL],
        engine=engine,
        ip_ranges=RANGES,
        allowlist=["203.0.113.0/24"],
        fetch_ip_ranges=False,
        since="2026-03-01",
        until="2026-03-02",
        accounts=["111122223333"],
        regions=["us-east-1"],
    )
    sent = [q.sql for q in engine.history]
    # Every call reached the server.
    athena = boto3.client("athena")
    assert len(athena.list_query_executions()["QueryExecutionIds"]) >= len(sent)
    # The DDL: projected table over the org layout.
    ddl = sent[1]
    assert ddl.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS cloudtrail")
    assert f"LOCATION '{TRAIL}'" in ddl
    assert "${account}/CloudTrail/${region}/${day}" in ddl
    # The window: the canonical view filters on the partition columns ...
    view = sent[2]
    assert view.startswith("CREATE OR REPLACE VIEW api_activity")
    assert "day BETWEEN '2026/03/01' AND '2026/03/02'" in view
    assert "account IN ('111122223333')" in view and "region IN ('us-east-1')" in view
    # ... and nothing else reads the raw table.
    for sql in sent[3:]:
        assert "FROM cloudtrail" not in sql
    # Address classes were computed once here and uploaded as a table.
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="athena-results")["Contents"]]
    data_keys = [k for k in keys if "imdshunt-tables/ip_class/" in k]
    uploaded = b"".join(
        s3.get_object(Bucket="athena-results", Key=k)["Body"].read() for k in data_keys
    )
    rows = [json.loads(line) for line in uploaded.splitlines()]
    assert {r["src_ip"]: r["network"] for r in rows} == {
        "198.199.65.17": "internet",
        "203.0.113.9": "allowlisted",
        "ec2.amazonaws.com": "aws-service",
    }
    # Results paged and typed; arrays came back as JSON text and were decoded.
    [f] = [f for f in result.findings if f["detection"] == DET]
    assert f["event_count"] == 2
    assert f["access_key_ids"] == ["ASIA5FLZVX4OPVKKAAAA"]
    assert f["user_agents"] == ["aws-cli/2.15.0, with a comma"]
    assert f["first_seen"] == "2026-03-01T10:00:00Z"
    assert f["severity"] == "high"
    assert result.naive == {"events": 7, "sessions": 3}
    # Costs are reported (moto scans nothing).
    assert engine.bytes_scanned == 0 and "queries" in engine.cost_summary()
    # Detections ran as Trino with array columns as JSON.
    det_sql = next(q.sql for q in engine.history if q.label == DET)
    assert "JSON_FORMAT(CAST(" in det_sql and "FROM credential_activity" in det_sql


def test_athena_refuses_an_unbounded_window(buckets):
    engine = AthenaEngine(trail=TRAIL, output=OUTPUT, session=boto3.Session())
    with pytest.raises(UsageError):
        api.hunt([TRAIL], engine=engine, ip_ranges=RANGES, fetch_ip_ranges=False)
    assert engine.history == []  # refused before any query started


def test_athena_cost_is_five_dollars_per_tb_with_a_10mb_minimum():
    from imdshunt.engine.athena import QueryRecord

    e = AthenaEngine(trail=TRAIL, output=OUTPUT)
    e.history = [
        QueryRecord("SELECT 1", "a", "SUCCEEDED", 1024**4, "x"),
        QueryRecord("SELECT 2", "b", "SUCCEEDED", 1, "y"),
        QueryRecord("CREATE VIEW v AS SELECT 1", "c", "SUCCEEDED", 0, "z"),
    ]
    assert e.cost_usd == pytest.approx(5.0 + 5.0 * 10 * 1024**2 / 1024**4)


SESSION_CALL_COLUMNS = [
    ("finding_id", "varchar"),
    ("event_time", "timestamp(3) with time zone"),
    ("src_ip", "varchar"),
    ("network", "varchar"),
    ("network_kind", "varchar"),
    ("action", "varchar"),
    ("error_code", "varchar"),
    ("access_key_id", "varchar"),
    ("session_call_count", "bigint"),
]


def test_the_reports_session_calls_run_on_athena_with_the_keys_inlined(buckets):
    """Athena cannot register the report's keys as a table: they are a VALUES list, a bounded
    number per query, quoted as SQL literals; the rows come back typed like DuckDB's."""
    from imdshunt.report import credential_timelines

    findings = [
        {"finding_id": f"f{i}", "kind": "credential", "account_id": "111122223333",
         "role": "it's-a-role", "credential_id": f"i-0a1b2c3d4e5f6071{i}",
         "source_ip": "198.199.65.17"}
        for i in range(3)
    ]  # fmt: skip
    _queue(
        buckets,
        [
            _result(
                SESSION_CALL_COLUMNS,
                [
                    [
                        f"f{i}",
                        "2026-03-01 10:00:00.000 UTC",
                        "198.199.65.17",
                        "internet",
                        "internet",
                        "s3:ListBuckets",
                        None,
                        "ASIA5FLZVX4OPVKKAAAA",
                        "1",
                    ]
                ],
            )  # fmt: skip
            for i in range(2)
        ],
    )
    engine = AthenaEngine(trail=TRAIL, output=OUTPUT, session=boto3.Session(), poll_seconds=0.05)
    engine._views_ready = True  # the hunt made them
    engine._tables.add("api_activity")
    engine.SESSION_KEYS_PER_QUERY = 2
    timelines = credential_timelines(engine, findings)
    sent = [q.sql for q in engine.history]
    assert len(sent) == 2  # 3 keys, 2 a query
    assert "('f0', '111122223333', 'it''s-a-role', 'i-0a1b2c3d4e5f60710'" in sent[0]
    assert "'f2'" in sent[1] and "'f0'" not in sent[1]
    assert all("session_keys" not in s and "JOIN (VALUES" in s for s in sent)
    assert sorted(timelines) == ["f0", "f1"]
    [call] = timelines["f0"]
    assert call["event_time"].isoformat() == "2026-03-01T10:00:00+00:00"
    assert call["session_call_count"] == 1 and call["this_finding"] and not call["on_box"]


def test_the_imdsv1_backlog_runs_on_athena_as_trino(buckets):
    from imdshunt.exposure import exposure_backlog

    _queue(buckets, [EMPTY])
    engine = AthenaEngine(trail=TRAIL, output=OUTPUT, session=boto3.Session(), poll_seconds=0.05)
    engine._views_ready = True
    engine._tables.add("api_activity")
    assert exposure_backlog(engine) == []
    [q] = engine.history
    assert q.label == "IMDSv1 backlog"
    assert "REGEXP_LIKE(session_name" in q.sql
    flat = " ".join(q.sql.split())
    for column in ("delivery_versions", "regions", "v1_source_ips", "actions_succeeded"):
        # arrays come back as JSON text, decoded into lists
        assert re.search(rf"JSON_FORMAT\( CAST\(.*?AS JSON\) \) AS {column}\b", flat), column
