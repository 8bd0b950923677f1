"""Athena's API flow against a moto server: the calls, the DDL, the window, the results.

moto does not run SQL: it answers each query, in start order, from a queue of canned results
(``/moto-api/static/athena/query-results``). The test queues one answer per query the flow
starts, in the order the flow starts them, and asserts what was sent.
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.request
from pathlib import Path

import boto3
import pytest
import sqlglot
import sqlglot.expressions as exp

from imdshunt import api
from imdshunt.detect import load_detections
from imdshunt.engine.athena import AthenaEngine
from imdshunt.engine.duckdb import view_files
from imdshunt.engine.portable import parse_statements
from imdshunt.errors import EngineError, UsageError
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
    """One canned answer per query, in the order a hunt on Athena starts them."""
    n_views = sum(len(parse_statements(p.read_text())) for p in view_files())
    q = [EMPTY] * 4  # database, table, api_activity view, CREATE empty ip_class
    q += [EMPTY] * len(REFERENCE_TABLES)  # CREATE inventory_address, ...
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


def _objects_named(sql: str) -> set[str]:
    """Every table or view a statement names, found by parsing it (CTE names and the
    database of a CREATE DATABASE are no objects of a run)."""
    tree = sqlglot.parse_one(sql, read="athena")
    if isinstance(tree, exp.Create) and str(tree.args.get("kind")).upper() == "DATABASE":
        return set()
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name not in ctes}


def _statement_target(sql: str) -> tuple[str, str] | None:
    """(CREATE or DROP, object) of a DDL statement on a table or view, else None."""
    tree = sqlglot.parse_one(sql, read="athena")
    if not isinstance(tree, exp.Create | exp.Drop):
        return None
    if str(tree.args.get("kind")).upper() not in ("TABLE", "VIEW"):
        return None
    return ("CREATE" if isinstance(tree, exp.Create) else "DROP", tree.find(exp.Table).name)


def _uploads(engine: AthenaEngine) -> list[str]:
    bucket, prefix = engine.uploads_prefix.removeprefix("s3://").split("/", 1)
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


def _hunt(engine: AthenaEngine, **kw):
    return api.hunt(
        [TRAIL],
        engine=engine,
        ip_ranges=RANGES,
        fetch_ip_ranges=False,
        since="2026-03-01",
        until="2026-03-02",
        **kw,
    )


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
    with engine:
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
        uploaded = {  # read before the engine is closed: closing deletes them
            k: boto3.client("s3").get_object(Bucket="athena-results", Key=k)["Body"].read()
            for k in _uploads(engine)
        }
    sent = [q.sql for q in engine.history]
    # Every call reached the server.
    athena = boto3.client("athena")
    assert len(athena.list_query_executions()["QueryExecutionIds"]) >= len(sent)
    # The DDL: projected table over the org layout.
    ddl = sent[1]
    assert ddl.startswith(f"CREATE EXTERNAL TABLE IF NOT EXISTS {engine.prefix}cloudtrail")
    assert f"LOCATION '{TRAIL}'" in ddl
    assert "${account}/CloudTrail/${region}/${day}" in ddl
    # The window: the canonical view filters on the partition columns ...
    view = sent[2]
    assert view.startswith(f"CREATE OR REPLACE VIEW {engine.prefix}api_activity")
    assert "day BETWEEN '2026/03/01' AND '2026/03/02'" in view
    assert "account IN ('111122223333')" in view and "region IN ('us-east-1')" in view
    # ... and nothing else reads the raw table.
    for sql in sent[3:]:
        if not sql.startswith("DROP "):  # closing the engine drops the table
            assert f"{engine.prefix}cloudtrail" not in _objects_named(sql)
    # Address classes were computed once here and uploaded as a table.
    ip_class = b"".join(
        data for k, data in uploaded.items() if f"imdshunt-tables/{engine.run_id}/ip_class/" in k
    )
    rows = [json.loads(line) for line in ip_class.splitlines()]
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
    assert "JSON_FORMAT(CAST(" in det_sql
    assert f"FROM {engine.prefix}credential_activity AS credential_activity" in det_sql


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
    from imdshunt.findings import Finding
    from imdshunt.report import credential_timelines

    findings = [
        Finding({"finding_id": f"f{i}", "kind": "credential", "account_id": "111122223333",
                 "role": "it's-a-role", "credential_id": f"i-0a1b2c3d4e5f6071{i}",
                 "source_ip": "198.199.65.17"})
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


def test_every_statement_of_a_run_names_only_that_runs_objects_and_close_drops_them(buckets):
    """Athena has no per-run schema: a run's tables and views carry its id, every statement
    it sends (views, detections, the naive rule, the report's queries) reads only those, and
    closing the engine drops each of them and deletes the run's uploads."""
    _queue(buckets, _expected_queue(["198.199.65.17"]))
    engine = AthenaEngine(trail=TRAIL, output=OUTPUT, session=boto3.Session(), poll_seconds=0.05)
    with engine:
        result = _hunt(engine, accounts=["111122223333"])
        assert any(f["detection"] == DET for f in result.findings)
        assert _uploads(engine)  # ip_class and the inventory tables, under the run's folder
        during = len(engine.history)
    assert engine.run_id in engine.prefix
    named = set()
    for q in engine.history:
        names = _objects_named(q.sql)
        assert all(n.startswith(engine.prefix) for n in names), (q.label, names)
        named |= names
    # What the run created, it dropped on close, and nothing else.
    targets = [_statement_target(q.sql) for q in engine.history]
    created = {name for t in targets[:during] if t and t[0] == "CREATE" for name in [t[1]]}
    dropped_at_close = {t[1] for t in targets[during:] if t}
    assert {f"{engine.prefix}cloudtrail", f"{engine.prefix}api_activity"} <= created
    assert f"{engine.prefix}credential_activity" in created and created <= named
    assert dropped_at_close == created
    assert all(q.sql.startswith("DROP ") for q in engine.history[during:])
    # Views are dropped before the tables they read.
    order = [t[1] for t in targets[during:]]
    assert order.index(f"{engine.prefix}credential_activity") < order.index(
        f"{engine.prefix}ip_class"
    )
    assert order[-1] == f"{engine.prefix}cloudtrail"
    assert _uploads(engine) == []


def test_two_runs_in_one_database_never_name_the_same_object(buckets):
    """A scheduled hunt and an analyst's, in one database: each run's statements read only
    its own objects, and closing one drops nothing of the other's."""
    runs = []
    for accounts in (["111122223333"], ["444455556666"]):
        _queue(buckets, _expected_queue(["198.199.65.17"]))
        engine = AthenaEngine(
            trail=TRAIL, output=OUTPUT, session=boto3.Session(), poll_seconds=0.05
        )
        _hunt(engine, accounts=accounts)  # both open at once: neither closed yet
        runs.append(engine)
    first, second = runs
    assert first.run_id != second.run_id and first.database == second.database
    open_first = len(first.history)
    first.close()
    names = [set().union(*(_objects_named(q.sql) for q in e.history)) for e in runs]
    assert names[0] and names[1] and not names[0] & names[1]
    assert all(n.startswith(second.prefix) for n in names[1])
    assert {_statement_target(q.sql)[1] for q in first.history[open_first:]} <= names[0]
    # The CloudTrail table is per run too: its projection enumerates the run's accounts.
    ddls = [next(q.sql for q in e.history if q.label == "cloudtrail table") for e in runs]
    assert "'projection.account.values'='111122223333'" in ddls[0]
    assert "'projection.account.values'='444455556666'" in ddls[1]
    assert _uploads(first) == [] and _uploads(second)
    second.close()
    assert _uploads(second) == []


def _throttle_detections(session: boto3.Session) -> None:
    """Make Athena refuse (as if throttled) every query that reads credential_activity."""

    def throttle(params, **_):
        tree = sqlglot.parse_one(params["QueryString"], read="athena")
        if isinstance(tree, exp.Query) and tree.find(exp.Table).name.endswith(
            "credential_activity"
        ):
            raise RuntimeError("TooManyRequestsException: Rate exceeded")

    session.events.register("before-parameter-build.athena.StartQueryExecution", throttle)


def _queue_until_detections(moto_url: str) -> None:
    """The canned answers of a hunt up to its first detection, which never reaches moto."""
    queue = _expected_queue(["198.199.65.17"])
    detections = [d for d in load_detections().values() if d.kind == "credential"]
    _queue(moto_url, queue[: len(queue) - 1 - sum(1 for d in detections if not d.requires)])


def test_a_run_that_fails_midway_still_drops_what_it_created_and_deletes_its_uploads(buckets):
    """Athena refuses a detection's query (throttled, say) after the run has made its tables,
    views and uploads: the error reaches the caller, and leaving the engine's ``with`` block
    still removes every one of them."""
    _queue_until_detections(buckets)
    session = boto3.Session()
    _throttle_detections(session)
    engine = AthenaEngine(trail=TRAIL, output=OUTPUT, session=session, poll_seconds=0.05)
    with pytest.raises(EngineError, match="Rate exceeded"), engine:
        _hunt(engine, accounts=["111122223333"])
    targets = [_statement_target(q.sql) for q in engine.history]
    created = {t[1] for t in targets if t and t[0] == "CREATE"}
    assert f"{engine.prefix}credential_activity" in created
    closing = list(itertools.takewhile(lambda t: t and t[0] == "DROP", reversed(targets)))
    assert {name for _, name in closing} == created
    assert _uploads(engine) == []


def test_the_cli_cleans_up_an_athena_hunt_that_failed(buckets, monkeypatch):
    """``imdshunt hunt --engine athena``: the engine the CLI made is closed after a failure,
    so the run's tables, views and uploads are gone (checked on the moto server)."""
    from click.testing import CliRunner

    from imdshunt.cli import cli
    from imdshunt.commands._common import EXIT_USAGE

    class ThrottledSession(boto3.Session):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _throttle_detections(self)

    athena = boto3.client("athena")
    before = set(athena.list_query_executions()["QueryExecutionIds"])
    _queue_until_detections(buckets)
    monkeypatch.setattr(boto3, "Session", ThrottledSession)
    args = ["hunt", TRAIL, "--engine", "athena", "--athena-output", OUTPUT, "--ip-ranges"]
    args += [str(RANGES), "--since", "2026-03-01", "--until", "2026-03-02"]
    out = CliRunner().invoke(cli, [*args, "--accounts", "111122223333"])
    assert out.exit_code == EXIT_USAGE, out.output
    assert "Rate exceeded" in out.output
    sent = [
        athena.get_query_execution(QueryExecutionId=q)["QueryExecution"]["Query"]
        for q in set(athena.list_query_executions()["QueryExecutionIds"]) - before
    ]
    targets = [t for t in map(_statement_target, sent) if t]
    created = {name for kind, name in targets if kind == "CREATE"}
    assert any(name.endswith("__credential_activity") for name in created)
    assert {name for kind, name in targets if kind == "DROP"} == created
    listing = boto3.client("s3").list_objects_v2(Bucket="athena-results", Prefix="imdshunt/")
    assert not [o["Key"] for o in listing.get("Contents", []) if "imdshunt-tables/" in o["Key"]]


def test_a_run_id_that_would_not_make_a_plain_glue_name_is_refused():
    with pytest.raises(UsageError):
        AthenaEngine(trail=TRAIL, output=OUTPUT, run_id="Nightly-Run; DROP")
    assert AthenaEngine(trail=TRAIL, output=OUTPUT, run_id="nightly_1").prefix == (
        "imdshunt_nightly_1__"
    )
